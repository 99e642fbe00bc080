/* The admin token file: sagad's generated bearer token when none is
 * configured, 64 hex digits in a file only its user can read, made once
 * and kept across restarts. */
#include "admin.h"

#include "saga_alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN_BYTES 32

/* The token in buf (64 hex digits and an optional newline), or NULL with
 * why in err: a file another user may read, or one that is not ours, is
 * not trusted. 1 = usable, 0 = absent, -1 = unusable (err says why). */
static int read_token(const char *path, char *buf, size_t cap, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        snprintf(err, errlen, "%s is not a regular file of this user", path);
    } else if (st.st_mode & 077) {
        snprintf(err, errlen, "%s may be read by other users (mode %03o)", path, (unsigned)(st.st_mode & 0777));
    } else {
        ssize_t n = read(fd, buf, cap - 1);
        buf[n > 0 ? n : 0] = '\0';
        size_t len = n > 0 ? (size_t)n : 0;
        if (len > 0 && buf[len - 1] == '\n') buf[--len] = '\0';
        int ok = len == 2 * TOKEN_BYTES;
        for (size_t i = 0; ok && i < len; i++) ok = strchr("0123456789abcdef", buf[i]) != NULL;
        if (ok) rc = 1;
        else snprintf(err, errlen, "%s does not hold a token (64 hex digits)", path);
    }
    close(fd);
    return rc;
}

static int random_bytes(unsigned char *b, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = getrandom(b + got, n - got, 0);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        got += (size_t)k;
    }
    return 0;
}

/* A new token written to a temporary file (0600) in path's directory and
 * renamed over path: readers see the old file or the whole new one. */
static int write_token(const char *path, char *token, char *err, size_t errlen) {
    unsigned char raw[TOKEN_BYTES];
    if (random_bytes(raw, sizeof raw)) {
        snprintf(err, errlen, "getrandom: %s", strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < TOKEN_BYTES; i++) snprintf(token + 2 * i, 3, "%02x", raw[i]);
    memset(raw, 0, sizeof raw);
    size_t plen = strlen(path);
    char *tmp = saga_malloc(plen + 8);
    if (!tmp) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(tmp, plen + 8, "%s.XXXXXX", path);
    mode_t old = umask(077);
    int fd = mkstemp(tmp); /* O_EXCL, mode 0600 */
    umask(old);
    int rc = -1;
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
    } else {
        char line[2 * TOKEN_BYTES + 2];
        snprintf(line, sizeof line, "%s\n", token);
        size_t len = strlen(line);
        if (fchmod(fd, 0600) != 0 || write(fd, line, len) != (ssize_t)len || fsync(fd) != 0) {
            snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        } else if (close(fd) != 0 || (fd = -1, rename(tmp, path) != 0)) {
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        } else {
            rc = 0;
        }
        memset(line, 0, sizeof line);
        if (fd >= 0) close(fd);
        if (rc) unlink(tmp);
    }
    saga_free(tmp);
    return rc;
}

char *saga_admin_token_file(const char *path, int *created, char *err, size_t errlen) {
    char buf[256], why[512] = "";
    *created = 0;
    int r = read_token(path, buf, sizeof buf, why, sizeof why);
    if (r == 1) return saga_strdup(buf);
    if (r < 0) snprintf(err, errlen, "replaced: %s", why); /* the caller warns */
    else if (errlen) err[0] = '\0';
    char token[2 * TOKEN_BYTES + 1];
    if (write_token(path, token, why, sizeof why)) {
        snprintf(err, errlen, "%s", why);
        return NULL;
    }
    *created = 1;
    char *copy = saga_strdup(token);
    memset(token, 0, sizeof token);
    if (!copy) snprintf(err, errlen, "out of memory");
    return copy;
}

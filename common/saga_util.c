/* Small process helpers: files, signals, ids (saga_util.h). */
#include "saga_util.h"
#include "saga_alloc.h"
#include "saga_error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

char *saga_read_file(const char *path, size_t *len_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = saga_malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
        if (len + 1 == cap) {
            char *bigger = saga_realloc(buf, cap * 2);
            if (!bigger) { saga_free(buf); buf = NULL; break; }
            buf = bigger;
            cap *= 2;
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (!buf || failed) { saga_free(buf); errno = failed ? EIO : ENOMEM; return NULL; }
    buf[len] = '\0';
    if (len_out) *len_out = len;
    return buf;
}

int saga_write_file_atomic(const char *path, const char *content) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= sizeof tmp) return SAGA_EIO;
    FILE *f = fopen(tmp, "wb");
    if (!f) return SAGA_EIO;
    size_t len = strlen(content);
    int ok = fwrite(content, 1, len, f) == len;
    ok = (fflush(f) == 0) && ok;
    ok = (fsync(fileno(f)) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) { unlink(tmp); return SAGA_EIO; }
    return 0;
}

static volatile sig_atomic_t *stop_flag;
static volatile sig_atomic_t *reload_flag;

static void on_stop(int sig) { (void)sig; if (stop_flag) *stop_flag = 1; }
static void on_reload(int sig) { (void)sig; if (reload_flag) *reload_flag = 1; }

void saga_signals_install(volatile sig_atomic_t *stop, volatile sig_atomic_t *reload) {
    stop_flag = stop;
    reload_flag = reload;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = reload ? on_reload : SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

unsigned long long saga_random_u64(void) {
    unsigned long long v = 0;
    while (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {}
    return v;
}

void saga_random_id(const char *prefix, char *buf, size_t len) {
    snprintf(buf, len, "%s%016llx", prefix, saga_random_u64());
}

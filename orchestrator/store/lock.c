/* One sagad per data directory (or database): an fcntl lock on a lock file held while the
 * process lives (the kernel drops it when the process dies, even on kill -9);
 * the file holds the owner's pid, for the message a second sagad prints.
 * The lock is on a file of its own, not on the database, so that readers
 * (the admin API's connection, sagactl audit, sqlite3) are unaffected. */
#define _GNU_SOURCE
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "saga_alloc.h"

int saga_store_lock(const char *db_path, char *err, size_t errlen) {
    size_t n = strlen(db_path) + sizeof ".lock";
    char *path = saga_malloc(n);
    if (!path) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(path, n, "%s.lock", db_path);
    char what[1100];
    snprintf(what, sizeof what, "the database %s", db_path);
    int fd = saga_store_lock_file(path, what, err, errlen);
    saga_free(path);
    return fd;
}

int saga_store_lock_file(const char *path, const char *what, char *err, size_t errlen) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the lock file %s: %s", path, strerror(errno));
        return -1;
    }
    /* An open-file-description lock where the kernel has them: unlike a
     * classic POSIX lock it is not dropped when the process closes some
     * other descriptor of the same file. */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    int rc = fcntl(fd, F_OFD_SETLK, &fl);
    if (rc != 0 && errno == EINVAL) rc = fcntl(fd, F_SETLK, &fl);
    if (rc != 0) {
        int e = errno;
        char holder[64] = "another process";
        char text[32] = "";
        ssize_t got = pread(fd, text, sizeof text - 1, 0);
        int pid = got > 0 ? atoi(text) : 0;
        if (pid > 0) snprintf(holder, sizeof holder, "another sagad (pid %d)", pid);
        if (e == EACCES || e == EAGAIN)
            snprintf(err, errlen, "%s is in use by %s: its lock file %s is held; "
                                  "two sagad on the same state would send every message twice",
                     what, holder, path);
        else
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        close(fd);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        /* The lock holds without the pid in it: only the message loses it. */
    }
    return fd;
}

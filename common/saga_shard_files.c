/* The shard files of sagad's data directory, listed for the tools that read them (saga_shard_files.h). */
#include "saga_shard_files.h"

#include "saga_alloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int saga_shard_file(const char *dir, int p, char *buf, size_t len) {
    if (p < 0 || p >= SAGA_SHARD_MAX) return -1;
    int n = snprintf(buf, len, "%s/shard-%03d.db", dir, p);
    return n < 0 || (size_t)n >= len ? -1 : n;
}

int saga_shard_number(const char *name) {
    if (strncmp(name, "shard-", 6) != 0 || strcmp(name + 9, ".db") != 0) return -1;
    int p = 0;
    for (int i = 6; i < 9; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        p = p * 10 + (name[i] - '0');
    }
    return p;
}

void saga_shard_files_free(char **paths, int count) {
    for (int i = 0; paths && i < count; i++) saga_free(paths[i]);
    saga_free(paths);
}

int saga_shard_files(const char *path, char ***paths, int *count, char *err, size_t errlen) {
    *paths = NULL;
    *count = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) { /* one database file */
        char **one = saga_calloc(1, sizeof *one);
        if (one) one[0] = saga_strdup(path);
        if (!one || !one[0]) {
            saga_free(one);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        *paths = one;
        *count = 1;
        return 0;
    }
    DIR *d = opendir(path);
    if (!d) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char seen[SAGA_SHARD_MAX] = {0};
    int top = -1, found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        int p = saga_shard_number(e->d_name);
        if (p < 0) continue;
        seen[p] = 1;
        found++;
        if (p > top) top = p;
    }
    closedir(d);
    if (!found) {
        snprintf(err, errlen, "%s: no shard files (shard-000.db ...) in this directory: is it sagad's data directory?",
                 path);
        return -1;
    }
    for (int p = 0; p <= top; p++)
        if (!seen[p]) {
            snprintf(err, errlen, "%s: shard %d is missing (shard-%03d.db; shards 0 to %d are expected)", path, p, p,
                     top);
            return -1;
        }
    char **list = saga_calloc((size_t)top + 1, sizeof *list);
    for (int p = 0; list && p <= top; p++) {
        char buf[4096];
        if (saga_shard_file(path, p, buf, sizeof buf) < 0 || !(list[p] = saga_strdup(buf))) {
            saga_shard_files_free(list, top + 1);
            list = NULL;
        }
    }
    if (!list) {
        snprintf(err, errlen, "out of memory (or a path too long)");
        return -1;
    }
    *paths = list;
    *count = top + 1;
    return 0;
}

/* sagactl audit: the newest copy of each shard among the data directories given (audit_sources.h). */
#include "audit_sources.h"

#include "audit.h"
#include "saga_alloc.h"
#include "saga_shard_files.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define ABSENT LLONG_MIN /* no file of that shard in that directory */

/* shard_meta of one shard file: partition, partitions, changelog_offset
 * (-1 when a row is absent). 0, or -1 with err set. */
static int read_meta(const char *path, long long meta[3], char *err, size_t errlen) {
    static const char *const keys[3] = {"partition", "partitions", "changelog_offset"};
    meta[0] = meta[1] = meta[2] = -1;
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_prepare_v2(db, "SELECT value FROM shard_meta WHERE key = ?1", -1, &q, NULL);
    }
    for (int i = 0; rc == SQLITE_OK && i < 3; i++) {
        sqlite3_bind_text(q, 1, keys[i], -1, SQLITE_STATIC);
        int step = sqlite3_step(q);
        if (step == SQLITE_ROW) meta[i] = sqlite3_column_int64(q, 0);
        else if (step != SQLITE_DONE) rc = step;
        sqlite3_reset(q);
    }
    if (rc != SQLITE_OK)
        snprintf(err, errlen, "--saga-db %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_finalize(q);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Directory d's shard files: off[p] their changelog_offset (ABSENT: no
 * file), *partitions their P. A SAGACTL_AUDIT_* status. */
static int scan_dir(const char *dir, long long *off, long long *partitions, char *err, size_t errlen) {
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        snprintf(err, errlen, "--saga-db %s: %s", dir, strerror(errno));
        return SAGACTL_AUDIT_UNREADABLE;
    }
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "--saga-db %s: not a directory: with several --saga-db (or SAGA_DBS) each is the data "
                 "directory of a sagad", dir);
        return SAGACTL_AUDIT_USAGE;
    }
    DIR *dd = opendir(dir);
    if (!dd) {
        snprintf(err, errlen, "--saga-db %s: %s", dir, strerror(errno));
        return SAGACTL_AUDIT_UNREADABLE;
    }
    int found = 0;
    for (struct dirent *e; (e = readdir(dd));) {
        int p = saga_shard_number(e->d_name);
        if (p < 0) continue;
        off[p] = -1; /* present: its meta is read below */
        found++;
    }
    closedir(dd);
    if (!found) {
        snprintf(err, errlen, "--saga-db %s: no shard files (shard-000.db ...) in this directory: is it sagad's data "
                 "directory?", dir);
        return SAGACTL_AUDIT_UNREADABLE;
    }
    *partitions = -1;
    int first = -1;
    for (int p = 0; p < SAGA_SHARD_MAX; p++) {
        if (off[p] == ABSENT) continue;
        char path[4096];
        long long meta[3];
        if (saga_shard_file(dir, p, path, sizeof path) < 0) {
            snprintf(err, errlen, "--saga-db %s: path too long", dir);
            return SAGACTL_AUDIT_UNREADABLE;
        }
        if (read_meta(path, meta, err, errlen)) return SAGACTL_AUDIT_UNREADABLE;
        if (meta[0] < 0 || meta[1] < 1) {
            snprintf(err, errlen, "--saga-db %s is not a shard of a data directory (no partition recorded in "
                     "shard_meta)", path);
            return SAGACTL_AUDIT_UNREADABLE;
        }
        if (meta[0] != p || meta[0] >= meta[1]) {
            snprintf(err, errlen, "--saga-db %s holds partition %lld of %lld, not %d: shard files were renamed", path,
                     meta[0], meta[1], p);
            return SAGACTL_AUDIT_UNREADABLE;
        }
        if (first >= 0 && meta[1] != *partitions) {
            snprintf(err, errlen, "--saga-db %s: its shard files record different partition counts (shard-%03d.db "
                     "%lld, shard-%03d.db %lld)", dir, first, *partitions, p, meta[1]);
            return SAGACTL_AUDIT_UNREADABLE;
        }
        if (first < 0) first = p;
        *partitions = meta[1];
        off[p] = meta[2];
    }
    return SAGACTL_AUDIT_OK;
}

/* Appends to buf (len, *at its used part) like snprintf; -1 once it no longer fits. */
__attribute__((format(printf, 4, 5))) static int append(char *buf, size_t len, size_t *at, const char *fmt, ...) {
    if (*at >= len) return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *at, len - *at, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len - *at) {
        *at = len;
        return -1;
    }
    *at += (size_t)n;
    return 0;
}

static int resolve_several(const char *const *paths, int n, audit_sources_t *s, long long *off, char *err,
                           size_t errlen) {
    long long *parts = saga_calloc((size_t)n, sizeof *parts);
    if (!parts) {
        snprintf(err, errlen, "--saga-db: out of memory");
        return SAGACTL_AUDIT_UNREADABLE;
    }
    int rc = SAGACTL_AUDIT_OK, same = 1;
    for (int d = 0; d < n && !rc; d++) {
        for (int p = 0; p < SAGA_SHARD_MAX; p++) off[(size_t)d * SAGA_SHARD_MAX + p] = ABSENT;
        rc = scan_dir(paths[d], off + (size_t)d * SAGA_SHARD_MAX, &parts[d], err, errlen);
        if (parts[d] != parts[0]) same = 0;
    }
    if (!rc && !same) {
        size_t at = 0;
        append(err, errlen, &at, "--saga-db: the data directories record different partition counts (shard_meta "
               "'partitions'), they are not one cluster's:");
        for (int d = 0; d < n; d++) append(err, errlen, &at, "%s %s P=%lld", d ? "," : "", paths[d], parts[d]);
        rc = SAGACTL_AUDIT_USAGE;
    }
    int P = rc ? 0 : (int)parts[0];
    saga_free(parts);
    if (rc) return rc;
    s->shards = saga_calloc((size_t)P, sizeof *s->shards);
    s->from = saga_calloc((size_t)P, sizeof *s->from);
    if (!s->shards || !s->from) {
        snprintf(err, errlen, "--saga-db: out of memory");
        return SAGACTL_AUDIT_UNREADABLE;
    }
    s->nshards = P;
    for (int p = 0; p < P; p++) {
        int best = -1;
        for (int d = 0; d < n; d++) {
            long long o = off[(size_t)d * SAGA_SHARD_MAX + p];
            if (o != ABSENT && (best < 0 || o > off[(size_t)best * SAGA_SHARD_MAX + p])) best = d;
        }
        if (best < 0) {
            size_t at = 0;
            append(err, errlen, &at, "--saga-db: shard %d is missing (shard-%03d.db; shards 0 to %d are expected) "
                   "from every data directory given:", p, p, P - 1);
            for (int d = 0; d < n; d++) append(err, errlen, &at, " %s", paths[d]);
            return SAGACTL_AUDIT_UNREADABLE;
        }
        char path[4096];
        s->from[p] = best;
        if (saga_shard_file(paths[best], p, path, sizeof path) < 0 || !(s->shards[p] = saga_strdup(path))) {
            snprintf(err, errlen, "--saga-db: out of memory (or a path too long)");
            return SAGACTL_AUDIT_UNREADABLE;
        }
    }
    return SAGACTL_AUDIT_OK;
}

int audit_sources_resolve(const char *const *paths, int npaths, audit_sources_t *s, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (npaths < 1) {
        snprintf(err, errlen, "--saga-db: no path given");
        return SAGACTL_AUDIT_USAGE;
    }
    if (npaths == 1) {
        char why[4096];
        if (saga_shard_files(paths[0], &s->shards, &s->nshards, why, sizeof why) != 0) {
            snprintf(err, errlen, "--saga-db %s", why);
            return SAGACTL_AUDIT_UNREADABLE;
        }
        s->from = saga_calloc((size_t)s->nshards, sizeof *s->from);
        if (!s->from) {
            audit_sources_free(s);
            snprintf(err, errlen, "--saga-db: out of memory");
            return SAGACTL_AUDIT_UNREADABLE;
        }
        s->ndirs = 1;
        return SAGACTL_AUDIT_OK;
    }
    long long *off = saga_calloc((size_t)npaths * SAGA_SHARD_MAX, sizeof *off);
    int rc = off ? resolve_several(paths, npaths, s, off, err, errlen) : SAGACTL_AUDIT_UNREADABLE;
    if (!off) snprintf(err, errlen, "--saga-db: out of memory");
    saga_free(off);
    if (rc) audit_sources_free(s);
    else s->ndirs = npaths;
    return rc;
}

int audit_sources_list(const audit_sources_t *s, int d, char *buf, size_t len) {
    size_t at = 0;
    int rc = 0;
    if (len) buf[0] = '\0';
    for (int p = 0; p < s->nshards; p++) {
        if (s->from[p] != d) continue;
        int q = p; /* p..q: a run; three or more are written p-q */
        while (q + 1 < s->nshards && s->from[q + 1] == d) q++;
        if (q < p + 2) q = p;
        if (append(buf, len, &at, at ? ",%d" : "%d", p) || (q > p && append(buf, len, &at, "-%d", q))) rc = -1;
        p = q;
    }
    return rc ? -1 : (int)at;
}

void audit_sources_free(audit_sources_t *s) {
    saga_shard_files_free(s->shards, s->nshards);
    saga_free(s->from);
    memset(s, 0, sizeof *s);
}

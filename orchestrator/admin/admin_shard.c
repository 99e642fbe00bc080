/* The admin API's shards: one read-only SQLite connection per partition
 * file, checked before use (a file deleted or replaced since it was opened
 * is noticed), and the errors that name the shard (admin_http.h). */
#include "admin_http.h"

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_log.h"
#include "saga_partition.h"
#include "saga_utf8.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define COMPONENT "admin"

int admin_shard_count(const admin_ctx_t *ctx) {
    if (!ctx->shards) return 1;
    assert(ctx->shard_count > 0);
    return ctx->shard_count;
}

int admin_shard_owned(const admin_ctx_t *ctx, int i) {
    return !ctx->owned || __atomic_load_n(&ctx->owned[i], __ATOMIC_RELAXED);
}

unsigned char *admin_shard_selection(const admin_ctx_t *ctx, const admin_query_t *q, admin_response_t *res,
                                     int *rc) {
    int n = admin_shard_count(ctx);
    unsigned char *sel = saga_calloc((size_t)n, 1);
    *rc = 0;
    if (!sel) {
        *rc = SAGA_ENOMEM;
        return NULL;
    }
    const char *v = q ? admin_query_get(q, "shards") : NULL;
    if (!v) {
        for (int i = 0; i < n; i++) sel[i] = (unsigned char)admin_shard_owned(ctx, i);
        return sel;
    }
    for (const char *s = v;;) {
        char *end = NULL;
        long i = (*s >= '0' && *s <= '9') ? strtol(s, &end, 10) : -1;
        if (i < 0 || i >= n || !end || (*end && *end != ',')) {
            saga_free(sel);
            *rc = admin_param_error(res, "shards",
                                    "parameter 'shards': '%.*s' is not a comma-separated list of shard numbers from "
                                    "0 to %d",
                                    saga_utf8_prefix(v, 64), v, n - 1);
            return NULL;
        }
        if (!admin_shard_owned(ctx, (int)i)) {
            saga_free(sel);
            *rc = admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, (int)i,
                                    "shard %ld is not owned by this sagad instance (any more): ask again", i);
            return NULL;
        }
        sel[i] = 1;
        if (!*end) break;
        s = end + 1;
    }
    return sel;
}

int admin_shard_of(const admin_ctx_t *ctx, const char *id) {
    int n = admin_shard_count(ctx);
    return n == 1 ? 0 : saga_partition_of(id, n);
}

static const char *shard_path(const admin_ctx_t *ctx, int i) {
    return ctx->shards ? ctx->shards[i].path : NULL;
}

const char *admin_shard_name(const admin_ctx_t *ctx, int i, char *buf, size_t len) {
    const char *path = shard_path(ctx, i);
    if (admin_shard_count(ctx) > 1)
        snprintf(buf, len, "shard %d (%s)", i, path ? path : "no file");
    else if (path)
        snprintf(buf, len, "database (%s)", path);
    else
        snprintf(buf, len, "database");
    return buf;
}

int admin_shard_open(admin_shard_t *s, const char *path, char *err, size_t errlen) {
    if (s->path != path) {
        char *copy = saga_strdup(path);
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            return SAGA_ENOMEM;
        }
        saga_free(s->path);
        s->path = copy;
    }
    if (s->db) sqlite3_close(s->db);
    s->db = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        snprintf(err, errlen, "'%s': %s", path, strerror(errno));
        return SAGA_ESTORE;
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 1000);
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(db, "PRAGMA schema_version", -1, &st, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_step(st) == SQLITE_ROW ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open '%s' read-only: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return SAGA_ESTORE;
    }
    s->db = db;
    s->dev = (unsigned long long)sb.st_dev;
    s->ino = (unsigned long long)sb.st_ino;
    return 0;
}

void admin_shard_close(admin_shard_t *s) {
    if (s->db) sqlite3_close(s->db);
    s->db = NULL;
    saga_free(s->path);
    s->path = NULL;
}

sqlite3 *admin_shard_check(admin_ctx_t *ctx, int i, char *why, size_t whylen) {
    assert(i >= 0 && i < admin_shard_count(ctx));
    if (!ctx->shards) return ctx->db;
    admin_shard_t *s = &ctx->shards[i];
    if (!s->path) return s->db; /* handed in: nothing to check */
    char name[400], err[600];
    admin_shard_name(ctx, i, name, sizeof name);
    if (!admin_shard_owned(ctx, i)) {
        snprintf(why, whylen, "%s is owned by another sagad instance of the group: ask that one", name);
        return NULL;
    }
    struct stat sb;
    if (stat(s->path, &sb) != 0) {
        int e = errno;
        if (s->db) LOG_WARN(COMPONENT, "%s: the file is gone (%s); its connection is closed", name, strerror(e));
        if (s->db) sqlite3_close(s->db);
        s->db = NULL;
        snprintf(why, whylen, "%s cannot be read: %s", name,
                 e == ENOENT ? "the file is missing (sagad restores a lost shard from saga.changelog)" : strerror(e));
        return NULL;
    }
    if (s->db && (unsigned long long)sb.st_dev == s->dev && (unsigned long long)sb.st_ino == s->ino) return s->db;
    if (s->db) LOG_INFO(COMPONENT, "%s: the file was replaced; opening it again", name);
    if (admin_shard_open(s, s->path, err, sizeof err) != 0) {
        snprintf(why, whylen, "%s cannot be read: %s", name, err);
        return NULL;
    }
    return s->db;
}

sqlite3 *admin_shard_db(admin_ctx_t *ctx, int i, admin_response_t *res, int *rc) {
    char why[1024];
    sqlite3 *db = admin_shard_check(ctx, i, why, sizeof why);
    if (db) return db;
    LOG_WARN(COMPONENT, "%s", why);
    *rc = admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, i, "%s", why);
    return NULL;
}

int admin_db_error(admin_ctx_t *ctx, int shard, admin_response_t *res, int rc, const char *what) {
    sqlite3 *db = ctx->shards ? ctx->shards[shard].db : ctx->db;
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    int multi = admin_shard_count(ctx) > 1;
    char name[400];
    admin_shard_name(ctx, shard, name, sizeof name);
    int code = rc & 0xFF;
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
        LOG_WARN(COMPONENT, "%s: %s busy: %s", what, name, msg);
        return admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, multi ? shard : -1, "%s busy, try again: %s",
                                 multi ? name : "database", msg);
    }
    if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT || code == SQLITE_IOERR || code == SQLITE_CANTOPEN) {
        LOG_ERROR(COMPONENT, "%s: %s cannot be read: SQLite error %d: %s", what, name, rc, msg);
        return admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, shard, "%s: %s cannot be read: %s", what, name, msg);
    }
    LOG_ERROR(COMPONENT, "%s: %s: SQLite error %d: %s", what, name, rc, msg);
    if (multi) return admin_shard_error(res, ADMIN_ERR_INTERNAL, shard, "%s: %s: %s", what, name, msg);
    return admin_error(res, ADMIN_ERR_INTERNAL, "%s: %s", what, msg);
}

/* GET /v1/definitions[/{name}[/{version}]]: the definitions sagad has
 * loaded (table `definitions`: name, version, hash, json, loaded_at; see
 * orchestrator/store/schema.h) in every shard, merged. The step count comes
 * from the stored JSON. */
#include "admin_handlers.h"

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_utf8.h"
#include "saga_log.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define COMPONENT "admin"

static const char SQL_ALL[] =
    "SELECT name, version, hash, loaded_at, json FROM definitions ORDER BY name, version";
static const char SQL_NAME[] =
    "SELECT name, version, hash, loaded_at, json FROM definitions WHERE name = ?1 ORDER BY version";
static const char SQL_ONE[] =
    "SELECT name, version, hash, loaded_at, json FROM definitions WHERE name = ?1 AND version = ?2";

/* The stored definition, parsed; NULL (logged) when it is not JSON. */
static json_t *stored_json(sqlite3_stmt *st, int col) {
    const char *t = (const char *)sqlite3_column_text(st, col);
    if (!t) return NULL;
    json_error_t jerr = {0}; /* jansson leaves it unset when its first allocation fails */
    /* ALLOW_NUL: the loader takes "\u0000" inside strings (payloads). */
    json_t *v = json_loadb(t, (size_t)sqlite3_column_bytes(st, col), JSON_ALLOW_NUL, &jerr);
    if (!v && json_error_code(&jerr) != json_error_out_of_memory)
        LOG_WARN(COMPONENT, "definitions.json of '%s' is not JSON: %s", (const char *)sqlite3_column_text(st, 0),
                 jerr.text);
    return v;
}

/* One row as {name, version, hash, loaded_at, steps} (+ "definition" when
 * full); NULL on allocation failure. */
static json_t *definition_item(sqlite3_stmt *st, int full) {
    json_t *def = stored_json(st, 4);
    json_t *steps = json_object_get(def, "steps");
    json_t *item = json_object();
    int ok = item != NULL;
    json_t *vals[] = {admin_col_text(st, 0), json_integer(sqlite3_column_int64(st, 1)), admin_col_text(st, 2),
                      admin_col_time(st, 3),
                      json_is_array(steps) ? json_integer((json_int_t)json_array_size(steps)) : json_null()};
    static const char *const keys[] = {"name", "version", "hash", "loaded_at", "steps"};
    for (size_t i = 0; i < 5; i++) {
        if (!vals[i] || !item || json_object_set_new(item, keys[i], vals[i]) != 0) {
            if (!item) json_decref(vals[i]);
            ok = 0;
        }
    }
    if (full && ok) {
        json_t *body = def ? json_incref(def) : admin_col_text(st, 4); /* not JSON: as a string */
        if (!body || json_object_set_new(item, "definition", body) != 0) ok = 0;
    }
    json_decref(def);
    if (!ok) {
        json_decref(item);
        return NULL;
    }
    return item;
}

/* A stored definition and where it was found, for the merge. */
typedef struct {
    const char *name; /* borrowed from item */
    long long version;
    int shard;
    json_t *item;
} def_row_t;

static int row_order(const void *pa, const void *pb) {
    const def_row_t *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    if (c) return c;
    if (a->version != b->version) return a->version < b->version ? -1 : 1;
    return a->shard - b->shard;
}

/* Every shard stores the definitions its sagas run on: the answer is
 * their union by (name, version), the lowest shard's row when several
 * hold one, ordered by name and version. */
int admin_get_definitions(admin_ctx_t *ctx, const char *name, const char *version, admin_response_t *res) {
    long v = 0;
    if (version) {
        char *end = NULL;
        v = (version[0] >= '1' && version[0] <= '9' && strlen(version) <= 10) ? strtol(version, &end, 10) : 0;
        if (v < 1 || v > INT_MAX || (end && *end))
            return admin_error(res, ADMIN_ERR_BAD_REQUEST, "version must be a positive whole number, not '%.*s'", saga_utf8_prefix(version, 32), version);
    }
    def_row_t *rows = NULL;
    size_t nrows = 0, cap = 0;
    int ok = 1, rc = 0, answered = 0;
    for (int shard = 0, n = admin_shard_count(ctx); ok && !answered && shard < n; shard++) {
        if (!admin_shard_owned(ctx, shard)) continue;
        sqlite3 *db = admin_shard_db(ctx, shard, res, &rc);
        if (!db) {
            answered = 1;
            break;
        }
        sqlite3_stmt *st = NULL;
        int src = sqlite3_prepare_v2(db, version ? SQL_ONE : name ? SQL_NAME : SQL_ALL, -1, &st, NULL);
        if (src == SQLITE_OK && name) src = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (src == SQLITE_OK && version) src = sqlite3_bind_int64(st, 2, v);
        while (src == SQLITE_OK && ok) {
            int step = sqlite3_step(st);
            if (step == SQLITE_DONE) break;
            if (step != SQLITE_ROW) {
                src = step;
                break;
            }
            if (nrows == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                def_row_t *bigger = saga_realloc(rows, ncap * sizeof *bigger);
                if (!bigger) {
                    ok = 0;
                    break;
                }
                rows = bigger;
                cap = ncap;
            }
            json_t *item = definition_item(st, version != NULL);
            if (!item) {
                ok = 0;
                break;
            }
            rows[nrows++] = (def_row_t){.name = json_string_value(json_object_get(item, "name")),
                                        .version = (long long)json_integer_value(json_object_get(item, "version")),
                                        .shard = shard, .item = item};
            if (!rows[nrows - 1].name) rows[nrows - 1].name = "";
        }
        if (src != SQLITE_OK) {
            rc = admin_db_error(ctx, shard, res, src, "reading the definitions");
            answered = 1;
        }
        sqlite3_finalize(st);
    }
    if (nrows > 1) qsort(rows, nrows, sizeof *rows, row_order);
    json_t *list = json_array(), *one = NULL;
    if (!list) ok = 0;
    for (size_t i = 0; ok && !answered && i < nrows; i++) {
        if (i > 0 && !strcmp(rows[i].name, rows[i - 1].name) && rows[i].version == rows[i - 1].version) continue;
        if (version) {
            one = json_incref(rows[i].item);
            break;
        }
        if (json_array_append(list, rows[i].item) != 0) ok = 0;
    }
    if (answered) {
        /* res holds the shard's error */
    } else if (!ok) {
        rc = SAGA_ENOMEM;
    } else if (version && !one) {
        rc = admin_error(res, ADMIN_ERR_NOT_FOUND, "no definition '%s' version %ld", name, v);
    } else if (name && !version && json_array_size(list) == 0) {
        rc = admin_error(res, ADMIN_ERR_NOT_FOUND, "no definition '%s'", name);
    } else {
        json_t *doc = version ? json_incref(one)
                      : name  ? json_pack("{s:s, s:O}", "name", name, "versions", list)
                              : json_pack("{s:O}", "definitions", list);
        rc = doc ? admin_json_response(res, 200, doc) : SAGA_ENOMEM;
        json_decref(doc);
    }
    for (size_t i = 0; i < nrows; i++) json_decref(rows[i].item);
    saga_free(rows);
    json_decref(one);
    json_decref(list);
    return rc;
}

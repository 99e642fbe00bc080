/* GET /v1/sagas (filters, keyset pagination) and GET /v1/stats, read from
 * every shard's read-only connection, each inside its own read transaction
 * (shards are separate files: there is no snapshot across them).
 * Table and column names: orchestrator/store/schema.h.
 *
 * Pagination: rows come in (updated_at DESC, id DESC) order, a total order
 * since ids are unique. The cursor is the position of the last row of a
 * page, base64url("v1|<updated_at ms>|<id>"); the next page starts strictly
 * after it, so no row appears twice and none is skipped unless it was
 * updated between the two requests (it then moves to the first page).
 * Each shard answers its own first limit + 1 rows after the cursor, and
 * the shards' rows are merged on (updated_at, id): the order, the cursor
 * and the JSON are the same whatever the number of shards. */
#include "admin_handlers.h"

#include "definition.h"
#include "engine.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_utf8.h"
#include "saga_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPONENT "admin"

#define LIST_DEFAULT_LIMIT 50
#define LIST_MAX_LIMIT 500
#define MAX_STATUSES 8
#define MAX_TEXT_FILTER 128 /* bytes of a name or error code filter */
#define MAX_CURSOR 400      /* characters of an encoded cursor */

static const char *const SAGA_STATUSES[] = {
#define SAGA_STATUS_STR(name, str) str,
    SAGA_STATUS_MAP(SAGA_STATUS_STR)
#undef SAGA_STATUS_STR
        NULL};
static const char *const STEP_STATUSES[] = {
#define STEP_STATUS_STR(name, str) str,
    SAGA_STEP_STATUS_MAP(STEP_STATUS_STR)
#undef STEP_STATUS_STR
        NULL};

/* The step an operator looks at first: the lowest-index step that is
 * under way (action or compensation in flight, waiting, queued, or a
 * compensation that gave up); when none is, the first pending step. */
static const char SQL_CURRENT_STEP[] =
    "SELECT name, idx, status, attempt, comp_attempt FROM steps WHERE saga_id = ?1 AND status IN"
    " ('pending', 'running', 'retry_wait', 'queued', 'compensating', 'compensation_queued',"
    " 'compensation_retry_wait', 'compensation_failed') ORDER BY status = 'pending', idx LIMIT 1";

/* ---- shared helpers (declared in admin_route.h) ---- */

/* Sets obj[key] = value (stolen); the first failure clears *ok. */
static void put(json_t *obj, const char *key, json_t *value, int *ok) {
    if (!obj) {
        json_decref(value);
        *ok = 0;
    } else if (!value || json_object_set_new(obj, key, value) != 0) {
        *ok = 0;
    }
}

/* ---- cursors ---- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64url_encode(const unsigned char *in, size_t n, char *out) {
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = B64[v >> 18 & 63];
        out[o++] = B64[v >> 12 & 63];
        out[o++] = B64[v >> 6 & 63];
        out[o++] = B64[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = B64[v >> 18 & 63];
        out[o++] = B64[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = B64[v >> 18 & 63];
        out[o++] = B64[v >> 12 & 63];
        out[o++] = B64[v >> 6 & 63];
    }
    out[o] = '\0';
}

/* Decodes into out (room for n bytes + NUL); -1 on a bad character or length. */
static long b64url_decode(const char *in, size_t n, unsigned char *out) {
    if (n % 4 == 1) return -1;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = in[i] ? strchr(B64, in[i]) : NULL;
        if (!p) return -1;
        acc = (acc << 6) | (unsigned)(p - B64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits & 0xFF);
        }
    }
    if (acc & ((1u << bits) - 1)) return -1; /* non-canonical trailing bits */
    out[o] = '\0';
    return (long)o;
}

typedef struct {
    int64_t updated_at;
    char id[ADMIN_MAX_ID_LEN + 1];
} cursor_t;

/* Encodes the position of a row; out needs 4 * (len + 2) / 3 + 1 bytes. */
static void cursor_encode(int64_t updated_at, const char *id, char *out) {
    char raw[ADMIN_MAX_ID_LEN + 40];
    int n = snprintf(raw, sizeof raw, "v1|%" PRId64 "|%s", updated_at, id);
    b64url_encode((const unsigned char *)raw, (size_t)n, out);
}

int admin_list_cursor(int64_t updated_at, const char *id, size_t idlen, char *out, size_t outlen) {
    if (idlen == 0 || idlen > ADMIN_MAX_ID_LEN || !admin_text_ok(id, idlen) || memchr(id, '\0', idlen) ||
        outlen < (ADMIN_MAX_ID_LEN + 40) * 4 / 3 + 4)
        return -1;
    char copy[ADMIN_MAX_ID_LEN + 1];
    memcpy(copy, id, idlen);
    copy[idlen] = '\0';
    cursor_encode(updated_at, copy, out);
    return 0;
}

static int cursor_decode(const char *s, cursor_t *c) {
    size_t n = strlen(s);
    unsigned char raw[MAX_CURSOR];
    if (n == 0 || n >= sizeof raw) return -1;
    long len = b64url_decode(s, n, raw);
    if (len < 5 || memcmp(raw, "v1|", 3) != 0) return -1;
    const char *p = (const char *)raw + 3;
    int64_t v = 0;
    int nd = 0;
    for (; *p >= '0' && *p <= '9'; p++, nd++) {
        if (nd == 18) return -1;
        v = v * 10 + (*p - '0');
    }
    if (nd == 0 || *p != '|') return -1;
    p++;
    size_t idlen = (size_t)len - (size_t)(p - (const char *)raw);
    if (idlen == 0 || idlen > ADMIN_MAX_ID_LEN || !admin_text_ok(p, idlen) || memchr(p, '\0', idlen)) return -1;
    c->updated_at = v;
    memcpy(c->id, p, idlen);
    c->id[idlen] = '\0';
    return 0;
}

/* ---- filters ---- */

typedef struct {
    const char *statuses[MAX_STATUSES];
    size_t nstatuses;
    char status_buf[256];
    const char *definition, *step, *step_status, *error_code;
    const char *search_name[SAGA_MAX_SEARCH], *search_value[SAGA_MAX_SEARCH]; /* search.NAME=VALUE */
    size_t nsearch;
    int has_time[4];
    int64_t time[4]; /* created_after, created_before, updated_after, updated_before */
    long limit;
    int has_cursor;
    cursor_t cursor;
} filters_t;

static const char *const TIME_PARAMS[4] = {"created_after", "created_before", "updated_after", "updated_before"};

static int in_list(const char *const *list, const char *s) {
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0) return 1;
    return 0;
}

static void join(const char *const *list, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; list[i] && o + 1 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", list[i]);
}

/* 0 with f filled, or 0 with res filled (400), or SAGA_ENOMEM. */
static int parse_filters(const admin_query_t *q, filters_t *f, admin_response_t *res, int *bad) {
    char names[400];
    memset(f, 0, sizeof *f);
    *bad = 1;
    const char *v = admin_query_get(q, "status");
    if (v) {
        if (strlen(v) >= sizeof f->status_buf) return admin_param_error(res, "status", "parameter 'status' is too long");
        snprintf(f->status_buf, sizeof f->status_buf, "%s", v);
        char *save = NULL;
        for (char *t = strtok_r(f->status_buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (!in_list(SAGA_STATUSES, t)) {
                join(SAGA_STATUSES, names, sizeof names);
                return admin_param_error(res, "status", "parameter 'status': '%.*s' is not a saga status (%s)", saga_utf8_prefix(t, 64), t,
                                         names);
            }
            if (f->nstatuses == MAX_STATUSES)
                return admin_param_error(res, "status", "parameter 'status': at most %d statuses", MAX_STATUSES);
            f->statuses[f->nstatuses++] = t;
        }
        if (f->nstatuses == 0) return admin_param_error(res, "status", "parameter 'status' names no status");
    }
    static const char *const text_params[] = {"definition", "step", "error_code"};
    const char **text_dst[] = {&f->definition, &f->step, &f->error_code};
    for (size_t i = 0; i < 3; i++) {
        v = admin_query_get(q, text_params[i]);
        if (v && strlen(v) >= MAX_TEXT_FILTER)
            return admin_param_error(res, text_params[i], "parameter '%s' is longer than %d bytes", text_params[i],
                                     MAX_TEXT_FILTER - 1);
        *text_dst[i] = v;
    }
    v = admin_query_get(q, "step_status");
    if (v && !in_list(STEP_STATUSES, v)) {
        join(STEP_STATUSES, names, sizeof names);
        return admin_param_error(res, "step_status", "parameter 'step_status': '%.*s' is not a step status (%s)", saga_utf8_prefix(v, 64), v,
                                 names);
    }
    f->step_status = v;
    for (size_t i = 0; i < 4; i++) {
        v = admin_query_get(q, TIME_PARAMS[i]);
        if (!v) continue;
        if (admin_parse_time(v, &f->time[i]) != 0)
            return admin_param_error(res, TIME_PARAMS[i],
                                     "parameter '%s': '%.*s' is not an RFC 3339 time like 2023-11-14T22:13:20Z%s",
                                     TIME_PARAMS[i], saga_utf8_prefix(v, 64), v,
                                     strchr(v, ' ') ? " (a '+' in a query is a space: write it as %2B)" : "");
        f->has_time[i] = 1;
    }
    for (size_t i = 0; i < q->count; i++) {
        if (strncmp(q->key[i], "search.", 7) != 0) continue;
        const char *name = q->key[i] + 7;
        if (!saga_search_name_ok(name, strlen(name)))
            return admin_param_error(res, q->key[i],
                                     "parameter '%.*s': '%.*s' is not a search attribute name (a letter, then"
                                     " letters, digits or '_'; at most %d bytes)",
                                     saga_utf8_prefix(q->key[i], 80), q->key[i], saga_utf8_prefix(name, 72), name,
                                     SAGA_SEARCH_NAME_MAX);
        if (f->nsearch == SAGA_MAX_SEARCH)
            return admin_param_error(res, q->key[i], "parameter '%.*s': at most %d search.NAME parameters", saga_utf8_prefix(q->key[i], 80), q->key[i], SAGA_MAX_SEARCH);
        if (strlen(q->value[i]) > SAGA_SEARCH_VALUE_MAX)
            return admin_param_error(res, q->key[i], "parameter '%s' is longer than %d bytes (a value is at most that)",
                                     q->key[i], SAGA_SEARCH_VALUE_MAX);
        f->search_name[f->nsearch] = name;
        f->search_value[f->nsearch++] = q->value[i];
    }
    f->limit = LIST_DEFAULT_LIMIT;
    v = admin_query_get(q, "limit");
    if (v) {
        char *end = NULL;
        long n = (v[0] >= '0' && v[0] <= '9' && strlen(v) <= 6) ? strtol(v, &end, 10) : -1;
        if (n < 1 || n > LIST_MAX_LIMIT || (end && *end))
            return admin_param_error(res, "limit", "parameter 'limit' must be a whole number from 1 to %d",
                                     LIST_MAX_LIMIT);
        f->limit = n;
    }
    v = admin_query_get(q, "cursor");
    if (v) {
        if (cursor_decode(v, &f->cursor) != 0)
            return admin_param_error(res, "cursor",
                                     "parameter 'cursor' is not a cursor of this API (pass next_cursor as it came)");
        f->has_cursor = 1;
    }
    *bad = 0;
    return 0;
}

/* ---- GET /v1/sagas ---- */

typedef struct {
    int is_text;
    const char *text;
    int64_t num;
} bind_t;

#define MAX_BINDS (24 + 2 * SAGA_MAX_SEARCH)

typedef struct {
    char sql[4096];
    size_t len;
    bind_t binds[MAX_BINDS];
    int nbinds;
} query_t;

static void sql_add(query_t *b, const char *s) {
    size_t n = strlen(s);
    if (b->len + n < sizeof b->sql) { /* the clauses are fixed: they always fit */
        memcpy(b->sql + b->len, s, n + 1);
        b->len += n;
    }
}

static void bind_text(query_t *b, const char *s) {
    b->binds[b->nbinds++] = (bind_t){.is_text = 1, .text = s};
}

static void bind_int(query_t *b, int64_t v) {
    b->binds[b->nbinds++] = (bind_t){.num = v};
}

static void build_list_query(const filters_t *f, query_t *b) {
    memset(b, 0, sizeof *b);
    sql_add(b, "SELECT id, definition, version, status, created_at, updated_at, error_code, error_message, search"
               " FROM sagas WHERE 1");
    for (size_t i = 0; i < f->nsearch; i++) { /* the index answers these; the rest filters what it found */
        sql_add(b, " AND id IN (SELECT saga_id FROM saga_search WHERE name = ? AND value = ?)");
        bind_text(b, f->search_name[i]);
        bind_text(b, f->search_value[i]);
    }
    if (f->nstatuses) {
        sql_add(b, " AND status IN (");
        for (size_t i = 0; i < f->nstatuses; i++) {
            sql_add(b, i ? ", ?" : "?");
            bind_text(b, f->statuses[i]);
        }
        sql_add(b, ")");
    }
    if (f->definition) {
        sql_add(b, " AND definition = ?");
        bind_text(b, f->definition);
    }
    static const char *const time_sql[4] = {" AND created_at >= ?", " AND created_at < ?", " AND updated_at >= ?",
                                            " AND updated_at < ?"};
    for (size_t i = 0; i < 4; i++) {
        if (!f->has_time[i]) continue;
        sql_add(b, time_sql[i]);
        bind_int(b, f->time[i]);
    }
    if (f->error_code) {
        sql_add(b, " AND error_code = ?");
        bind_text(b, f->error_code);
    }
    if (f->step || f->step_status) {
        sql_add(b, " AND EXISTS (SELECT 1 FROM steps WHERE steps.saga_id = sagas.id");
        if (f->step) {
            sql_add(b, " AND steps.name = ?");
            bind_text(b, f->step);
        }
        if (f->step_status) {
            sql_add(b, " AND steps.status = ?");
            bind_text(b, f->step_status);
        }
        sql_add(b, ")");
    }
    if (f->has_cursor) {
        sql_add(b, " AND (updated_at < ? OR (updated_at = ? AND id < ?))");
        bind_int(b, f->cursor.updated_at);
        bind_int(b, f->cursor.updated_at);
        bind_text(b, f->cursor.id);
    }
    sql_add(b, " ORDER BY updated_at DESC, id DESC LIMIT ?");
    bind_int(b, f->limit + 1); /* one more row tells whether there is a next page */
}

static json_t *current_step(sqlite3_stmt *cur, const char *id, int *rc) {
    sqlite3_reset(cur);
    *rc = sqlite3_bind_text(cur, 1, id, -1, SQLITE_TRANSIENT);
    if (*rc != SQLITE_OK) return NULL;
    *rc = sqlite3_step(cur);
    if (*rc == SQLITE_DONE) {
        *rc = SQLITE_OK;
        return json_null();
    }
    if (*rc != SQLITE_ROW) return NULL;
    *rc = SQLITE_OK;
    int ok = 1;
    json_t *s = json_object();
    put(s, "name", admin_col_text(cur, 0), &ok);
    put(s, "index", json_integer(sqlite3_column_int64(cur, 1)), &ok);
    put(s, "status", admin_col_text(cur, 2), &ok);
    put(s, "attempt", json_integer(sqlite3_column_int64(cur, 3)), &ok);
    put(s, "compensation_attempt", json_integer(sqlite3_column_int64(cur, 4)), &ok);
    if (!ok) {
        json_decref(s);
        *rc = SQLITE_NOMEM;
        return NULL;
    }
    return s;
}

static json_t *error_object(sqlite3_stmt *st, int code_col, int msg_col) {
    const unsigned char *code = sqlite3_column_text(st, code_col);
    if (!code || !code[0]) return json_null();
    json_t *e = json_object();
    int ok = 1;
    put(e, "code", admin_col_text(st, code_col), &ok);
    put(e, "message", sqlite3_column_type(st, msg_col) == SQLITE_NULL ? json_string("") : admin_col_text(st, msg_col),
        &ok);
    if (!ok) {
        json_decref(e);
        return NULL;
    }
    return e;
}

/* One shard's side of the merge: its page query and current-step query,
 * inside a read transaction, and whether a row is waiting in st. */
typedef struct {
    sqlite3 *db;
    sqlite3_stmt *st, *cur;
    int began, has_row;
} list_shard_t;

/* 1 when shard a's waiting row comes before shard b's in the list order
 * (updated_at DESC, id DESC; ids compared as SQLite's BINARY collation:
 * bytes, then length). */
static int comes_first(const list_shard_t *a, const list_shard_t *b) {
    int64_t ua = sqlite3_column_int64(a->st, 5), ub = sqlite3_column_int64(b->st, 5);
    if (ua != ub) return ua > ub;
    const void *ia = sqlite3_column_blob(a->st, 0), *ib = sqlite3_column_blob(b->st, 0);
    size_t la = (size_t)sqlite3_column_bytes(a->st, 0), lb = (size_t)sqlite3_column_bytes(b->st, 0);
    int c = la && lb ? memcmp(ia, ib, la < lb ? la : lb) : 0;
    return c ? c > 0 : la > lb;
}

static void list_close(list_shard_t *ls, int n) {
    for (int i = 0; ls && i < n; i++) {
        sqlite3_finalize(ls[i].st);
        sqlite3_finalize(ls[i].cur);
        if (ls[i].began) sqlite3_exec(ls[i].db, "COMMIT", NULL, NULL, NULL); /* read-only: nothing to lose */
    }
    saga_free(ls);
}

/* Opens shard i's side: BEGIN, the two statements, the first row. SQLITE_OK
 * or the SQLite error (with *what set); res filled and *answered set when
 * the shard cannot be read at all. */
static int list_open(admin_ctx_t *ctx, int i, const query_t *b, list_shard_t *ls, admin_response_t *res, int *rc,
                     const char **what) {
    ls->db = admin_shard_db(ctx, i, res, rc);
    if (!ls->db) return SQLITE_OK;
    *what = "cannot begin a read transaction";
    int src = sqlite3_exec(ls->db, "BEGIN", NULL, NULL, NULL);
    ls->began = src == SQLITE_OK;
    if (src == SQLITE_OK) {
        *what = "listing sagas";
        src = sqlite3_prepare_v2(ls->db, b->sql, -1, &ls->st, NULL);
    }
    if (src == SQLITE_OK) src = sqlite3_prepare_v2(ls->db, SQL_CURRENT_STEP, -1, &ls->cur, NULL);
    for (int k = 0; src == SQLITE_OK && k < b->nbinds; k++)
        src = b->binds[k].is_text ? sqlite3_bind_text(ls->st, k + 1, b->binds[k].text, -1, SQLITE_STATIC)
                                  : sqlite3_bind_int64(ls->st, k + 1, b->binds[k].num);
    if (src == SQLITE_OK) {
        int step = sqlite3_step(ls->st);
        ls->has_row = step == SQLITE_ROW;
        if (step != SQLITE_ROW && step != SQLITE_DONE) src = step;
    }
    return src;
}

/* Every shard runs the page query (its own LIMIT); the rows are merged on
 * the list's order, so a page holds the first `limit` rows of all shards. */
int admin_list_sagas(admin_ctx_t *ctx, const admin_query_t *q, admin_response_t *res) {
    filters_t f;
    int bad, rc = parse_filters(q, &f, res, &bad);
    if (bad || rc) return rc;
    query_t b;
    build_list_query(&f, &b);

    int nshards = admin_shard_count(ctx);
    unsigned char *sel = admin_shard_selection(ctx, q, res, &rc);
    if (!sel) return rc;
    list_shard_t *ls = saga_calloc((size_t)nshards, sizeof *ls);
    json_t *items = ls ? json_array() : NULL;
    if (!items) {
        saga_free(ls);
        saga_free(sel);
        return SAGA_ENOMEM;
    }
    int ok = 1, more = 0, src = SQLITE_OK, shard = 0;
    int64_t last_updated = 0;
    char last_id[ADMIN_MAX_ID_LEN + 1] = "";
    int last_id_ok = 0;
    const char *what = "listing sagas";
    for (shard = 0; shard < nshards; shard++) {
        if (!sel[shard]) continue; /* another instance lists it */
        src = list_open(ctx, shard, &b, &ls[shard], res, &rc, &what);
        if (!ls[shard].db) { /* the shard cannot be read: res holds the 503 */
            saga_free(sel);
            list_close(ls, nshards);
            json_decref(items);
            return rc;
        }
        if (src != SQLITE_OK) break;
    }
    saga_free(sel);
    long n = 0;
    while (src == SQLITE_OK && ok) {
        shard = -1;
        for (int i = 0; i < nshards; i++)
            if (ls[i].has_row && (shard < 0 || comes_first(&ls[i], &ls[shard]))) shard = i;
        if (shard < 0) break;
        if (n == f.limit) {
            more = 1;
            break;
        }
        n++;
        sqlite3_stmt *st = ls[shard].st;
        const char *id = (const char *)sqlite3_column_text(st, 0);
        size_t idlen = (size_t)sqlite3_column_bytes(st, 0);
        json_t *item = json_object();
        put(item, "id", admin_col_text(st, 0), &ok);
        put(item, "definition", admin_col_text(st, 1), &ok);
        put(item, "version", json_integer(sqlite3_column_int64(st, 2)), &ok);
        put(item, "status", admin_col_text(st, 3), &ok);
        put(item, "created_at", admin_col_time(st, 4), &ok);
        put(item, "updated_at", admin_col_time(st, 5), &ok);
        put(item, "error", error_object(st, 6, 7), &ok);
        if (sqlite3_column_type(st, 8) != SQLITE_NULL)
            put(item, "search", admin_col_json(st, 8, "sagas.search"), &ok);
        what = "reading the current step";
        json_t *cs = id ? current_step(ls[shard].cur, id, &src) : json_null();
        put(item, "current_step", cs, &ok);
        if (src != SQLITE_OK) {
            if (src == SQLITE_NOMEM) {
                ok = 0;
                src = SQLITE_OK;
            }
            json_decref(item);
            break;
        }
        what = "listing sagas";
        if (!item || json_array_append_new(items, item) != 0) ok = 0;
        /* A cursor can only name an id it can carry back (the path rules). */
        last_updated = (int64_t)sqlite3_column_int64(st, 5);
        last_id_ok = id && idlen > 0 && idlen <= ADMIN_MAX_ID_LEN && admin_text_ok(id, idlen);
        if (last_id_ok) memcpy(last_id, id, idlen + 1);
        int step = sqlite3_step(st); /* the shard's next row */
        ls[shard].has_row = step == SQLITE_ROW;
        if (step != SQLITE_ROW && step != SQLITE_DONE) src = step;
    }
    if (src != SQLITE_OK) {
        rc = admin_db_error(ctx, shard < 0 ? 0 : shard, res, src, what); /* before COMMIT replaces the message */
        list_close(ls, nshards);
        json_decref(items);
        return rc;
    }
    list_close(ls, nshards);

    json_t *doc = ok ? json_object() : NULL;
    if (doc) {
        put(doc, "sagas", json_incref(items), &ok);
        if (more && last_id_ok) {
            char enc[(ADMIN_MAX_ID_LEN + 40) * 4 / 3 + 4];
            cursor_encode(last_updated, last_id, enc);
            put(doc, "next_cursor", json_string(enc), &ok);
        } else {
            if (more) LOG_WARN(COMPONENT, "list: the last saga's id cannot be put in a cursor; paging stops");
            put(doc, "next_cursor", json_null(), &ok);
        }
    }
    rc = doc && ok ? admin_json_response(res, 200, doc) : SAGA_ENOMEM;
    json_decref(doc);
    json_decref(items);
    return rc;
}

/* ---- GET /v1/stats ---- */

/* {status: 0} for every name in list. */
static json_t *zero_counts(const char *const *list) {
    json_t *o = json_object();
    for (size_t i = 0; o && list[i]; i++) {
        if (json_object_set_new(o, list[i], json_integer(0)) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* obj[name] += count: shards add up. */
static int add_count(json_t *obj, sqlite3_stmt *st, int name_col, int count_col) {
    json_t *name = admin_col_text(st, name_col);
    if (!name) return -1;
    const char *key = json_is_string(name) ? json_string_value(name) : "";
    json_int_t had = json_integer_value(json_object_get(obj, key));
    int rc = json_object_set_new(obj, key, json_integer(had + sqlite3_column_int64(st, count_col)));
    json_decref(name);
    return rc;
}

static const char SQL_BY_STATUS[] = "SELECT status, COUNT(*) FROM sagas GROUP BY status ORDER BY status";
static const char SQL_BY_DEFINITION[] =
    "SELECT definition, status, COUNT(*) FROM sagas GROUP BY definition, status ORDER BY definition, status";
static const char SQL_OLDEST_RUNNING[] =
    "SELECT id, definition, version, created_at, updated_at FROM sagas WHERE status = 'running'"
    " ORDER BY created_at, id LIMIT 1";
static const char SQL_STEPS_BY_STATUS[] = "SELECT status, COUNT(*) FROM steps GROUP BY status ORDER BY status";
static const char SQL_PAUSED[] = "SELECT topic, paused_at, reason FROM paused_topics ORDER BY topic";

typedef struct {
    json_t *by_status, *by_definition, *oldest, *steps;
    json_t *paused;                     /* {topic: {"paused_at", "reason"}}: every shard holds the same */
    int64_t total, step_total, now;
    int64_t oldest_created;             /* of oldest */
    char oldest_id[ADMIN_MAX_ID_LEN + 1]; /* of oldest (cut: ties only) */
} stats_t;

static int stats_row(int which, sqlite3_stmt *st, stats_t *s) {
    switch (which) {
    case 4: {
        const char *topic = (const char *)sqlite3_column_text(st, 0);
        if (!topic || json_object_get(s->paused, topic)) return 0;
        json_t *v = json_object();
        int ok = 1;
        put(v, "paused_at", admin_col_time(st, 1), &ok);
        put(v, "reason", admin_col_text(st, 2), &ok);
        if (ok && json_object_set_new(s->paused, topic, v) == 0) return 0;
        json_decref(ok ? NULL : v);
        return -1;
    }
    case 0:
        s->total += sqlite3_column_int64(st, 1);
        return add_count(s->by_status, st, 0, 1);
    case 1: {
        json_t *name = admin_col_text(st, 0);
        if (!name) return -1;
        const char *key = json_is_string(name) ? json_string_value(name) : "";
        json_t *d = json_object_get(s->by_definition, key);
        if (!d) {
            d = json_pack("{s:I, s:o}", "total", (json_int_t)0, "by_status", zero_counts(SAGA_STATUSES));
            if (!d || json_object_set_new(s->by_definition, key, d) != 0) {
                json_decref(name);
                return -1;
            }
        }
        json_decref(name);
        json_int_t n = sqlite3_column_int64(st, 2);
        json_object_set_new(d, "total", json_integer(json_integer_value(json_object_get(d, "total")) + n));
        return add_count(json_object_get(d, "by_status"), st, 1, 2);
    }
    case 2: {
        /* each shard's oldest: keep the oldest of all (created_at, id) */
        int64_t created = sqlite3_column_int64(st, 3);
        const char *id = (const char *)sqlite3_column_text(st, 0);
        if (!id) id = "";
        if (s->oldest && (created > s->oldest_created ||
                          (created == s->oldest_created && strcmp(id, s->oldest_id) >= 0)))
            return 0;
        int ok = 1;
        json_decref(s->oldest);
        s->oldest = json_object();
        s->oldest_created = created;
        snprintf(s->oldest_id, sizeof s->oldest_id, "%s", id);
        put(s->oldest, "id", admin_col_text(st, 0), &ok);
        put(s->oldest, "definition", admin_col_text(st, 1), &ok);
        put(s->oldest, "version", json_integer(sqlite3_column_int64(st, 2)), &ok);
        put(s->oldest, "created_at", admin_col_time(st, 3), &ok);
        put(s->oldest, "updated_at", admin_col_time(st, 4), &ok);
        put(s->oldest, "age_ms", json_integer(s->now > created ? s->now - created : 0), &ok);
        return ok ? 0 : -1;
    }
    default:
        s->step_total += sqlite3_column_int64(st, 1);
        return add_count(s->steps, st, 0, 1);
    }
}

/* Adds shard i's figures to s: 0, or res filled (and *rc set). */
static int stats_shard(admin_ctx_t *ctx, int i, stats_t *s, int *ok, admin_response_t *res, int *rc) {
    static const char *const sql[] = {SQL_BY_STATUS, SQL_BY_DEFINITION, SQL_OLDEST_RUNNING, SQL_STEPS_BY_STATUS,
                                      SQL_PAUSED};
    static const char *const what[] = {"counting sagas by status", "counting sagas by definition",
                                       "finding the oldest running saga", "counting steps by status",
                                       "reading the paused topics"};
    sqlite3 *db = admin_shard_db(ctx, i, res, rc);
    if (!db) return -1;
    int src = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        *rc = admin_db_error(ctx, i, res, src, "cannot begin a read transaction");
        return -1;
    }
    for (int k = 0; *ok && k < 5; k++) {
        sqlite3_stmt *st = NULL;
        src = sqlite3_prepare_v2(db, sql[k], -1, &st, NULL);
        if (src == SQLITE_OK)
            while ((src = sqlite3_step(st)) == SQLITE_ROW)
                if (stats_row(k, st, s) != 0) *ok = 0;
        if (src != SQLITE_DONE) {
            *rc = admin_db_error(ctx, i, res, src, what[k]);
            sqlite3_finalize(st);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        sqlite3_finalize(st);
    }
    sqlite3_exec(db, *ok ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    return 0;
}

static int key_order(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *admin_json_sorted(json_t *obj) {
    size_t n = json_object_size(obj), i = 0;
    const char **keys = saga_malloc((n ? n : 1) * sizeof *keys);
    json_t *out = keys ? json_object() : NULL;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) if (keys) keys[i++] = key;
    if (out) qsort(keys, n, sizeof *keys, key_order);
    for (i = 0; out && i < n; i++)
        if (json_object_set(out, keys[i], json_object_get(obj, keys[i])) != 0) {
            json_decref(out);
            out = NULL;
        }
    saga_free(keys);
    return out;
}

/* The sum over the shards (each read in its own transaction). */
int admin_get_stats(admin_ctx_t *ctx, const admin_query_t *q, admin_response_t *res) {
    int rc = 0;
    unsigned char *sel = admin_shard_selection(ctx, q, res, &rc);
    if (!sel) return rc;
    stats_t s = {.by_status = zero_counts(SAGA_STATUSES), .by_definition = json_object(),
                 .steps = zero_counts(STEP_STATUSES), .paused = json_object(), .now = saga_now_ms()};
    int ok = s.by_status && s.by_definition && s.steps && s.paused;
    json_t *doc = NULL, *runtime = NULL;
    for (int i = 0, n = admin_shard_count(ctx); ok && i < n; i++)
        if (sel[i] && stats_shard(ctx, i, &s, &ok, res, &rc) != 0) goto out;

    if (ok && admin_shard_count(ctx) > 1) {
        json_t *sorted = admin_json_sorted(s.by_definition);
        json_decref(s.by_definition);
        s.by_definition = sorted;
        ok = sorted != NULL;
    }
    /* What only sagad's memory knows (in-flight per topic, circuits). */
    if (ok && ctx->stats_runtime) {
        runtime = json_object();
        if (!runtime || ctx->stats_runtime(ctx->stats_runtime_arg, runtime) != 0) ok = 0;
    }
    char now[40];
    saga_format_time(s.now, now, sizeof now);
    doc = ok ? json_pack("{s:s, s:{s:I, s:O, s:O}, s:O, s:{s:I, s:O}, s:O}", "generated_at", now, "sagas", "total",
                         (json_int_t)s.total, "by_status", s.by_status, "by_definition", s.by_definition,
                         "oldest_running", s.oldest ? s.oldest : json_null(), "steps", "total",
                         (json_int_t)s.step_total, "by_status", s.steps, "runtime",
                         runtime ? runtime : json_null())
             : NULL;
    if (doc) { /* sorted: the same bytes from every instance and shard count */
        json_t *paused = admin_json_sorted(s.paused);
        if (!paused || json_object_set_new(doc, "paused_topics", paused)) {
            json_decref(doc);
            doc = NULL;
        }
    }
    rc = doc ? admin_json_response(res, 200, doc) : SAGA_ENOMEM;
out:
    saga_free(sel);
    json_decref(doc);
    json_decref(runtime);
    json_decref(s.by_status);
    json_decref(s.by_definition);
    json_decref(s.oldest);
    json_decref(s.steps);
    json_decref(s.paused);
    return rc;
}

/* The changelog codec, encode side (changelog.h): a saga's or a
 * definition's rows as one record value, the record keys, the shard's
 * changelog marker, and the prepared statements both sides share.
 *
 * What a saga record holds is exactly what the shard keeps for that saga:
 * its sagas row (start_message_id included: starts stay idempotent on their
 * message id after a restore, saga_store_start_seen), its steps rows (the
 * loop rebuilds its flow-control state from them, saga_store_active_steps),
 * its history rows (GET ?at= replays them) and its timers rows.
 *
 * What no record holds, and why:
 *  - dedup: an optimisation, not state. The engine refuses a reply it has
 *    seen (attempt numbers and step statuses: SAGA_ESTALE), a start is
 *    refused by its saga id or sagas.start_message_id, which the record
 *    carries; and with Kafka transactions the consumed offsets commit with
 *    the records, so a restored shard does not consume them again.
 *  - outbox: the messages a change produces go out in the same Kafka
 *    transaction as the change's record; once the record is committed, so
 *    are they (a restore must not send them again).
 *  - outbox_parked: what the broker refused for good, kept for operators on
 *    that disk; its consequence (the step failed, the stub sent) is in the
 *    saga's steps and history, which the record carries.
 *  - definitions: not repeated in every saga record (a definition is
 *    kilobytes, a shard holds 100,000 sagas); a record of its own under key
 *    def/NAME/VERSION, produced to the shard's partition before the first
 *    saga record that needs it, and the saga record names the hash it ran
 *    on (definition_hash) so that a mismatch is caught on apply. */
#include "changelog.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "changelog_internal.h"
#include "messages.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "store_internal.h"

static void free_statements(void *p) {
    saga_changelog_stmts_t *c = p;
#define CL_FINALIZE(name, sql) sqlite3_finalize(c->name);
    CHANGELOG_STATEMENTS(CL_FINALIZE)
#undef CL_FINALIZE
    saga_free(c);
}

saga_changelog_stmts_t *saga_changelog_stmts(saga_store_t *st) {
    saga_changelog_stmts_t *c = saga_store_ext(st);
    if (c) return c;
    c = saga_calloc(1, sizeof *c);
    if (!c) return NULL;
    sqlite3 *db = saga_store_db(st);
#define CL_PREPARE(name, sql)                                                                   \
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->name, NULL) != SQLITE_OK) { \
        free_statements(c);                                                                     \
        return NULL;                                                                            \
    }
    CHANGELOG_STATEMENTS(CL_PREPARE)
#undef CL_PREPARE
    saga_store_set_ext(st, c, free_statements);
    return c;
}

saga_changelog_key_kind_t saga_changelog_key_kind(const char *key, size_t len) {
    if (!key || len == 0) return SAGA_CHANGELOG_KEY_INVALID;
    size_t plen = sizeof SAGA_CHANGELOG_DEF_PREFIX - 1;
    if (len > plen && memcmp(key, SAGA_CHANGELOG_DEF_PREFIX, plen) == 0) return SAGA_CHANGELOG_KEY_DEFINITION;
    if (len >= SAGA_ID_MAX || memchr(key, '\0', len)) return SAGA_CHANGELOG_KEY_INVALID;
    char id[SAGA_ID_MAX];
    memcpy(id, key, len);
    id[len] = '\0';
    return saga_valid_id(id, 0) ? SAGA_CHANGELOG_KEY_SAGA : SAGA_CHANGELOG_KEY_INVALID;
}

int saga_changelog_definition_key(const char *name, int version, char *buf, size_t len) {
    int n = snprintf(buf, len, SAGA_CHANGELOG_DEF_PREFIX "%s/%d", name, version);
    return n < 0 || (size_t)n >= len ? SAGA_EINVAL : n;
}

void saga_changelog_key_text(const char *key, size_t len, char *buf, size_t buflen) {
    size_t n = 0;
    for (size_t i = 0; key && i < len && n + 4 < buflen; i++) {
        unsigned char c = (unsigned char)key[i];
        buf[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        if (n >= 120) {
            memcpy(buf + n, "...", 3);
            n += 3;
            break;
        }
    }
    buf[n] = '\0';
}

/* ---- encode ------------------------------------------------------------------ */

static json_t *col_text(sqlite3_stmt *q, int col) {
    const char *t = (const char *)sqlite3_column_text(q, col);
    return t ? json_stringn(t, (size_t)sqlite3_column_bytes(q, col)) : json_null();
}

/* A JSON column embedded as its value; *bad set when it does not parse. */
static json_t *col_json(sqlite3_stmt *q, int col, int *bad) {
    const char *t = (const char *)sqlite3_column_text(q, col);
    if (!t) return json_null();
    json_t *v = saga_json_parse(t, (size_t)sqlite3_column_bytes(q, col), NULL, 0);
    if (!v) *bad = 1;
    return v;
}

static json_t *col_int(sqlite3_stmt *q, int col) { return json_integer(sqlite3_column_int64(q, col)); }

/* Sets member name of obj (taking v); 1 when v is NULL (allocation or parse). */
static int put(json_t *obj, const char *name, json_t *v) { return !v || json_object_set_new(obj, name, v); }

static int encode_saga_row(sqlite3_stmt *q, const char *id, json_t *saga, int *bad) {
    int fail = put(saga, "id", json_string(id));
    fail |= put(saga, "definition", col_text(q, 0));
    fail |= put(saga, "version", col_int(q, 1));
    fail |= put(saga, "definition_hash", col_text(q, 13));
    fail |= put(saga, "status", col_text(q, 2));
    fail |= put(saga, "input", col_json(q, 3, bad));
    fail |= put(saga, "traceparent", col_text(q, 4));
    fail |= put(saga, "start_message_id", col_text(q, 5));
    fail |= put(saga, "created_at", col_int(q, 6));
    fail |= put(saga, "updated_at", col_int(q, 7));
    fail |= put(saga, "deadline_at", col_int(q, 8));
    fail |= put(saga, "seq", col_int(q, 9));
    fail |= put(saga, "completions", col_int(q, 10));
    fail |= put(saga, "error_code", col_text(q, 11));
    fail |= put(saga, "error_message", col_text(q, 12));
    return fail;
}

static int encode_step_row(sqlite3_stmt *q, json_t *step, int *bad) {
    int fail = put(step, "idx", col_int(q, 0));
    fail |= put(step, "name", col_text(q, 1));
    fail |= put(step, "status", col_text(q, 2));
    fail |= put(step, "attempt", col_int(q, 3));
    fail |= put(step, "comp_attempt", col_int(q, 4));
    fail |= put(step, "comp_budget_base", col_int(q, 5));
    fail |= put(step, "outcome_unknown", col_int(q, 6));
    /* SQL NULL (no output yet) is an absent member; JSON null is null */
    if (sqlite3_column_type(q, 7) != SQLITE_NULL) fail |= put(step, "output", col_json(q, 7, bad));
    fail |= put(step, "error_code", col_text(q, 8));
    fail |= put(step, "error_message", col_text(q, 9));
    fail |= put(step, "started_at", col_int(q, 10));
    fail |= put(step, "finished_at", col_int(q, 11));
    fail |= put(step, "updated_at", col_int(q, 12));
    fail |= put(step, "completion_order", col_int(q, 13));
    return fail;
}

static int encode_history_row(sqlite3_stmt *q, json_t *h, int *bad) {
    int fail = put(h, "seq", col_int(q, 0));
    fail |= put(h, "at", col_int(q, 1));
    fail |= put(h, "event", col_text(q, 2));
    fail |= put(h, "step", col_text(q, 3));
    fail |= put(h, "status", col_text(q, 4));
    fail |= put(h, "detail", col_json(q, 5, bad));
    return fail;
}

static int encode_timer_row(sqlite3_stmt *q, json_t *t, int *bad) {
    (void)bad;
    int fail = put(t, "slot", col_int(q, 0));
    fail |= put(t, "kind", col_text(q, 1));
    fail |= put(t, "attempt", col_int(q, 2));
    fail |= put(t, "due_at", col_int(q, 3));
    return fail;
}

/* Appends one object per row of q (bound to the saga id) to a new array
 * set as member name of rec. */
static int encode_rows(sqlite3 *db, sqlite3_stmt *q, const char *id, json_t *rec, const char *name,
                       int (*row)(sqlite3_stmt *, json_t *, int *), char *err, size_t errlen) {
    json_t *arr = json_array();
    if (put(rec, name, arr)) return SAGA_ENOMEM;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int rc, bad = 0, result = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        json_t *o = json_object();
        int fail = !o || row(q, o, &bad);
        if (fail || json_array_append_new(arr, o)) {
            result = bad ? SAGA_EPARSE : SAGA_ENOMEM;
            if (bad) snprintf(err, errlen, "changelog: saga '%s': a stored JSON column of its %s rows does not parse", id, name);
            break;
        }
    }
    if (!result && rc != SQLITE_DONE) {
        snprintf(err, errlen, "changelog: reading %s of saga '%s': %s", name, id, sqlite3_errmsg(db));
        result = SAGA_ESTORE;
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return result;
}

static int finish(json_t *rec, const char *key, size_t max_message_bytes, char **out, size_t *out_len, char *err,
                  size_t errlen) {
    char *text = saga_json_dump(rec);
    json_decref(rec);
    if (!text) return SAGA_ENOMEM;
    size_t len = strlen(text), limit = max_message_bytes > SAGA_MESSAGE_RESERVE ? max_message_bytes - SAGA_MESSAGE_RESERVE : 0;
    if (max_message_bytes && strlen(key) + len > limit) {
        snprintf(err, errlen,
                 "changelog record of '%s' is %zu bytes (key included), over the %zu a record may have "
                 "(--max-message-bytes %zu less %d for framing): it cannot be produced",
                 key, strlen(key) + len, limit, max_message_bytes, SAGA_MESSAGE_RESERVE);
        saga_free(text);
        return SAGA_EINVAL;
    }
    *out = text;
    *out_len = len;
    return 0;
}

int saga_changelog_encode(saga_store_t *st, const char *saga_id, size_t max_message_bytes, char **out,
                          size_t *out_len, char *err, size_t errlen) {
    *out = NULL;
    *out_len = 0;
    saga_changelog_stmts_t *c = saga_changelog_stmts(st);
    sqlite3 *db = saga_store_db(st);
    if (!c) {
        snprintf(err, errlen, "changelog: preparing statements: %s", sqlite3_errmsg(db));
        return SAGA_ESTORE;
    }
    sqlite3_stmt *q = c->enc_saga;
    sqlite3_bind_text(q, 1, saga_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        if (rc == SQLITE_DONE) return SAGA_ENOTFOUND;
        snprintf(err, errlen, "changelog: reading saga '%s': %s", saga_id, sqlite3_errmsg(db));
        return SAGA_ESTORE;
    }
    json_t *rec = json_object(), *saga = json_object();
    int bad = 0;
    int fail = !rec || put(rec, "v", json_integer(SAGA_CHANGELOG_VERSION)) || put(rec, "saga", saga) ||
               encode_saga_row(q, saga_id, saga, &bad);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (fail) {
        json_decref(rec);
        if (!bad) return SAGA_ENOMEM;
        snprintf(err, errlen, "changelog: saga '%s': its stored input is not JSON", saga_id);
        return SAGA_EPARSE;
    }
    rc = encode_rows(db, c->enc_steps, saga_id, rec, "steps", encode_step_row, err, errlen);
    if (!rc) rc = encode_rows(db, c->enc_history, saga_id, rec, "history", encode_history_row, err, errlen);
    if (!rc) rc = encode_rows(db, c->enc_timers, saga_id, rec, "timers", encode_timer_row, err, errlen);
    if (rc) {
        json_decref(rec);
        return rc;
    }
    return finish(rec, saga_id, max_message_bytes, out, out_len, err, errlen);
}

int saga_changelog_encode_definition(saga_store_t *st, const char *name, int version, size_t max_message_bytes,
                                     char **out, size_t *out_len, char *err, size_t errlen) {
    *out = NULL;
    *out_len = 0;
    char key[SAGA_NAME_MAX + 32];
    if (saga_changelog_definition_key(name, version, key, sizeof key) < 0) {
        snprintf(err, errlen, "changelog: definition name '%.64s' is too long for a key", name);
        return SAGA_EINVAL;
    }
    saga_changelog_stmts_t *c = saga_changelog_stmts(st);
    sqlite3 *db = saga_store_db(st);
    if (!c) {
        snprintf(err, errlen, "changelog: preparing statements: %s", sqlite3_errmsg(db));
        return SAGA_ESTORE;
    }
    sqlite3_stmt *q = c->enc_def;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, version);
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        if (rc == SQLITE_DONE) return SAGA_ENOTFOUND;
        snprintf(err, errlen, "changelog: reading definition %s version %d: %s", name, version, sqlite3_errmsg(db));
        return SAGA_ESTORE;
    }
    json_t *rec = json_object(), *def = json_object();
    int bad = 0;
    int fail = !rec || put(rec, "v", json_integer(SAGA_CHANGELOG_VERSION)) || put(rec, "definition", def) ||
               put(def, "name", json_string(name)) || put(def, "version", json_integer(version)) ||
               put(def, "hash", col_text(q, 0)) || put(def, "json", col_json(q, 1, &bad)) ||
               put(def, "loaded_at", col_int(q, 2));
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (fail) {
        json_decref(rec);
        if (!bad) return SAGA_ENOMEM;
        snprintf(err, errlen, "changelog: stored definition %s version %d is not JSON", name, version);
        return SAGA_EPARSE;
    }
    return finish(rec, key, max_message_bytes, out, out_len, err, errlen);
}

/* ---- the shard's marker --------------------------------------------------------- */

int saga_changelog_offset_get(saga_store_t *st, int64_t *offset) {
    saga_changelog_stmts_t *c = saga_changelog_stmts(st);
    if (!c) return SAGA_ESTORE;
    int rc = sqlite3_step(c->meta_get);
    if (rc == SQLITE_ROW) *offset = sqlite3_column_int64(c->meta_get, 0);
    sqlite3_reset(c->meta_get);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? SAGA_ENOTFOUND : SAGA_ESTORE;
}

static int offset_write(saga_store_t *st, sqlite3_stmt *q, int64_t offset) {
    sqlite3_bind_int64(q, 1, offset);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_DONE ? 0 : SAGA_ESTORE;
}

int saga_changelog_offset_set(saga_store_t *st, int64_t offset) {
    saga_changelog_stmts_t *c = saga_changelog_stmts(st);
    if (!c || offset < 0) return c ? SAGA_EINVAL : SAGA_ESTORE;
    return offset_write(st, c->meta_set, offset);
}

int saga_changelog_offset_advance(saga_store_t *st, int64_t offset) {
    saga_changelog_stmts_t *c = saga_changelog_stmts(st);
    if (!c) return SAGA_ESTORE;
    return offset_write(st, c->meta_advance, offset);
}

/* ---- bulk restore ---------------------------------------------------------------- */

static int exec_sql(saga_store_t *st, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    sqlite3 *db = saga_store_db(st);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    snprintf(err, errlen, "changelog restore: %s: %s", sql, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return SAGA_ESTORE;
}

int saga_changelog_bulk_begin(saga_store_t *st, char *err, size_t errlen) {
    return exec_sql(st, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144", err, errlen);
}

int saga_changelog_bulk_end(saga_store_t *st, const char *synchronous, char *err, size_t errlen) {
    const char *sync = synchronous ? synchronous : "FULL";
    if (strcmp(sync, "FULL") && strcmp(sync, "NORMAL") && strcmp(sync, "OFF")) {
        snprintf(err, errlen, "changelog restore: synchronous must be FULL, NORMAL or OFF, not '%.32s'", sync);
        return SAGA_EINVAL;
    }
    char sql[160];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-16000", sync);
    int rc = exec_sql(st, sql, err, errlen);
    if (rc) return rc;
    /* journal_mode=OFF wrote the pages without fsync: sync the file now */
    const char *path = sqlite3_db_filename(saga_store_db(st), "main");
    if (!path || !*path) return 0; /* in memory */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "changelog restore: fsync %s failed", path);
        if (fd >= 0) close(fd);
        return SAGA_EIO;
    }
    close(fd);
    return 0;
}

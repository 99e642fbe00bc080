/* The changelog codec, restore side (changelog.h): validates a record
 * strictly (every member, type and range; no unknown member), then
 * replaces what the shard stores for that saga or definition under a
 * savepoint, so a bad record or a failed write leaves nothing behind. */
#include "changelog.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "changelog_internal.h"
#include "messages.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_utf8.h"
#include "store_internal.h"

typedef struct {
    char key[132]; /* printable form, for messages */
    int64_t offset;
    char *err;
    size_t errlen;
} chk_t;

static int bad(chk_t *c, const char *fmt, ...) {
    char what[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    saga_utf8_trim_cut(what);
    if (c->offset >= 0)
        snprintf(c->err, c->errlen, "changelog record '%s' (offset %lld): %s", c->key, (long long)c->offset, what);
    else
        snprintf(c->err, c->errlen, "changelog record '%s': %s", c->key, what);
    saga_utf8_trim_cut(c->err);
    return SAGA_EPARSE;
}

static const char *type_name(const json_t *v) {
    if (!v) return "missing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* obj must be an object holding every name of req, any of opt, nothing else. */
static int members(chk_t *c, const json_t *obj, const char *where, const char *const *req, const char *const *opt) {
    if (!json_is_object(obj)) return bad(c, "%s: must be an object, not %s", where, type_name(obj));
    for (const char *const *r = req; *r; r++)
        if (!json_object_get(obj, *r)) return bad(c, "%s: member '%s' is missing", where, *r);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        int known = 0;
        for (const char *const *r = req; *r && !known; r++) known = strcmp(*r, k) == 0;
        for (const char *const *o = opt; o && *o && !known; o++) known = strcmp(*o, k) == 0;
        if (!known) return bad(c, "%s: unknown member '%.*s'", where, saga_utf8_prefix(k, 64), k);
    }
    return 0;
}

static int get_int(chk_t *c, const json_t *obj, const char *where, const char *name, long long min, long long max,
                   long long *out) {
    const json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v)) return bad(c, "%s.%s: must be an integer, not %s", where, name, type_name(v));
    long long x = json_integer_value(v);
    if (x < min || x > max) return bad(c, "%s.%s: %lld is not in [%lld, %lld]", where, name, x, min, max);
    if (out) *out = x;
    return 0;
}

/* A string of at most max bytes without NUL (or null when nullable). */
static int get_str(chk_t *c, const json_t *obj, const char *where, const char *name, size_t max, int nullable,
                   const char **out) {
    const json_t *v = json_object_get(obj, name);
    if (nullable && json_is_null(v)) {
        if (out) *out = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return bad(c, "%s.%s: must be a string%s, not %s", where, name, nullable ? " or null" : "", type_name(v));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (strlen(s) != len) return bad(c, "%s.%s: holds a NUL byte", where, name);
    if (len > max) return bad(c, "%s.%s: %zu bytes, at most %zu allowed", where, name, len, max);
    if (out) *out = s;
    return 0;
}

static int get_name(chk_t *c, const json_t *obj, const char *where, const char *name, int allow_slash, const char **out) {
    const char *s = NULL;
    int rc = get_str(c, obj, where, name, allow_slash ? SAGA_MESSAGE_ID_MAX : SAGA_ID_MAX - 1, 0, &s);
    if (rc) return rc;
    if (!saga_valid_id(s, allow_slash))
        return bad(c, "%s.%s: '%.*s' must be 1-%d printable ASCII bytes%s", where, name, saga_utf8_prefix(s, 64), s,
                   allow_slash ? SAGA_MESSAGE_ID_MAX : SAGA_ID_MAX - 1, allow_slash ? "" : " without '/'");
    if (out) *out = s;
    return 0;
}

static int get_enum(chk_t *c, const json_t *obj, const char *where, const char *name, int (*parse)(const char *)) {
    const char *s = NULL;
    int rc = get_str(c, obj, where, name, 64, 0, &s);
    if (!rc && parse(s) < 0) rc = bad(c, "%s.%s: unknown value '%.*s'", where, name, saga_utf8_prefix(s, 64), s);
    return rc;
}

static int is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    return 1;
}

/* saga.search: what saga_search_render makes, {NAME: "value"}. */
static int check_search(chk_t *c, const json_t *search) {
    if (!json_is_object(search)) return bad(c, "saga.search: must be an object, not %s", type_name(search));
    if (json_object_size(search) > SAGA_MAX_SEARCH)
        return bad(c, "saga.search: %zu attributes, at most %d allowed", json_object_size(search), SAGA_MAX_SEARCH);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)search, k, v) {
        if (!saga_search_name_ok(k, strlen(k)))
            return bad(c, "saga.search: '%.*s' is not a search attribute name", saga_utf8_prefix(k, 64), k);
        char where[SAGA_SEARCH_NAME_MAX + 16];
        snprintf(where, sizeof where, "saga.search");
        int rc = get_str(c, search, where, k, SAGA_SEARCH_VALUE_MAX, 0, NULL);
        if (rc) return rc;
    }
    return 0;
}

#define T_MAX INT64_MAX /* times and sequence numbers: non-negative int64 */

static int check_saga(chk_t *c, const json_t *s, const char *id, long long *seq) {
    static const char *const req[] = {"id", "definition", "version", "definition_hash", "status", "input",
                                      "traceparent", "start_message_id", "created_at", "updated_at",
                                      "deadline_at", "seq", "completions", "error_code", "error_message", NULL};
    const char *w = "saga", *sid = NULL, *hash = NULL;
    static const char *const opt[] = {"search", "parent", NULL};
    int rc = members(c, s, w, req, opt);
    if (!rc) rc = get_name(c, s, w, "id", 0, &sid);
    if (!rc && strcmp(sid, id)) rc = bad(c, "saga.id: '%s' is not the record's key", sid);
    if (!rc) rc = get_name(c, s, w, "definition", 0, NULL);
    if (!rc) rc = get_int(c, s, w, "version", 1, INT_MAX, NULL);
    if (!rc) rc = get_str(c, s, w, "definition_hash", 64, 1, &hash);
    if (!rc && hash && !is_hex64(hash)) rc = bad(c, "saga.definition_hash: not 64 lowercase hex digits");
    if (!rc) rc = get_enum(c, s, w, "status", saga_status_parse);
    if (!rc) rc = get_str(c, s, w, "traceparent", 63, 0, NULL);
    if (!rc && !json_is_null(json_object_get(s, "start_message_id")))
        rc = get_name(c, s, w, "start_message_id", 1, NULL);
    if (!rc) rc = get_int(c, s, w, "created_at", 0, T_MAX, NULL);
    if (!rc) rc = get_int(c, s, w, "updated_at", 0, T_MAX, NULL);
    if (!rc) rc = get_int(c, s, w, "deadline_at", 0, T_MAX, NULL);
    if (!rc) rc = get_int(c, s, w, "seq", 0, T_MAX, seq);
    if (!rc) rc = get_int(c, s, w, "completions", 0, SAGA_MAX_STEPS, NULL);
    if (!rc) rc = get_str(c, s, w, "error_code", 63, 0, NULL);
    if (!rc) rc = get_str(c, s, w, "error_message", 255, 0, NULL);
    if (!rc && json_object_get(s, "search")) rc = check_search(c, json_object_get(s, "search"));
    const json_t *parent = json_object_get(s, "parent");
    if (!rc && parent) { /* a child saga: who it answers */
        static const char *const preq[] = {"saga_id", "step", "attempt", "partition", NULL}, *const popt[] = {"compensate", NULL};
        rc = members(c, parent, "saga.parent", preq, popt);
        if (!rc) rc = get_name(c, parent, "saga.parent", "saga_id", 0, NULL);
        if (!rc) rc = get_name(c, parent, "saga.parent", "step", 0, NULL);
        if (!rc) rc = get_int(c, parent, "saga.parent", "attempt", 1, INT_MAX, NULL);
        if (!rc) rc = get_int(c, parent, "saga.parent", "partition", -1, INT_MAX, NULL);
        if (!rc && json_object_get(parent, "compensate")) rc = get_int(c, parent, "saga.parent", "compensate", 1, INT_MAX, NULL);
    }
    return rc;
}

static int check_step(chk_t *c, const json_t *st, const char *w, long long *idx) {
    static const char *const req[] = {"idx", "name", "status", "attempt", "comp_attempt", "comp_budget_base",
                                      "outcome_unknown", "error_code", "error_message", "started_at",
                                      "finished_at", "updated_at", "completion_order", NULL};
    static const char *const opt[] = {"output", "signal", NULL};
    int rc = members(c, st, w, req, opt);
    if (!rc) rc = get_int(c, st, w, "idx", 0, SAGA_MAX_STEPS - 1, idx);
    if (!rc) rc = get_name(c, st, w, "name", 0, NULL);
    if (!rc) rc = get_enum(c, st, w, "status", saga_step_status_parse);
    if (!rc) rc = get_int(c, st, w, "attempt", 0, INT_MAX, NULL);
    if (!rc) rc = get_int(c, st, w, "comp_attempt", 0, INT_MAX, NULL);
    if (!rc) rc = get_int(c, st, w, "comp_budget_base", 0, INT_MAX, NULL);
    if (!rc) rc = get_int(c, st, w, "outcome_unknown", 0, 1, NULL);
    if (!rc) rc = get_str(c, st, w, "error_code", 63, 0, NULL);
    if (!rc) rc = get_str(c, st, w, "error_message", 255, 0, NULL);
    if (!rc) rc = get_int(c, st, w, "started_at", 0, T_MAX, NULL);
    if (!rc) rc = get_int(c, st, w, "finished_at", 0, T_MAX, NULL);
    if (!rc) rc = get_int(c, st, w, "updated_at", 0, T_MAX, NULL);
    if (!rc) rc = get_int(c, st, w, "completion_order", 0, SAGA_MAX_STEPS, NULL);
    const json_t *sig = json_object_get(st, "signal");
    if (!rc && sig) { /* a kept signal: {"status", "output"?, "error"?} */
        static const char *const sreq[] = {"status", NULL}, *const sopt[] = {"output", "error", NULL};
        char sw[64];
        snprintf(sw, sizeof sw, "%s.signal", w);
        rc = members(c, sig, sw, sreq, sopt);
        const char *status = NULL;
        if (!rc) rc = get_str(c, sig, sw, "status", 16, 0, &status);
        if (!rc && strcmp(status, "success") && strcmp(status, "failure"))
            rc = bad(c, "%s.status: must be success or failure", sw);
        if (!rc && json_object_get(sig, "error") && !json_is_object(json_object_get(sig, "error")))
            rc = bad(c, "%s.error: must be an object", sw);
    }
    return rc;
}

static int check_history(chk_t *c, const json_t *h, const char *w, long long max_seq, long long *seq) {
    static const char *const req[] = {"seq", "at", "event", "step", "status", "detail", NULL};
    int rc = members(c, h, w, req, NULL);
    if (!rc) rc = get_int(c, h, w, "seq", 1, max_seq, seq);
    if (!rc) rc = get_int(c, h, w, "at", 0, T_MAX, NULL);
    if (!rc) rc = get_str(c, h, w, "event", 64, 0, NULL);
    if (!rc) rc = get_str(c, h, w, "step", SAGA_NAME_MAX - 1, 1, NULL);
    if (!rc) rc = get_str(c, h, w, "status", 64, 0, NULL);
    if (!rc && !json_is_object(json_object_get(h, "detail")))
        rc = bad(c, "%s.detail: must be an object, not %s", w, type_name(json_object_get(h, "detail")));
    return rc;
}

static int check_timer(chk_t *c, const json_t *t, const char *w, long long *slot) {
    static const char *const req[] = {"slot", "kind", "attempt", "due_at", NULL};
    int rc = members(c, t, w, req, NULL);
    if (!rc) rc = get_int(c, t, w, "slot", -1, SAGA_MAX_STEPS - 1, slot);
    if (!rc) rc = get_enum(c, t, w, "kind", saga_timer_kind_parse);
    if (!rc) rc = get_int(c, t, w, "attempt", 0, INT_MAX, NULL);
    if (!rc) rc = get_int(c, t, w, "due_at", 0, T_MAX, NULL);
    return rc;
}

/* Checks every element of array member name with fn, whose key (idx, seq,
 * slot) must increase strictly: rows are unique and in order. */
static int check_rows(chk_t *c, const json_t *rec, const char *name, size_t max_rows, long long max_seq,
                      int (*fn)(chk_t *, const json_t *, const char *, long long, long long *)) {
    const json_t *arr = json_object_get(rec, name);
    if (!json_is_array(arr)) return bad(c, "%s: must be an array, not %s", name, type_name(arr));
    if (json_array_size(arr) > max_rows)
        return bad(c, "%s: %zu rows, at most %zu allowed", name, json_array_size(arr), max_rows);
    long long prev = LLONG_MIN;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char w[48];
        snprintf(w, sizeof w, "%s[%zu]", name, i);
        long long k = 0;
        int rc = fn(c, json_array_get(arr, i), w, max_seq, &k);
        if (rc) return rc;
        if (k <= prev) return bad(c, "%s: row key %lld repeats or is out of order", w, k);
        prev = k;
    }
    return 0;
}

static int step_fn(chk_t *c, const json_t *v, const char *w, long long m, long long *k) {
    (void)m;
    return check_step(c, v, w, k);
}
static int history_fn(chk_t *c, const json_t *v, const char *w, long long m, long long *k) {
    return check_history(c, v, w, m, k);
}
static int timer_fn(chk_t *c, const json_t *v, const char *w, long long m, long long *k) {
    (void)m;
    return check_timer(c, v, w, k);
}

static int check_version(chk_t *c, const json_t *rec) {
    if (!json_is_object(rec)) return bad(c, "must be a JSON object, not %s", type_name(rec));
    const json_t *v = json_object_get(rec, "v");
    if (!json_is_integer(v)) return bad(c, "v (the format version): must be an integer, not %s", type_name(v));
    if (json_integer_value(v) != SAGA_CHANGELOG_VERSION)
        return bad(c, "format version %lld is not supported (this sagad reads version %d)",
                   (long long)json_integer_value(v), SAGA_CHANGELOG_VERSION);
    return 0;
}

/* ---- writes -------------------------------------------------------------------- */

static int step_done(sqlite3_stmt *q) {
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return rc == SQLITE_DONE ? 0 : SAGA_ESTORE;
}

static void bind_str(sqlite3_stmt *q, int i, const json_t *obj, const char *name) {
    const char *s = json_string_value(json_object_get(obj, name));
    if (s) sqlite3_bind_text(q, i, s, -1, SQLITE_STATIC);
    else sqlite3_bind_null(q, i);
}

static void bind_int(sqlite3_stmt *q, int i, const json_t *obj, const char *name) {
    sqlite3_bind_int64(q, i, json_integer_value(json_object_get(obj, name)));
}

/* Binds member name dumped as JSON text (absent: NULL); *text is freed by the caller. */
static int bind_json(sqlite3_stmt *q, int i, const json_t *obj, const char *name, char **text) {
    const json_t *v = json_object_get(obj, name);
    *text = NULL;
    if (!v) return sqlite3_bind_null(q, i) == SQLITE_OK ? 0 : SAGA_ESTORE;
    if (!(*text = saga_json_dump(v))) return SAGA_ENOMEM;
    sqlite3_bind_text(q, i, *text, -1, SQLITE_STATIC);
    return 0;
}

/* Deletes every row of saga id. A saga's steps, history and timers rows
 * never outlive its sagas row (the store inserts the saga row first;
 * retention and this file delete all four together), so when there was no
 * sagas row there is nothing else to delete: a restore into an empty shard
 * runs one statement instead of four. */
static int delete_saga(saga_store_t *st, saga_changelog_stmts_t *c, const char *id) {
    saga_changelog_history_drop(c, id);
    sqlite3_bind_text(c->del_saga, 1, id, -1, SQLITE_STATIC);
    if (step_done(c->del_saga)) return SAGA_ESTORE;
    if (sqlite3_changes(saga_store_db(st)) == 0) return 0;
    sqlite3_stmt *dels[] = {c->del_steps, c->del_history, c->del_timers};
    for (size_t i = 0; i < sizeof dels / sizeof dels[0]; i++) {
        sqlite3_bind_text(dels[i], 1, id, -1, SQLITE_STATIC);
        if (step_done(dels[i])) return SAGA_ESTORE;
    }
    return 0;
}

static int write_saga(saga_store_t *st, saga_changelog_stmts_t *c, const char *id, const json_t *rec) {
    int rc = delete_saga(st, c, id);
    if (rc) return rc;
    const json_t *s = json_object_get(rec, "saga");
    sqlite3_stmt *q = c->ins_saga;
    char *text;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    bind_str(q, 2, s, "definition");
    bind_int(q, 3, s, "version");
    bind_str(q, 4, s, "status");
    if ((rc = bind_json(q, 5, s, "input", &text))) return rc;
    bind_str(q, 6, s, "traceparent");
    bind_str(q, 7, s, "start_message_id");
    bind_int(q, 8, s, "created_at");
    bind_int(q, 9, s, "updated_at");
    bind_int(q, 10, s, "deadline_at");
    bind_int(q, 11, s, "seq");
    bind_int(q, 12, s, "completions");
    bind_str(q, 13, s, "error_code");
    bind_str(q, 14, s, "error_message");
    char *search = NULL, *parent = NULL;
    if ((rc = bind_json(q, 15, s, "search", &search)) || (rc = bind_json(q, 16, s, "parent", &parent))) {
        saga_free(search);
        saga_free(text);
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        return rc;
    }
    rc = step_done(q);
    saga_free(parent);
    saga_free(search);
    saga_free(text);
    const json_t *arr = json_object_get(rec, "steps"), *r;
    size_t i;
    json_array_foreach(arr, i, r) {
        if (rc) break;
        q = c->ins_step;
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        bind_int(q, 2, r, "idx");
        bind_str(q, 3, r, "name");
        bind_str(q, 4, r, "status");
        bind_int(q, 5, r, "attempt");
        bind_int(q, 6, r, "comp_attempt");
        bind_int(q, 7, r, "comp_budget_base");
        bind_int(q, 8, r, "outcome_unknown");
        if ((rc = bind_json(q, 9, r, "output", &text))) break;
        bind_str(q, 10, r, "error_code");
        bind_str(q, 11, r, "error_message");
        bind_int(q, 12, r, "started_at");
        bind_int(q, 13, r, "finished_at");
        bind_int(q, 14, r, "updated_at");
        bind_int(q, 15, r, "completion_order");
        char *sig_text = NULL;
        if ((rc = bind_json(q, 16, r, "signal", &sig_text))) {
            saga_free(text);
            break;
        }
        rc = step_done(q);
        saga_free(sig_text);
        saga_free(text);
    }
    arr = json_object_get(rec, "history");
    json_array_foreach(arr, i, r) {
        if (rc) break;
        q = c->ins_history;
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        bind_int(q, 2, r, "seq");
        bind_int(q, 3, r, "at");
        bind_str(q, 4, r, "event");
        bind_str(q, 5, r, "step");
        bind_str(q, 6, r, "status");
        if ((rc = bind_json(q, 7, r, "detail", &text))) break;
        rc = step_done(q);
        saga_free(text);
    }
    arr = json_object_get(rec, "timers");
    json_array_foreach(arr, i, r) {
        if (rc) break;
        q = c->ins_timer;
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
        bind_int(q, 2, r, "slot");
        bind_str(q, 3, r, "kind");
        bind_int(q, 4, r, "attempt");
        bind_int(q, 5, r, "due_at");
        rc = step_done(q);
    }
    return rc;
}

/* ---- the two kinds of record ------------------------------------------------------ */

/* Catch-up in place (saga_changelog_only_newer): whether the stored saga is
 * at least as new as the record (seq counts its history events, updated_at
 * breaks a tie), or, for a tombstone (rec NULL), is still running: then the
 * record is older than what the shard holds and is skipped. 1 skip, 0 apply,
 * SAGA_ESTORE. */
static int stored_is_newer(saga_changelog_stmts_t *c, const char *id, const json_t *rec) {
    sqlite3_stmt *q = c->saga_version;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(q), newer = 0;
    if (step == SQLITE_ROW) {
        long long seq = sqlite3_column_int64(q, 0), updated = sqlite3_column_int64(q, 1);
        const char *status = (const char *)sqlite3_column_text(q, 2);
        if (!rec) {
            newer = status && strcmp(status, "completed") && strcmp(status, "compensated");
        } else {
            const json_t *s = json_object_get(rec, "saga");
            long long rseq = (long long)json_integer_value(json_object_get(s, "seq"));
            long long rupd = (long long)json_integer_value(json_object_get(s, "updated_at"));
            newer = seq > rseq || (seq == rseq && updated >= rupd);
        }
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return step == SQLITE_ROW || step == SQLITE_DONE ? newer : SAGA_ESTORE;
}

void saga_changelog_only_newer(saga_store_t *st, bool on) {
    saga_changelog_stmts_t *c = saga_changelog_stmts(st);
    if (c) c->only_newer = on;
}

static int apply_saga(chk_t *k, saga_store_t *st, saga_changelog_stmts_t *c, const char *id, const json_t *rec) {
    if (!rec) {
        int newer = c->only_newer ? stored_is_newer(c, id, NULL) : 0;
        return newer < 0 ? newer : newer ? 0 : delete_saga(st, c, id);
    }
    static const char *const req[] = {"v", "saga", "steps", "history", "timers", NULL};
    long long seq = 0;
    int rc = check_version(k, rec);
    if (!rc) rc = members(k, rec, "record", req, NULL);
    if (!rc) rc = check_saga(k, json_object_get(rec, "saga"), id, &seq);
    if (!rc) rc = check_rows(k, rec, "steps", SAGA_MAX_STEPS, 0, step_fn);
    if (!rc) rc = check_rows(k, rec, "history", (size_t)-1, seq, history_fn);
    if (!rc) rc = check_rows(k, rec, "timers", SAGA_MAX_STEPS + 1, 0, timer_fn);
    if (rc) return rc;
    /* the definition it runs on, when stored, must be the one it ran on */
    const json_t *s = json_object_get(rec, "saga");
    const char *hash = json_string_value(json_object_get(s, "definition_hash"));
    if (hash) {
        sqlite3_stmt *q = c->def_hash;
        bind_str(q, 1, s, "definition");
        bind_int(q, 2, s, "version");
        int step = sqlite3_step(q);
        int differs = step == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(q, 0), hash) != 0;
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        if (step != SQLITE_ROW && step != SQLITE_DONE) return SAGA_ESTORE;
        if (differs)
            return bad(k, "saga.definition_hash: definition %s version %lld is stored with another hash",
                       json_string_value(json_object_get(s, "definition")),
                       (long long)json_integer_value(json_object_get(s, "version")));
    }
    if (c->only_newer) {
        int newer = stored_is_newer(c, id, rec);
        if (newer) return newer < 0 ? newer : 0;
    }
    return write_saga(st, c, id, rec);
}

/* key def/NAME/VERSION into name (SAGA_NAME_MAX) and version. */
static int parse_def_key(chk_t *k, const char *key, size_t len, char *name, int *version) {
    size_t plen = sizeof SAGA_CHANGELOG_DEF_PREFIX - 1;
    const char *rest = key + plen, *end = key + len, *slash = NULL;
    for (const char *p = rest; p < end; p++)
        if (*p == '/') slash = p;
    size_t nlen = slash ? (size_t)(slash - rest) : 0;
    if (!slash || nlen == 0 || nlen >= SAGA_NAME_MAX || memchr(rest, '\0', nlen))
        return bad(k, "a definition key must be def/NAME/VERSION");
    memcpy(name, rest, nlen);
    name[nlen] = '\0';
    long long v = 0;
    const char *p = slash + 1;
    if (p == end || end - p > 10 || *p == '0') return bad(k, "a definition key must end in /VERSION (1, 2, ...)");
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return bad(k, "a definition key must end in /VERSION (1, 2, ...)");
        v = v * 10 + (*p - '0');
    }
    if (v > INT_MAX || !saga_valid_id(name, 0)) return bad(k, "a definition key must be def/NAME/VERSION");
    *version = (int)v;
    return 0;
}

/* pause/TOPIC: the topic paused (value) or resumed (tombstone). */
static int apply_pause(chk_t *k, saga_store_t *st, const char *key, size_t len, const json_t *rec) {
    size_t plen = sizeof SAGA_CHANGELOG_PAUSE_PREFIX - 1;
    char topic[256];
    memcpy(topic, key + plen, len - plen); /* key_kind checked it: at most 249 topic characters */
    topic[len - plen] = '\0';
    if (!rec) return saga_store_pause_clear(st, topic);
    static const char *const req[] = {"v", "pause", NULL}, *const preq[] = {"topic", "paused_at", "reason", NULL};
    int rc = check_version(k, rec);
    if (!rc) rc = members(k, rec, "record", req, NULL);
    const json_t *p = json_object_get(rec, "pause");
    const char *t = NULL, *reason = NULL;
    long long at = 0;
    if (!rc) rc = members(k, p, "pause", preq, NULL);
    if (!rc) rc = get_str(k, p, "pause", "topic", 249, 0, &t);
    if (!rc && strcmp(t, topic)) rc = bad(k, "pause.topic: '%.*s' is not the record's key", saga_utf8_prefix(t, 64), t);
    if (!rc) rc = get_int(k, p, "pause", "paused_at", 0, T_MAX, &at);
    if (!rc) rc = get_str(k, p, "pause", "reason", 512, 0, &reason);
    return rc ? rc : saga_store_pause_set(st, topic, at, reason);
}

static int apply_definition(chk_t *k, saga_changelog_stmts_t *c, const char *key, size_t len, const json_t *rec) {
    char name[SAGA_NAME_MAX];
    int version = 0, rc = parse_def_key(k, key, len, name, &version);
    if (rc) return rc;
    if (!rec) { /* tombstone: only for a version no stored saga runs on */
        sqlite3_bind_text(c->def_used, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int(c->def_used, 2, version);
        int step = sqlite3_step(c->def_used);
        sqlite3_reset(c->def_used);
        sqlite3_clear_bindings(c->def_used);
        if (step == SQLITE_ROW) return bad(k, "tombstone refused: stored sagas run on this definition");
        if (step != SQLITE_DONE) return SAGA_ESTORE;
        sqlite3_bind_text(c->def_delete, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int(c->def_delete, 2, version);
        return step_done(c->def_delete);
    }
    static const char *const req[] = {"v", "definition", NULL};
    static const char *const dreq[] = {"name", "version", "hash", "json", "loaded_at", NULL};
    const json_t *d = json_object_get(rec, "definition");
    const char *dname, *hash;
    long long dversion;
    if ((rc = check_version(k, rec)) || (rc = members(k, rec, "record", req, NULL)) ||
        (rc = members(k, d, "definition", dreq, NULL)) ||
        (rc = get_str(k, d, "definition", "name", SAGA_NAME_MAX - 1, 0, &dname)) ||
        (rc = get_int(k, d, "definition", "version", 1, INT_MAX, &dversion)) ||
        (rc = get_str(k, d, "definition", "hash", 64, 0, &hash)) ||
        (rc = get_int(k, d, "definition", "loaded_at", 0, T_MAX, NULL)))
        return rc;
    if (strcmp(dname, name) || dversion != version) return bad(k, "definition: name or version is not the key's");
    saga_def_errors_t errs = {0};
    errs.stored = true;
    saga_definition_t *def = saga_definition_from_json(json_object_get(d, "json"), &errs);
    if (!def)
        return bad(k, "definition.json: not a valid definition: %s: %s", errs.count ? errs.items[0].pointer : "",
                   errs.count ? errs.items[0].message : "?");
    if (strcmp(def->name, name) || def->version != version || strcmp(def->hash, hash)) {
        saga_definition_free(&def);
        return bad(k, "definition.json: its name, version or hash is not the record's");
    }
    sqlite3_stmt *q = c->def_hash;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, version);
    int step = sqlite3_step(q), same = step == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(q, 0), hash);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    rc = step == SQLITE_ROW || step == SQLITE_DONE ? 0 : SAGA_ESTORE;
    if (!rc && step == SQLITE_ROW && !same) {
        bad(k, "definition %s version %d is stored with another hash: refused", name, version);
        rc = SAGA_EEXISTS;
    }
    if (!rc && step == SQLITE_DONE) { /* stored as saga_store_put_definition stores it */
        char *text = json_dumps(def->source, JSON_COMPACT | JSON_SORT_KEYS);
        q = c->def_insert;
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 2, version);
        sqlite3_bind_text(q, 3, hash, -1, SQLITE_STATIC);
        if (text) sqlite3_bind_text(q, 4, text, -1, SQLITE_STATIC);
        bind_int(q, 5, d, "loaded_at");
        rc = text ? step_done(q) : SAGA_ENOMEM;
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        saga_free(text);
    }
    saga_definition_free(&def);
    return rc;
}

int saga_changelog_apply(saga_store_t *st, const char *key, size_t key_len, const char *value, size_t value_len,
                         int64_t offset, char *err, size_t errlen) {
    chk_t k = {.offset = offset, .err = err, .errlen = errlen};
    saga_changelog_key_text(key, key_len, k.key, sizeof k.key);
    sqlite3 *db = saga_store_db(st);
    if (sqlite3_get_autocommit(db)) {
        snprintf(err, errlen, "changelog record '%s': applied outside a transaction (call saga_store_begin first)", k.key);
        return SAGA_ESTATE;
    }
    saga_changelog_stmts_t *c = saga_changelog_stmts(st);
    if (!c) {
        snprintf(err, errlen, "changelog: preparing statements: %s", sqlite3_errmsg(db));
        return SAGA_ESTORE;
    }
    saga_changelog_key_kind_t kind = saga_changelog_key_kind(key, key_len);
    if (kind == SAGA_CHANGELOG_KEY_INVALID)
        return bad(&k, "the key is neither a saga id (1-127 printable ASCII bytes without '/'), def/NAME/VERSION"
                       " nor pause/TOPIC");
    json_t *rec = NULL;
    if (value && value_len) {
        char perr[160];
        rec = saga_json_parse(value, value_len, perr, sizeof perr);
        if (!rec) return bad(&k, "value is not JSON: %s", perr);
    }
    if (step_done(c->sp_begin)) {
        json_decref(rec);
        snprintf(err, errlen, "changelog record '%s': savepoint: %s", k.key, sqlite3_errmsg(db));
        return SAGA_ESTORE;
    }
    int rc;
    if (kind == SAGA_CHANGELOG_KEY_SAGA) {
        char id[SAGA_ID_MAX];
        memcpy(id, key, key_len); /* key_kind checked key_len < SAGA_ID_MAX */
        id[key_len] = '\0';
        rc = apply_saga(&k, st, c, id, rec);
    } else if (kind == SAGA_CHANGELOG_KEY_PAUSE) {
        rc = apply_pause(&k, st, key, key_len, rec);
    } else {
        rc = apply_definition(&k, c, key, key_len, rec);
    }
    if (!rc && offset >= 0) rc = saga_changelog_offset_advance(st, offset);
    if (rc == SAGA_ESTORE || rc == SAGA_ENOMEM)
        snprintf(err, errlen, "changelog record '%s': writing it: %s", k.key,
                 rc == SAGA_ENOMEM ? "out of memory" : sqlite3_errmsg(db));
    if (rc) step_done(c->sp_rollback);
    step_done(c->sp_release);
    json_decref(rec);
    return rc;
}

int saga_changelog_record_cmp(const void *a, const void *b) {
    const saga_changelog_record_t *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (!c) c = (x->key_len > y->key_len) - (x->key_len < y->key_len);
    return c ? c : (x->offset > y->offset) - (x->offset < y->offset);
}

int saga_changelog_apply_batch(saga_store_t *st, saga_changelog_record_t *recs, size_t n, char *err,
                               size_t errlen) {
    if (n > 1) qsort(recs, n, sizeof *recs, saga_changelog_record_cmp);
    if (saga_store_begin(st)) {
        snprintf(err, errlen, "changelog batch: begin: %s", sqlite3_errmsg(saga_store_db(st)));
        return SAGA_ESTORE;
    }
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++)
        rc = saga_changelog_apply(st, recs[i].key, recs[i].key_len, recs[i].value, recs[i].value_len,
                                  recs[i].offset, err, errlen);
    if (!rc && saga_store_commit(st)) {
        snprintf(err, errlen, "changelog batch: commit: %s", sqlite3_errmsg(saga_store_db(st)));
        rc = SAGA_ESTORE;
    }
    if (rc) saga_store_rollback(st);
    return rc;
}

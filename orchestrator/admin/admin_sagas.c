/* Read handlers of the admin API: health (every shard) and one saga with
 * its steps and history, read from the saga's shard inside one read
 * transaction, so the saga, its steps and its history come from the same
 * WAL snapshot. Table and
 * column names: orchestrator/store/schema.h. */
#include "admin_handlers.h"

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_log.h"

#include <string.h>

#define COMPONENT "admin"

/* ---- JSON from SQLite columns ---- */

/* Builds objects without checking every call: the first NULL value or
 * failed insertion clears *ok, and the caller answers 500 once at the end. */
static void put(json_t *obj, const char *key, json_t *value, int *ok) {
    if (!obj) {
        json_decref(value);
        *ok = 0;
    } else if (!value || json_object_set_new(obj, key, value) != 0) { /* steals value */
        *ok = 0;
    }
}

static json_t *col_text(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t) return json_null();
    return admin_json_text((const char *)t, (size_t)sqlite3_column_bytes(st, i));
}

/* RFC 3339 time; 0 means "not set" where zero_is_null. */
static json_t *col_time(sqlite3_stmt *st, int i, int zero_is_null) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return json_null();
    sqlite3_int64 ms = sqlite3_column_int64(st, i);
    if (ms == 0 && zero_is_null) return json_null();
    char buf[40];
    saga_format_time((int64_t)ms, buf, sizeof buf);
    return json_string(buf);
}

/* {"code","message"} from two columns, or null when the code is empty. */
static json_t *col_error(sqlite3_stmt *st, int code_col, int msg_col) {
    const unsigned char *code = sqlite3_column_text(st, code_col);
    if (!code || !code[0]) return json_null();
    json_t *e = json_object();
    int ok = 1;
    put(e, "code", col_text(st, code_col), &ok);
    put(e, "message", sqlite3_column_type(st, msg_col) == SQLITE_NULL ? json_string("")
                                                                       : col_text(st, msg_col), &ok);
    if (!ok) {
        json_decref(e);
        return NULL;
    }
    return e;
}

/* ---- SQLite failures ---- */


/* ---- /healthz ---- */

int admin_get_health(admin_ctx_t *ctx, admin_response_t *res) {
    const char *problem = NULL;
    char buf[1100], name[400];
    int rc = 0, n = admin_shard_count(ctx), bad = -1;
    for (int i = 0; i < n && !problem; i++) {
        if (!admin_shard_owned(ctx, i)) continue;
        sqlite3 *db = admin_shard_check(ctx, i, buf, sizeof buf);
        bad = i;
        if (!db) {
            problem = buf;
            break;
        }
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_step(st);
        admin_shard_name(ctx, i, name, sizeof name);
        if (rc == SQLITE_ROW) {
            if (sqlite3_column_int(st, 0) <= 0) {
                snprintf(buf, sizeof buf, "%s schema not initialised (user_version 0)", name);
                problem = buf;
            }
        } else {
            snprintf(buf, sizeof buf, "%s does not answer: %s", name, sqlite3_errmsg(db));
            problem = buf;
        }
        sqlite3_finalize(st);
    }

    json_t *doc;
    if (problem) {
        LOG_WARN(COMPONENT, "health check failed: %s", problem);
        doc = json_pack("{s:s,s:{s:s,s:s}}", "status", "unavailable", "error", "code", "unavailable",
                        "message", problem);
        if (doc && n > 1) json_object_set_new(json_object_get(doc, "error"), "shard", json_integer(bad));
    } else {
        doc = json_pack("{s:s}", "status", "ok");
    }
    if (!doc) return SAGA_ENOMEM;
    rc = admin_json_response(res, problem ? 503 : 200, doc);
    json_decref(doc);
    return rc;
}

/* ---- /v1/sagas/{id} ---- */

static const char SQL_SAGA[] =
    "SELECT id, definition, version, status, input, traceparent, created_at, updated_at,"
    " deadline_at, error_code, error_message, search, parent FROM sagas WHERE id = ?1";
static const char SQL_STEPS[] =
    "SELECT name, idx, status, attempt, comp_attempt, outcome_unknown, output, error_code,"
    " error_message, started_at, finished_at FROM steps WHERE saga_id = ?1 ORDER BY idx";
static const char SQL_HISTORY[] =
    "SELECT seq, at, event, step, status, detail FROM history WHERE saga_id = ?1 ORDER BY seq";

/* Runs sql bound to id; calls row() per result row. Returns SQLITE_DONE or an error code. */
static int query(sqlite3 *db, const char *sql, const char *id,
                 int (*row)(sqlite3_stmt *st, json_t *acc), json_t *acc, int *ok) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            if (row(st, acc) != 0) *ok = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

static int saga_row(sqlite3_stmt *st, json_t *saga) {
    int ok = 1;
    put(saga, "id", col_text(st, 0), &ok);
    put(saga, "definition", col_text(st, 1), &ok);
    put(saga, "version", json_integer(sqlite3_column_int64(st, 2)), &ok);
    put(saga, "status", col_text(st, 3), &ok);
    put(saga, "input", admin_col_json(st, 4, "sagas.input"), &ok);
    put(saga, "traceparent", col_text(st, 5), &ok);
    put(saga, "created_at", col_time(st, 6, 0), &ok);
    put(saga, "updated_at", col_time(st, 7, 0), &ok);
    put(saga, "deadline_at", col_time(st, 8, 1), &ok);
    put(saga, "error", col_error(st, 9, 10), &ok);
    put(saga, "search", sqlite3_column_type(st, 11) == SQLITE_NULL ? json_object() : admin_col_json(st, 11, "sagas.search"),
        &ok);
    json_t *parent = sqlite3_column_type(st, 12) == SQLITE_NULL ? NULL : admin_col_json(st, 12, "sagas.parent");
    put(saga, "parent", json_is_object(parent) ? json_pack("{s:O, s:O}", "saga_id", json_object_get(parent, "saga_id"),
                                                           "step", json_object_get(parent, "step"))
                                               : json_null(),
        &ok);
    json_decref(parent);
    return ok ? 0 : -1;
}

static int step_row(sqlite3_stmt *st, json_t *steps) {
    int ok = 1;
    json_t *s = json_object();
    put(s, "name", col_text(st, 0), &ok);
    put(s, "index", json_integer(sqlite3_column_int64(st, 1)), &ok);
    put(s, "status", col_text(st, 2), &ok);
    put(s, "attempt", json_integer(sqlite3_column_int64(st, 3)), &ok);
    put(s, "compensation_attempt", json_integer(sqlite3_column_int64(st, 4)), &ok);
    put(s, "outcome_unknown", json_boolean(sqlite3_column_int(st, 5) != 0), &ok);
    put(s, "output", admin_col_json(st, 6, "steps.output"), &ok);
    put(s, "error", col_error(st, 7, 8), &ok);
    put(s, "started_at", col_time(st, 9, 1), &ok);
    put(s, "finished_at", col_time(st, 10, 1), &ok);
    if (!s || json_array_append_new(steps, s) != 0) ok = 0;
    return ok ? 0 : -1;
}

static int history_row(sqlite3_stmt *st, json_t *history) {
    int ok = 1;
    json_t *h = json_object();
    put(h, "seq", json_integer(sqlite3_column_int64(st, 0)), &ok);
    put(h, "at", col_time(st, 1, 0), &ok);
    put(h, "event", col_text(st, 2), &ok);
    put(h, "step", col_text(st, 3), &ok);
    put(h, "status", col_text(st, 4), &ok);
    put(h, "detail", admin_col_json(st, 5, "history.detail"), &ok);
    if (!h || json_array_append_new(history, h) != 0) ok = 0;
    return ok ? 0 : -1;
}

/* The child sagas its steps started ([{"step", "saga_id"}], in start
 * order): each step.started of a child step names its child. */
static json_t *children_of(const json_t *history) {
    json_t *out = json_array();
    size_t i;
    json_t *h;
    json_array_foreach(history, i, h) {
        const char *ev = json_string_value(json_object_get(h, "event"));
        json_t *child = json_object_get(json_object_get(h, "detail"), "child");
        if (!out || !ev || strcmp(ev, "step.started") || !json_is_string(child)) continue;
        if (json_array_append_new(out, json_pack("{s:O, s:O}", "step", json_object_get(h, "step"), "saga_id", child))) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

int admin_get_saga(admin_ctx_t *ctx, const char *id, admin_response_t *res) {
    int ok = 1, rc;
    json_t *saga = json_object(), *steps = json_array(), *history = json_array();
    if (!saga || !steps || !history) {
        rc = SAGA_ENOMEM;
        goto out;
    }
    /* The saga's shard; one read transaction: saga, steps and history
     * from one snapshot. */
    int shard = admin_shard_of(ctx, id);
    sqlite3 *db = admin_shard_db(ctx, shard, res, &rc);
    if (!db) goto out;
    int src = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        rc = admin_db_error(ctx, shard, res, src, "cannot begin a read transaction");
        goto out;
    }
    const char *what = "reading the saga";
    src = query(db, SQL_SAGA, id, saga_row, saga, &ok);
    if (src == SQLITE_DONE && json_object_size(saga) > 0) {
        what = "reading the steps";
        src = query(db, SQL_STEPS, id, step_row, steps, &ok);
        if (src == SQLITE_DONE) {
            what = "reading the history";
            src = query(db, SQL_HISTORY, id, history_row, history, &ok);
        }
    }
    if (src != SQLITE_DONE) {
        rc = admin_db_error(ctx, shard, res, src, what); /* before COMMIT replaces the error message */
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        goto out;
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);

    if (!ok) {
        rc = SAGA_ENOMEM;
    } else if (json_object_size(saga) == 0) {
        /* Never started, or past retention: finished sagas are deleted
         * (sagad --retention); saga.events keeps the long-term record. */
        rc = admin_error(res, ADMIN_ERR_NOT_FOUND,
                         "no saga '%s' (finished sagas are removed after the retention period, sagad --retention; "
                         "saga.events keeps their record)", id);
    } else {
        put(saga, "steps", json_incref(steps), &ok);
        put(saga, "history", json_incref(history), &ok);
        put(saga, "children", children_of(history), &ok);
        rc = ok ? admin_json_response(res, 200, saga) : SAGA_ENOMEM;
    }
out:
    json_decref(saga);
    json_decref(steps);
    json_decref(history);
    return rc;
}

/* GET /v1/sagas/{id}?at=TIME: the saga as it was at TIME, rebuilt from its
 * history rows by the engine's replay (orchestrator/engine/replay.c) with
 * the definition version it ran on, read from the stored definitions; both
 * from the saga's shard (admin_shard_of). */
#include "admin_handlers.h"
#include "replay.h"

#include <stdio.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_utf8.h"

static json_t *time_or_null(int64_t ms) {
    char buf[40];
    return ms ? json_string(saga_format_time(ms, buf, sizeof buf)) : json_null();
}

static json_t *error_or_null(const char *code, const char *message) {
    if (!code || !*code) return json_null();
    return json_pack("{s:s, s:s}", "code", code, "message", message ? message : "");
}

static json_t *saga_json(const saga_t *s, int64_t at) {
    json_t *steps = json_array();
    for (int i = 0; steps && i < s->def->step_count; i++) {
        const saga_step_state_t *st = &s->steps[i];
        json_array_append_new(steps, json_pack("{s:s, s:i, s:s, s:i, s:i, s:b, s:O?, s:o, s:o, s:o}",
                                               "name", s->def->steps[i].name, "index", i,
                                               "status", saga_step_status_name(st->status), "attempt", st->attempt,
                                               "compensation_attempt", st->comp_attempt,
                                               "outcome_unknown", st->outcome_unknown, "output", st->output,
                                               "error", error_or_null(st->error_code, st->error_message),
                                               "started_at", time_or_null(st->started_at),
                                               "finished_at", time_or_null(st->finished_at)));
    }
    return json_pack("{s:s, s:o, s:s, s:i, s:s, s:O?, s:I, s:o, s:o, s:o, s:o, s:o}", "id", s->id,
                     "at", time_or_null(at), "definition", s->def->name, "version", s->def->version,
                     "status", saga_status_name(s->status), "input", s->input, "seq", (json_int_t)s->seq,
                     "created_at", time_or_null(s->created_at), "updated_at", time_or_null(s->updated_at),
                     "deadline_at", time_or_null(s->deadline_at),
                     "error", error_or_null(s->error_code, s->error_message), "steps", steps);
}

/* The definition name@version in shard i's definitions; NULL when it is
 * not stored there (or does not load: *stored says which). */
static saga_definition_t *definition_in(sqlite3 *db, const char *name, int version, int *stored) {
    sqlite3_stmt *q = NULL;
    saga_definition_t *def = NULL;
    if (sqlite3_prepare_v2(db, "SELECT json FROM definitions WHERE name = ? AND version = ?", -1, &q, NULL) ==
            SQLITE_OK &&
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC) == SQLITE_OK && sqlite3_bind_int(q, 2, version) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        *stored = 1;
        saga_def_errors_t errs = {0};
        errs.stored = true; /* loads as it loaded when the saga ran on it */
        def = saga_definition_parse((const char *)sqlite3_column_text(q, 0), (size_t)sqlite3_column_bytes(q, 0), &errs);
    }
    sqlite3_finalize(q);
    return def;
}

/* The definition the saga ran on, from the stored JSON: its own shard's
 * definitions first, then any other shard's. *found: the saga and its
 * definition are stored; *unreadable: a shard that could have held the
 * definition cannot be read (its number, else -1; the reason in why). */
static saga_definition_t *stored_definition(admin_ctx_t *ctx, sqlite3 *db, int shard, const char *id, int *found,
                                            int *unreadable, char *why, size_t whylen) {
    sqlite3_stmt *q = NULL;
    saga_definition_t *def = NULL;
    char name[256] = "";
    int version = 0, stored = 0;
    *found = 0;
    if (sqlite3_prepare_v2(db, "SELECT definition, version FROM sagas WHERE id = ?", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
        snprintf(name, sizeof name, "%s", (const char *)sqlite3_column_text(q, 0));
        version = sqlite3_column_int(q, 1);
    }
    sqlite3_finalize(q);
    if (!name[0]) return NULL;
    def = definition_in(db, name, version, &stored);
    for (int i = 0, n = admin_shard_count(ctx); !stored && i < n; i++) {
        if (i != shard && !admin_shard_owned(ctx, i)) continue;
        sqlite3 *other = i == shard ? NULL : admin_shard_check(ctx, i, why, whylen);
        if (other) def = definition_in(other, name, version, &stored);
        else if (i != shard && *unreadable < 0) *unreadable = i;
    }
    *found = stored;
    return def;
}

int admin_get_saga_at(admin_ctx_t *ctx, const char *id, const char *at_text, admin_response_t *res) {
    int64_t at;
    if (saga_parse_time(at_text, &at))
        return admin_error(res, ADMIN_ERR_BAD_REQUEST,
                           "parameter 'at': '%.*s' is not an RFC 3339 UTC time like 2026-11-24T22:39:04.123Z", saga_utf8_prefix(at_text, 64), at_text);
    int rc = 0, shard = admin_shard_of(ctx, id);
    sqlite3 *db = admin_shard_db(ctx, shard, res, &rc);
    if (!db) return rc;
    int found, unreadable = -1;
    char why[1024] = "";
    saga_definition_t *def = stored_definition(ctx, db, shard, id, &found, &unreadable, why, sizeof why);
    if (!found && unreadable >= 0) /* the definition may be in the shard that cannot be read */
        return admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, unreadable, "%s", why);
    if (!found) return admin_error(res, ADMIN_ERR_NOT_FOUND, "no saga '%s'", id);
    if (!def) return admin_error(res, ADMIN_ERR_INTERNAL, "the stored definition of saga '%s' does not load", id);

    json_t **events = NULL;
    int n = 0, cap = 0;
    char err[512] = "";
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT seq, at, event, step, status, detail FROM history WHERE saga_id = ? AND at <= ? "
                           "ORDER BY seq", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC) != SQLITE_OK || sqlite3_bind_int64(q, 2, at) != SQLITE_OK) {
        rc = admin_db_error(ctx, shard, res, sqlite3_errcode(db), "reading the history");
        goto out;
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            json_t **bigger = saga_realloc(events, (size_t)cap * sizeof *bigger);
            if (!bigger) { rc = SAGA_ENOMEM; goto out; }
            events = bigger;
        }
        events[n] = saga_history_row_event(id, sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1),
                                           (const char *)sqlite3_column_text(q, 2), (const char *)sqlite3_column_text(q, 3),
                                           (const char *)sqlite3_column_text(q, 4), (const char *)sqlite3_column_text(q, 5),
                                           err, sizeof err);
        if (!events[n]) {
            rc = admin_error(res, ADMIN_ERR_INTERNAL, "history of '%s': %s", id, err);
            goto out;
        }
        n++;
    }
    saga_t s;
    int r = saga_replay(def, id, (const json_t *const *)events, n, at, &s, err, sizeof err);
    if (r == SAGA_ENOTFOUND) {
        rc = admin_error(res, ADMIN_ERR_NOT_FOUND, "saga '%s' did not exist yet at %s", id, at_text);
    } else if (r) {
        rc = r == SAGA_ENOMEM ? r : admin_error(res, ADMIN_ERR_INTERNAL, "replay of '%s': %s", id, err);
    } else {
        json_t *doc = saga_json(&s, at);
        rc = doc ? admin_json_response(res, 200, doc) : SAGA_ENOMEM;
        json_decref(doc);
        saga_clear(&s);
    }
out:
    sqlite3_finalize(q);
    for (int i = 0; i < n; i++) json_decref(events[i]);
    saga_free(events);
    saga_definition_free(&def);
    return rc;
}

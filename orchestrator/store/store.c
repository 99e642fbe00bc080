/* sagad's SQLite store (store.h): migrations, prepared statements, group
 * commit; sagas, timers, dedup and retention (the outbox: store_outbox.c). */
#include "store.h"

#include <assert.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_log.h"
#include "saga_utf8.h"
#include "changelog.h"
#include "replay.h"
#include "schema.h"
#include "store_internal.h"

sqlite3 *saga_store_db(saga_store_t *st) { return st->db; }
void *saga_store_ext(saga_store_t *st) { return st->ext; }
void saga_store_set_ext(saga_store_t *st, void *ext, void (*ext_free)(void *ext)) {
    assert(!st->ext);
    st->ext = ext;
    st->ext_free = ext_free;
}

const char *saga_store_errmsg(const saga_store_t *st) { return sqlite3_errmsg(st->db); }

int saga_store_fail(saga_store_t *st, const char *what) {
    LOG_ERROR("store", "%s: %s", what, sqlite3_errmsg(st->db));
    return SAGA_ESTORE;
}

int saga_store_run(saga_store_t *st, sqlite3_stmt *stmt, const char *what) {
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rc == SQLITE_DONE ? 0 : saga_store_fail(st, what);
}

uint64_t saga_store_statements_take(saga_store_t *st) {
    uint64_t n = 0;
    for (sqlite3_stmt *s = sqlite3_next_stmt(st->db, NULL); s; s = sqlite3_next_stmt(st->db, s))
        n += (uint64_t)sqlite3_stmt_status(s, SQLITE_STMTSTATUS_RUN, 1);
    return n;
}

void saga_store_bind_text(sqlite3_stmt *s, int i, const char *v) {
    if (v) sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, i);
}

static int migrate(saga_store_t *st, char *err, size_t errlen) {
    sqlite3_stmt *s;
    int version = 0;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    int latest = (int)(sizeof saga_store_migrations / sizeof saga_store_migrations[0]);
    if (version > latest) {
        snprintf(err, errlen, "database schema version %d is newer than this sagad (%d)", version, latest);
        return SAGA_ESTORE;
    }
    for (int v = version; v < latest; v++) {
        char *msg = NULL, pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        if (sqlite3_exec(st->db, "BEGIN", NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(st->db, saga_store_migrations[v], NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(st->db, pragma, NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(st->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
            snprintf(err, errlen, "migration %d: %s", v + 1, msg ? msg : sqlite3_errmsg(st->db));
            sqlite3_free(msg);
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            return SAGA_ESTORE;
        }
    }
    return 0;
}

saga_store_t *saga_store_open(const char *path, const saga_store_options_t *opt, char *err,
                              size_t errlen) {
    saga_store_t *st = saga_calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, st->db ? sqlite3_errmsg(st->db) : "cannot open");
        goto fail;
    }
    const char *sync = opt && opt->synchronous ? opt->synchronous : "FULL";
    if (strcmp(sync, "FULL") && strcmp(sync, "NORMAL") && strcmp(sync, "OFF")) {
        snprintf(err, errlen, "synchronous must be FULL, NORMAL or OFF, not '%s'", sync);
        goto fail;
    }
    int cache_kib = opt && opt->cache_kib > 0 ? opt->cache_kib : SAGA_STORE_CACHE_KIB;
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=OFF;"
             " PRAGMA busy_timeout=5000; PRAGMA cache_size=-%d; PRAGMA secure_delete=FAST;", sync, cache_kib);
    char *msg = NULL;
    if (sqlite3_exec(st->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        goto fail;
    }
    if (migrate(st, err, errlen)) goto fail;
    /* The ids one retention pass removes (this connection only, not a migration). */
    if (sqlite3_exec(st->db, "CREATE TEMP TABLE IF NOT EXISTS prune_ids (id TEXT PRIMARY KEY) WITHOUT ROWID",
                     NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
        goto fail;
    }
#define STMT_PREPARE(name, sql)                                                          \
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->name, NULL) != SQLITE_OK) { \
        snprintf(err, errlen, "%s: preparing " #name ": %s", path, sqlite3_errmsg(st->db)); \
        goto fail;                                                                       \
    }
    STORE_STATEMENTS(STMT_PREPARE)
#undef STMT_PREPARE
    return st;
fail:
    saga_store_close(&st);
    return NULL;
}

void saga_store_close(saga_store_t **pst) {
    saga_store_t *st = *pst;
    if (!st) return;
    if (st->ext_free) st->ext_free(st->ext);
#define STMT_FINALIZE(name, sql) sqlite3_finalize(st->name);
    STORE_STATEMENTS(STMT_FINALIZE)
#undef STMT_FINALIZE
    sqlite3_close(st->db);
    saga_free(st);
    *pst = NULL;
}

int saga_store_begin(saga_store_t *st) { return saga_store_run(st, st->begin, "BEGIN"); }
int saga_store_commit(saga_store_t *st) { return saga_store_run(st, st->commit, "COMMIT"); }
int saga_store_read_begin(saga_store_t *st) { return saga_store_run(st, st->begin_read, "BEGIN DEFERRED"); }
void saga_store_rollback(saga_store_t *st) {
    if (!sqlite3_get_autocommit(st->db)) saga_store_run(st, st->rollback, "ROLLBACK");
}

int saga_store_dedup(saga_store_t *st, const char *consumer, const char *message_id, int64_t now) {
    saga_store_bind_text(st->dedup, 1, consumer);
    saga_store_bind_text(st->dedup, 2, message_id);
    sqlite3_bind_int64(st->dedup, 3, now);
    int rc = saga_store_run(st, st->dedup, "dedup insert");
    if (rc) return rc;
    return sqlite3_changes(st->db) == 1 ? 1 : 0;
}

int saga_store_prune_dedup(saga_store_t *st, int64_t before, int limit) {
    int rc = saga_store_begin(st);
    if (rc) return rc;
    sqlite3_bind_int64(st->dedup_prune, 1, before);
    sqlite3_bind_int(st->dedup_prune, 2, limit);
    rc = saga_store_run(st, st->dedup_prune, "dedup prune");
    int n = rc ? 0 : sqlite3_changes(st->db);
    if (!rc) rc = saga_store_commit(st);
    if (rc) {
        saga_store_rollback(st);
        return rc;
    }
    return n;
}

int saga_store_prune_finished(saga_store_t *st, int64_t before, int limit, const char *changelog_topic,
                              int partition, int64_t now) {
    int rc = saga_store_begin(st);
    if (rc) return rc;
    int n = 0;
    rc = saga_store_run(st, st->prune_clear, "retention: clear");
    if (!rc) {
        sqlite3_bind_int64(st->prune_pick, 1, before);
        sqlite3_bind_int(st->prune_pick, 2, limit);
        rc = saga_store_run(st, st->prune_pick, "retention: pick");
        if (!rc) n = sqlite3_changes(st->db);
    }
    if (!rc && n > 0) {
        rc = saga_store_run(st, st->prune_history, "retention: history");
        if (!rc) rc = saga_store_run(st, st->prune_steps, "retention: steps");
        if (!rc) rc = saga_store_run(st, st->prune_timers, "retention: timers");
        if (!rc) rc = saga_store_run(st, st->prune_sagas, "retention: sagas");
        if (!rc && changelog_topic) {
            saga_store_bind_text(st->prune_tombstones, 1, changelog_topic);
            sqlite3_bind_int64(st->prune_tombstones, 2, now);
            sqlite3_bind_int(st->prune_tombstones, 3, partition);
            rc = saga_store_run(st, st->prune_tombstones, "retention: changelog tombstones");
        }
        if (!rc) rc = saga_store_run(st, st->prune_clear, "retention: clear");
    }
    if (!rc) rc = saga_store_commit(st);
    if (rc) {
        saga_store_rollback(st);
        return rc;
    }
    return n;
}

int saga_store_meta_get(saga_store_t *st, const char *key, long long *value) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "SELECT value FROM shard_meta WHERE key = ?", -1, &q, NULL) != SQLITE_OK)
        return saga_store_fail(st, "meta get");
    saga_store_bind_text(q, 1, key);
    int rc = sqlite3_step(q), found = 0;
    if (rc == SQLITE_ROW) {
        *value = sqlite3_column_int64(q, 0);
        found = 1;
    } else if (rc != SQLITE_DONE) {
        found = saga_store_fail(st, "meta get");
    }
    sqlite3_finalize(q);
    return found;
}

int saga_store_meta_set(saga_store_t *st, const char *key, long long value) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO shard_meta (key, value) VALUES (?, ?)", -1, &q, NULL) !=
        SQLITE_OK)
        return saga_store_fail(st, "meta set");
    saga_store_bind_text(q, 1, key);
    sqlite3_bind_int64(q, 2, value);
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : saga_store_fail(st, "meta set");
    sqlite3_finalize(q);
    return rc;
}

int saga_store_saga_exists(saga_store_t *st, const char *id) {
    saga_store_bind_text(st->exists, 1, id);
    int rc = sqlite3_step(st->exists);
    sqlite3_reset(st->exists);
    if (rc == SQLITE_ROW) return 1;
    return rc == SQLITE_DONE ? 0 : saga_store_fail(st, "saga lookup");
}

int saga_store_start_seen(saga_store_t *st, const char *message_id) {
    saga_store_bind_text(st->start_seen, 1, message_id);
    int rc = sqlite3_step(st->start_seen);
    sqlite3_reset(st->start_seen);
    if (rc == SQLITE_ROW) return 1;
    return rc == SQLITE_DONE ? 0 : saga_store_fail(st, "start lookup");
}

static json_t *column_json(sqlite3_stmt *s, int col) {
    const char *text = (const char *)sqlite3_column_text(s, col);
    if (!text) return NULL;
    return saga_json_parse(text, (size_t)sqlite3_column_bytes(s, col), NULL, 0);
}

static void column_copy(sqlite3_stmt *s, int col, char *dst, size_t len) {
    const char *text = (const char *)sqlite3_column_text(s, col);
    saga_utf8_copy(dst, len, text); /* cut, if ever, on a character boundary */
}

int saga_store_load(saga_store_t *st, const saga_registry_t *reg, const char *id, saga_t *out,
                    char *err, size_t errlen) {
    sqlite3_stmt *q = st->load_saga;
    saga_store_bind_text(q, 1, id);
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(q);
        if (rc == SQLITE_DONE) return SAGA_ENOTFOUND;
        snprintf(err, errlen, "loading saga '%s': %s", id, sqlite3_errmsg(st->db));
        return SAGA_ESTORE;
    }
    const char *def_name = (const char *)sqlite3_column_text(q, 0);
    int version = sqlite3_column_int(q, 1);
    const saga_definition_t *def = saga_registry_get(reg, def_name, version);
    if (!def) {
        snprintf(err, errlen, "saga '%s' uses definition %s version %d, which is not loaded", id,
                 def_name, version);
        sqlite3_reset(q);
        return SAGA_ENOTFOUND;
    }
    json_t *input = column_json(q, 3);
    char traceparent[64];
    column_copy(q, 4, traceparent, sizeof traceparent);
    saga_init(out, id, def, input, traceparent, sqlite3_column_int64(q, 5));
    json_decref(input);
    int status = saga_status_parse((const char *)sqlite3_column_text(q, 2));
    out->status = status < 0 ? SAGA_STATUS_RUNNING : (saga_status_t)status;
    out->updated_at = sqlite3_column_int64(q, 6);
    out->deadline_at = sqlite3_column_int64(q, 7);
    out->seq = sqlite3_column_int64(q, 8);
    out->completions = sqlite3_column_int(q, 9);
    column_copy(q, 10, out->error_code, sizeof out->error_code);
    column_copy(q, 11, out->error_message, sizeof out->error_message);
    out->parent = column_json(q, 12);
    sqlite3_reset(q);

    q = st->load_steps;
    saga_store_bind_text(q, 1, id);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        int i = sqlite3_column_int(q, 0);
        if (i < 0 || i >= def->step_count) continue;
        saga_step_state_t *s = &out->steps[i];
        int step_status = saga_step_status_parse((const char *)sqlite3_column_text(q, 1));
        s->status = step_status < 0 ? SAGA_STEP_PENDING : (saga_step_status_t)step_status;
        s->attempt = sqlite3_column_int(q, 2);
        s->comp_attempt = sqlite3_column_int(q, 3);
        s->comp_budget_base = sqlite3_column_int(q, 4);
        s->outcome_unknown = sqlite3_column_int(q, 5) != 0;
        s->output = column_json(q, 6);
        column_copy(q, 7, s->error_code, sizeof s->error_code);
        column_copy(q, 8, s->error_message, sizeof s->error_message);
        s->started_at = sqlite3_column_int64(q, 9);
        s->finished_at = sqlite3_column_int64(q, 10);
        s->updated_at = sqlite3_column_int64(q, 11);
        s->completion_order = sqlite3_column_int(q, 12);
        s->signal = column_json(q, 13);
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "loading steps of '%s': %s", id, sqlite3_errmsg(st->db));
        saga_clear(out);
        return SAGA_ESTORE;
    }
    return 0;
}

int saga_store_insert(saga_store_t *st, const saga_t *s, const char *start_message_id) {
    char *input = saga_json_dump(s->input ? s->input : json_object());
    if (!input) return SAGA_ENOMEM;
    sqlite3_stmt *q = st->insert_saga;
    saga_store_bind_text(q, 1, s->id);
    saga_store_bind_text(q, 2, s->def->name);
    sqlite3_bind_int(q, 3, s->def->version);
    saga_store_bind_text(q, 4, saga_status_name(s->status));
    saga_store_bind_text(q, 5, input);
    saga_store_bind_text(q, 6, s->traceparent);
    saga_store_bind_text(q, 7, start_message_id);
    sqlite3_bind_int64(q, 8, s->created_at);
    sqlite3_bind_int64(q, 9, s->updated_at);
    char *search = s->search ? saga_json_dump(s->search) : NULL;
    if (s->search && !search) {
        sqlite3_reset(q);
        saga_free(input);
        return SAGA_ENOMEM;
    }
    saga_store_bind_text(q, 10, search); /* NULL: none */
    char *parent = s->parent ? saga_json_dump(s->parent) : NULL;
    saga_store_bind_text(q, 11, parent); /* NULL: not a child saga */
    int rc = s->parent && !parent ? SAGA_ENOMEM : saga_store_run(st, q, "insert saga");
    if (rc == SAGA_ENOMEM) sqlite3_reset(q);
    saga_free(parent);
    saga_free(search);
    saga_free(input);
    return rc;
}

static int save_step(saga_store_t *st, const saga_t *s, int i) {
    const saga_step_state_t *step = &s->steps[i];
    char *output = step->output ? saga_json_dump(step->output) : NULL;
    if (step->output && !output) return SAGA_ENOMEM;
    sqlite3_stmt *q = st->upsert_step;
    saga_store_bind_text(q, 1, s->id);
    sqlite3_bind_int(q, 2, i);
    saga_store_bind_text(q, 3, s->def->steps[i].name);
    saga_store_bind_text(q, 4, saga_step_status_name(step->status));
    sqlite3_bind_int(q, 5, step->attempt);
    sqlite3_bind_int(q, 6, step->comp_attempt);
    sqlite3_bind_int(q, 7, step->comp_budget_base);
    sqlite3_bind_int(q, 8, step->outcome_unknown);
    saga_store_bind_text(q, 9, output);
    saga_store_bind_text(q, 10, step->error_code);
    saga_store_bind_text(q, 11, step->error_message);
    sqlite3_bind_int64(q, 12, step->started_at);
    sqlite3_bind_int64(q, 13, step->finished_at);
    sqlite3_bind_int64(q, 14, step->updated_at);
    sqlite3_bind_int(q, 15, step->completion_order);
    char *signal = step->signal ? saga_json_dump(step->signal) : NULL;
    if (step->signal && !signal) {
        sqlite3_reset(q);
        saga_free(output);
        return SAGA_ENOMEM;
    }
    saga_store_bind_text(q, 16, signal);
    int rc = saga_store_run(st, q, "save step");
    saga_free(signal);
    saga_free(output);
    return rc;
}

/* Kafka headers of every message about saga s, as a JSON object. */
static char *headers_for(const saga_t *s) {
    json_t *h = json_pack("{s:s}", "saga_id", s->id);
    if (h && s->traceparent[0]) json_object_set_new(h, "traceparent", json_string(s->traceparent));
    char *text = h ? saga_json_dump(h) : NULL;
    json_decref(h);
    return text;
}

/* text: the bytes the engine chose to publish (NULL: message serialised). */
static int add_outbox_json(saga_store_t *st, const char *topic, const saga_t *s, const char *headers,
                           const json_t *message, const char *text, int64_t now) {
    if (text) return saga_store_outbox_add(st, topic, s->id, headers, text, strlen(text), now);
    char *payload = saga_json_dump(message);
    if (!payload) return SAGA_ENOMEM;
    int rc = saga_store_outbox_add(st, topic, s->id, headers, payload, strlen(payload), now);
    saga_free(payload);
    return rc;
}

static int add_history(saga_store_t *st, const saga_t *s, const json_t *ev, int64_t now) {
    json_int_t seq = json_integer_value(json_object_get(ev, "seq"));
    char *detail = saga_json_dump(json_object_get(ev, "detail"));
    if (!detail) return SAGA_ENOMEM;
    sqlite3_stmt *q = st->history;
    saga_store_bind_text(q, 1, s->id);
    sqlite3_bind_int64(q, 2, seq);
    sqlite3_bind_int64(q, 3, now);
    const char *event = json_string_value(json_object_get(ev, "event"));
    const char *step = json_string_value(json_object_get(ev, "step"));
    const char *status = json_string_value(json_object_get(ev, "step_status"));
    if (!status) status = json_string_value(json_object_get(ev, "status"));
    saga_store_bind_text(q, 4, event);
    saga_store_bind_text(q, 5, step);
    saga_store_bind_text(q, 6, status);
    saga_store_bind_text(q, 7, detail);
    int rc = saga_store_run(st, q, "history insert");
    if (!rc) saga_changelog_history_note(st, s->id, s->created_at, seq, now, event, step, status, detail);
    saga_free(detail);
    return rc;
}

static int save_effect(saga_store_t *st, const saga_t *s, const saga_effect_t *e, const char *headers,
                       const char *events_topic, int64_t now) {
    switch (e->kind) {
    case SAGA_FX_COMMAND:
        if (e->key[0]) { /* to another saga (a child's start, a parent's answer): its key and partition */
            char *payload = e->text ? NULL : saga_json_dump(e->message);
            const char *bytes = e->text ? e->text : payload;
            int rc = bytes ? saga_store_outbox_add_to(st, e->topic, e->partition, e->key, headers, bytes, strlen(bytes), now)
                           : SAGA_ENOMEM;
            saga_free(payload);
            return rc;
        }
        return add_outbox_json(st, e->topic, s, headers, e->message, e->text, now);
    case SAGA_FX_EVENT: {
        int rc = add_history(st, s, e->message, now);
        if (rc || e->unpublished) return rc;
        return add_outbox_json(st, events_topic, s, headers, e->message, e->text, now);
    }
    case SAGA_FX_ALERT:
        LOG_ERROR("alert", "saga %s needs an operator: %s", s->id,
                  json_string_value(json_object_get(e->message, "reason")));
        return 0; /* the saga.compensation_failed event carries it on events_topic */
    case SAGA_FX_SET_TIMER: {
        sqlite3_stmt *q = st->timer_set;
        saga_store_bind_text(q, 1, s->id);
        sqlite3_bind_int(q, 2, e->slot);
        saga_store_bind_text(q, 3, saga_timer_kind_name(e->timer_kind));
        sqlite3_bind_int(q, 4, e->timer_attempt);
        sqlite3_bind_int64(q, 5, e->due_at);
        return saga_store_run(st, q, "timer set");
    }
    case SAGA_FX_WAIT_FOR_ROOM:
        return 0; /* the step's status (queued) is the durable record; the loop queues it */
    case SAGA_FX_CLEAR_TIMER:
        saga_store_bind_text(st->timer_clear, 1, s->id);
        sqlite3_bind_int(st->timer_clear, 2, e->slot);
        return saga_store_run(st, st->timer_clear, "timer clear");
    }
    return SAGA_EINVAL;
}

int saga_store_save(saga_store_t *st, saga_t *s, const saga_effects_t *fx, const char *events_topic,
                    int64_t now) {
    char *error_code = s->error_code, *error_message = s->error_message;
    sqlite3_stmt *q = st->update_saga;
    saga_store_bind_text(q, 1, saga_status_name(s->status));
    sqlite3_bind_int64(q, 2, s->updated_at);
    sqlite3_bind_int64(q, 3, s->deadline_at);
    sqlite3_bind_int64(q, 4, s->seq);
    sqlite3_bind_int(q, 5, s->completions);
    saga_store_bind_text(q, 6, error_code);
    saga_store_bind_text(q, 7, error_message);
    char *parent = s->parent ? saga_json_dump(s->parent) : NULL;
    if (s->parent && !parent) {
        sqlite3_reset(q);
        return SAGA_ENOMEM;
    }
    saga_store_bind_text(q, 8, parent);
    saga_store_bind_text(q, 9, s->id);
    int rc = saga_store_run(st, q, "update saga");
    saga_free(parent);
    for (int i = 0; !rc && i < s->def->step_count; i++) {
        if (!s->step_dirty[i]) continue;
        rc = save_step(st, s, i);
        s->step_dirty[i] = false;
    }
    char *headers = rc ? NULL : headers_for(s);
    if (!rc && !headers) rc = SAGA_ENOMEM;
    for (int i = 0; !rc && i < fx->count; i++) rc = save_effect(st, s, &fx->items[i], headers, events_topic, now);
    saga_free(headers);
    return rc;
}

int saga_store_due_timers(saga_store_t *st, int64_t now, saga_timer_row_t *rows, int max) {
    sqlite3_stmt *q = st->timers_due;
    sqlite3_bind_int64(q, 1, now);
    sqlite3_bind_int(q, 2, max);
    int n = 0, rc;
    while (n < max && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        saga_timer_row_t *t = &rows[n];
        column_copy(q, 0, t->saga_id, sizeof t->saga_id);
        t->slot = sqlite3_column_int(q, 1);
        int kind = saga_timer_kind_parse((const char *)sqlite3_column_text(q, 2));
        if (kind < 0) continue;
        t->kind = (saga_timer_kind_t)kind;
        t->attempt = sqlite3_column_int(q, 3);
        t->due_at = sqlite3_column_int64(q, 4);
        n++;
    }
    sqlite3_reset(q);
    return n;
}

int saga_store_timer_delete(saga_store_t *st, const saga_timer_row_t *t) {
    sqlite3_stmt *q = st->timer_delete;
    saga_store_bind_text(q, 1, t->saga_id);
    sqlite3_bind_int(q, 2, t->slot);
    saga_store_bind_text(q, 3, saga_timer_kind_name(t->kind));
    sqlite3_bind_int(q, 4, t->attempt);
    sqlite3_bind_int64(q, 5, t->due_at);
    return saga_store_run(st, q, "timer delete");
}

int64_t saga_store_next_timer_due(saga_store_t *st) {
    int64_t due = INT64_MAX;
    if (sqlite3_step(st->timer_next) == SQLITE_ROW && sqlite3_column_type(st->timer_next, 0) != SQLITE_NULL)
        due = sqlite3_column_int64(st->timer_next, 0);
    sqlite3_reset(st->timer_next);
    return due;
}

int saga_store_put_definition(saga_store_t *st, const saga_definition_t *def, int64_t now, char *err,
                              size_t errlen) {
    sqlite3_stmt *q = st->def_get;
    saga_store_bind_text(q, 1, def->name);
    sqlite3_bind_int(q, 2, def->version);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        int same = strcmp((const char *)sqlite3_column_text(q, 0), def->hash) == 0;
        sqlite3_reset(q);
        if (same) return 0;
        snprintf(err, errlen,
                 "definition %s version %d changed since it was first used (hash differs): "
                 "give the new content a new version", def->name, def->version);
        return SAGA_EEXISTS;
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) return saga_store_fail(st, "definition lookup");
    char *text = json_dumps(def->source, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) return SAGA_ENOMEM;
    q = st->def_put;
    saga_store_bind_text(q, 1, def->name);
    sqlite3_bind_int(q, 2, def->version);
    saga_store_bind_text(q, 3, def->hash);
    saga_store_bind_text(q, 4, text);
    sqlite3_bind_int64(q, 5, now);
    rc = saga_store_run(st, q, "definition insert");
    saga_free(text);
    return rc;
}

int saga_store_load_retired(saga_store_t *st, saga_registry_t *reg, char *err, size_t errlen) {
    sqlite3_stmt *q = st->def_all;
    int rc, result = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        int version = sqlite3_column_int(q, 1);
        if (saga_registry_get(reg, name, version)) continue;
        saga_def_errors_t errs = {0};
        errs.stored = true; /* sagas may run on it: it loads as it loaded then */
        const char *json = (const char *)sqlite3_column_text(q, 2);
        saga_definition_t *def = saga_definition_parse(json, (size_t)sqlite3_column_bytes(q, 2), &errs);
        if (!def) {
            snprintf(err, errlen, "stored definition %s version %d no longer loads: %s: %s", name, version,
                     errs.count ? errs.items[0].pointer : "", errs.count ? errs.items[0].message : "?");
            result = SAGA_ESTORE;
            break;
        }
        def->retired = true;
        if ((result = saga_registry_add(reg, def))) {
            snprintf(err, errlen, "stored definition %s version %d: %s", name, version, saga_strerror(result));
            break;
        }
    }
    sqlite3_reset(q);
    if (!result && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        snprintf(err, errlen, "reading definitions: %s", sqlite3_errmsg(st->db));
        result = SAGA_ESTORE;
    }
    return result;
}

int saga_store_active_steps(saga_store_t *st,
                            int (*fn)(const char *saga_id, const char *definition, int version, int idx,
                                      const char *status, void *user),
                            void *user) {
    sqlite3_stmt *q = st->active_steps;
    int rc, n = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        n++;
        if (fn((const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1),
               sqlite3_column_int(q, 2), sqlite3_column_int(q, 3), (const char *)sqlite3_column_text(q, 4), user))
            break;
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? n : saga_store_fail(st, "active steps");
}

int saga_store_state_at(saga_store_t *st, const saga_registry_t *reg, const char *id, int64_t until_ms,
                        saga_t *out, char *err, size_t errlen) {
    /* The definition and trace context come from the saga row. */
    saga_t now;
    int rc = saga_store_load(st, reg, id, &now, err, errlen);
    if (rc) return rc;
    const saga_definition_t *def = now.def;
    char traceparent[sizeof now.traceparent];
    memcpy(traceparent, now.traceparent, sizeof traceparent);
    saga_clear(&now);

    json_t **events = NULL;
    int n = 0, cap = 0;
    sqlite3_stmt *q = st->history_of;
    saga_store_bind_text(q, 1, id);
    sqlite3_bind_int64(q, 2, until_ms);
    while (!rc && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        rc = 0;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            json_t **bigger = saga_realloc(events, (size_t)cap * sizeof *bigger);
            if (!bigger) { rc = SAGA_ENOMEM; break; }
            events = bigger;
        }
        events[n] = saga_history_row_event(id, sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1),
                                           (const char *)sqlite3_column_text(q, 2),
                                           (const char *)sqlite3_column_text(q, 3),
                                           (const char *)sqlite3_column_text(q, 4),
                                           (const char *)sqlite3_column_text(q, 5), err, errlen);
        if (!events[n]) rc = SAGA_EPARSE;
        else n++;
    }
    if (rc == SQLITE_DONE) rc = 0;
    else if (rc > 0) rc = saga_store_fail(st, "history read");
    sqlite3_reset(q);
    if (!rc) rc = saga_replay(def, id, (const json_t *const *)events, n, until_ms, out, err, errlen);
    if (!rc) memcpy(out->traceparent, traceparent, sizeof traceparent);
    for (int i = 0; i < n; i++) json_decref(events[i]);
    saga_free(events);
    return rc;
}

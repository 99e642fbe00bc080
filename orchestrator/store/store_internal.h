/* For the store's own modules (store.c, store_outbox.c, changelog.c), not
 * for other callers: the store's prepared statements and the SQLite
 * connection behind a saga_store_t, the helpers that run them, and one slot
 * where a module keeps its own statements, released by saga_store_close. */
#ifndef SAGA_STORE_INTERNAL_H
#define SAGA_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store.h"

/* Every statement the hot path runs, prepared once. */
#define STORE_STATEMENTS(X)                                                                        \
    X(begin, "BEGIN IMMEDIATE")                                                                    \
    X(begin_read, "BEGIN DEFERRED")                                                                \
    X(commit, "COMMIT")                                                                            \
    X(rollback, "ROLLBACK")                                                                        \
    X(dedup, "INSERT OR IGNORE INTO dedup (consumer, message_id, seen_at) VALUES (?, ?, ?)")       \
    X(dedup_prune, "DELETE FROM dedup WHERE (consumer, message_id) IN"                    \
                   " (SELECT consumer, message_id FROM dedup WHERE seen_at < ? LIMIT ?)") \
    X(start_seen, "SELECT 1 FROM sagas WHERE start_message_id = ? LIMIT 1")                        \
    X(exists, "SELECT 1 FROM sagas WHERE id = ?")                                                  \
    X(prune_clear, "DELETE FROM temp.prune_ids")                                                   \
    X(prune_pick, "INSERT INTO temp.prune_ids (id) SELECT id FROM sagas"                           \
                  " WHERE status IN ('completed', 'compensated') AND updated_at < ? LIMIT ?")      \
    X(prune_history, "DELETE FROM history WHERE saga_id IN (SELECT id FROM temp.prune_ids)")       \
    X(prune_steps, "DELETE FROM steps WHERE saga_id IN (SELECT id FROM temp.prune_ids)")           \
    X(prune_timers, "DELETE FROM timers WHERE saga_id IN (SELECT id FROM temp.prune_ids)")         \
    X(prune_sagas, "DELETE FROM sagas WHERE id IN (SELECT id FROM temp.prune_ids)")                \
    X(prune_tombstones, "INSERT INTO outbox (topic, key, headers, payload, created_at,"            \
                        " kafka_partition, tombstone) SELECT ?, id, '{}', '', ?, ?, 1"            \
                        " FROM temp.prune_ids ORDER BY id")                                        \
    X(load_saga, "SELECT definition, version, status, input, traceparent, created_at, updated_at," \
                 " deadline_at, seq, completions, error_code, error_message, parent FROM sagas WHERE id = ?") \
    X(load_steps, "SELECT idx, status, attempt, comp_attempt, comp_budget_base, outcome_unknown,"  \
                  " output, error_code, error_message, started_at, finished_at, updated_at,"      \
                  " completion_order, signal FROM steps WHERE saga_id = ?")                        \
    X(insert_saga, "INSERT INTO sagas (id, definition, version, status, input, traceparent,"       \
                   " start_message_id, created_at, updated_at, search, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)") \
    X(update_saga, "UPDATE sagas SET status = ?, updated_at = ?, deadline_at = ?, seq = ?,"        \
                   " completions = ?, error_code = ?, error_message = ?, parent = ? WHERE id = ?")  \
    X(upsert_step, "INSERT OR REPLACE INTO steps (saga_id, idx, name, status, attempt,"            \
                   " comp_attempt, comp_budget_base, outcome_unknown, output, error_code,"         \
                   " error_message, started_at, finished_at, updated_at, completion_order, signal)" \
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")                      \
    X(history, "INSERT INTO history (saga_id, seq, at, event, step, status, detail)"              \
               " VALUES (?, ?, ?, ?, ?, ?, ?)")                                                    \
    X(outbox_add, "INSERT INTO outbox (topic, key, headers, payload, created_at, kafka_partition,"  \
                  " tombstone) VALUES (?, ?, ?, ?, ?, ?, ?)")                                      \
    X(outbox_scan, "SELECT id, topic, key, headers, payload, kafka_partition, tombstone"          \
                   " FROM outbox WHERE id > ?"                                                     \
                   " ORDER BY id LIMIT ?")                                                         \
    X(outbox_records, "SELECT id, key FROM outbox WHERE id > ? AND tombstone = 2 ORDER BY id LIMIT ?") \
    X(outbox_delete, "DELETE FROM outbox WHERE id BETWEEN ? AND ?")                                           \
    X(outbox_count, "SELECT count(*) FROM outbox")                                                 \
    X(outbox_max_id, "SELECT coalesce(max(id), 0) FROM outbox")                                    \
    X(timer_set, "INSERT OR REPLACE INTO timers (saga_id, slot, kind, attempt, due_at)"            \
                 " VALUES (?, ?, ?, ?, ?)")                                                        \
    X(timer_clear, "DELETE FROM timers WHERE saga_id = ? AND slot = ?")                            \
    X(timer_delete, "DELETE FROM timers WHERE saga_id = ? AND slot = ? AND kind = ?"               \
                    " AND attempt = ? AND due_at = ?")                                             \
    X(timers_due, "SELECT saga_id, slot, kind, attempt, due_at FROM timers WHERE due_at <= ?"      \
                  " ORDER BY due_at LIMIT ?")                                                      \
    X(timer_next, "SELECT min(due_at) FROM timers")                                                \
    X(def_get, "SELECT hash FROM definitions WHERE name = ? AND version = ?")                      \
    X(active_steps, "SELECT st.saga_id, s.definition, s.version, st.idx, st.status FROM steps st"  \
                    " JOIN sagas s ON s.id = st.saga_id WHERE st.status IN"                       \
                    " ('running', 'compensating', 'queued', 'compensation_queued')"               \
                    " ORDER BY st.updated_at")                                                     \
    X(history_of, "SELECT seq, at, event, step, status, detail FROM history WHERE saga_id = ?"     \
                  " AND at <= ? ORDER BY seq")                                                    \
    X(def_all, "SELECT name, version, json FROM definitions ORDER BY name, version")              \
    X(def_put, "INSERT INTO definitions (name, version, hash, json, loaded_at) VALUES (?, ?, ?, ?, ?)")

struct saga_store {
    sqlite3 *db;
#define STMT_FIELD(name, sql) sqlite3_stmt *name;
    STORE_STATEMENTS(STMT_FIELD)
#undef STMT_FIELD
    void *ext;                  /* the changelog module's state (store_internal.h) */
    void (*ext_free)(void *ext);
};

sqlite3 *saga_store_db(saga_store_t *st);
/* Logs what failed with SQLite's message; returns SAGA_ESTORE. */
int saga_store_fail(saga_store_t *st, const char *what);
/* Runs a prepared statement that returns no rows, then resets it and
 * clears its bindings: 0 or SAGA_ESTORE. */
int saga_store_run(saga_store_t *st, sqlite3_stmt *stmt, const char *what);
/* Binds v (NULL: SQL NULL) as a transient text. */
void saga_store_bind_text(sqlite3_stmt *s, int i, const char *v);
/* The module state set with saga_store_set_ext, or NULL. */
void *saga_store_ext(saga_store_t *st);
/* Sets it once; ext_free(ext) runs at close, before the connection closes. */
void saga_store_set_ext(saga_store_t *st, void *ext, void (*ext_free)(void *ext));

#endif

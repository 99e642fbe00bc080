/* Shared by changelog.c (encode) and changelog_apply.c (decode, apply):
 * the prepared statements, cached in the store's module slot. */
#ifndef SAGA_CHANGELOG_INTERNAL_H
#define SAGA_CHANGELOG_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>

#include "changelog.h"
#include "engine.h"
#include "saga_json.h"

#define CHANGELOG_STATEMENTS(X)                                                                       \
    X(enc_saga, "SELECT s.definition, s.version, s.status, s.input, s.traceparent, s.start_message_id," \
                " s.created_at, s.updated_at, s.deadline_at, s.seq, s.completions, s.error_code,"       \
                " s.error_message, d.hash, s.search, s.parent FROM sagas s LEFT JOIN definitions d"                         \
                " ON d.name = s.definition AND d.version = s.version WHERE s.id = ?")                    \
    X(enc_steps, "SELECT idx, name, status, attempt, comp_attempt, comp_budget_base, outcome_unknown,"  \
                 " output, error_code, error_message, started_at, finished_at, updated_at,"             \
                 " completion_order, signal FROM steps WHERE saga_id = ? ORDER BY idx")                 \
    X(enc_history, "SELECT seq, at, event, step, status, detail FROM history WHERE saga_id = ?"        \
                   " ORDER BY seq")                                                                    \
    X(enc_history_after, "SELECT seq, at, event, step, status, detail FROM history"                  \
                         " WHERE saga_id = ? AND seq > ? ORDER BY seq")                               \
    X(enc_timers, "SELECT slot, kind, attempt, due_at FROM timers WHERE saga_id = ? ORDER BY slot")     \
    X(enc_def, "SELECT hash, json, loaded_at FROM definitions WHERE name = ? AND version = ?")          \
    X(del_saga, "DELETE FROM sagas WHERE id = ?")                                                      \
    X(del_steps, "DELETE FROM steps WHERE saga_id = ?")                                                \
    X(del_history, "DELETE FROM history WHERE saga_id = ?")                                            \
    X(del_timers, "DELETE FROM timers WHERE saga_id = ?")                                              \
    X(ins_saga, "INSERT INTO sagas (id, definition, version, status, input, traceparent,"              \
                " start_message_id, created_at, updated_at, deadline_at, seq, completions,"            \
                " error_code, error_message, search, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")        \
    X(ins_step, "INSERT INTO steps (saga_id, idx, name, status, attempt, comp_attempt,"                \
                " comp_budget_base, outcome_unknown, output, error_code, error_message, started_at,"   \
                " finished_at, updated_at, completion_order, signal)"                                  \
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")                              \
    X(ins_history, "INSERT INTO history (saga_id, seq, at, event, step, status, detail)"               \
                   " VALUES (?, ?, ?, ?, ?, ?, ?)")                                                    \
    X(ins_timer, "INSERT INTO timers (saga_id, slot, kind, attempt, due_at) VALUES (?, ?, ?, ?, ?)")    \
    X(saga_version, "SELECT seq, updated_at, status FROM sagas WHERE id = ?")                          \
    X(def_hash, "SELECT hash FROM definitions WHERE name = ? AND version = ?")                         \
    X(def_insert, "INSERT INTO definitions (name, version, hash, json, loaded_at) VALUES (?, ?, ?, ?, ?)") \
    X(def_delete, "DELETE FROM definitions WHERE name = ? AND version = ?")                            \
    X(def_used, "SELECT 1 FROM sagas WHERE definition = ? AND version = ? LIMIT 1")                    \
    X(meta_get, "SELECT value FROM shard_meta WHERE key = 'changelog_offset'")                         \
    X(meta_set, "INSERT OR REPLACE INTO shard_meta (key, value) VALUES ('changelog_offset', ?)")       \
    X(meta_advance, "INSERT INTO shard_meta (key, value) VALUES ('changelog_offset', ?1)"              \
                    " ON CONFLICT (key) DO UPDATE SET value = max(value, ?1)")                         \
    X(sp_begin, "SAVEPOINT changelog_apply")                                                           \
    X(sp_release, "RELEASE changelog_apply")                                                           \
    X(sp_rollback, "ROLLBACK TO changelog_apply")

/* One saga's history rows as the encoder wrote them last time (history
 * rows are only ever appended while a saga lives): the next record of that
 * saga reads and encodes only the rows after last_seq. */
typedef struct {
    char id[SAGA_ID_MAX];
    int64_t created_at;    /* a saga removed and started again under the same id is another saga */
    int64_t last_seq;      /* 0: the slot is empty */
    int rows;
    saga_json_buf_t text;  /* the rows, comma-separated, without the brackets */
} saga_history_slot_t;

#define SAGA_HISTORY_SLOTS 1024        /* per store, direct-mapped by a hash of the saga id */
#define SAGA_HISTORY_SLOT_MAX 8192     /* a longer history is read whole every time */
#define SAGA_HISTORY_BUDGET (1 << 20)  /* bytes of cached text per store; beyond it nothing more is kept */

typedef struct {
#define CL_FIELD(name, sql) sqlite3_stmt *name;
    CHANGELOG_STATEMENTS(CL_FIELD)
#undef CL_FIELD
    bool only_newer; /* saga_changelog_only_newer */
    saga_history_slot_t *history; /* saga_changelog_cache_history; NULL: off */
    size_t history_bytes;         /* the cached text's capacity, all slots */
} saga_changelog_stmts_t;

/* Forgets the cached history of saga_id (its rows were replaced). */
void saga_changelog_history_drop(saga_changelog_stmts_t *c, const char *saga_id);

/* The module's statements, prepared on first use; NULL on failure. */
saga_changelog_stmts_t *saga_changelog_stmts(saga_store_t *st);

/* key as printable ASCII for a message ('?' for other bytes, cut). */
void saga_changelog_key_text(const char *key, size_t len, char *buf, size_t buflen);

/* marker = max(marker, offset), in the caller's transaction. */
int saga_changelog_offset_advance(saga_store_t *st, int64_t offset);

#endif

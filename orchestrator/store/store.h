/* sagad's durable state in SQLite (schema in schema.h): WAL, one writer,
 * synchronous=FULL by default. The caller groups many changes into one
 * transaction (group commit): begin, any number of the calls below, commit. */
#ifndef SAGA_STORE_H
#define SAGA_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "definition.h"
#include "engine.h"

typedef struct saga_store saga_store_t;

typedef struct {
    const char *synchronous; /* "FULL" (default when NULL), "NORMAL", "OFF" */
    int cache_kib;           /* SQLite page cache of this connection; 0: SAGA_STORE_CACHE_KIB */
} saga_store_options_t;

/* The page cache a process's stores share: sagad divides it among its
 * shards (at least SAGA_STORE_MIN_CACHE_KIB each). */
#define SAGA_STORE_CACHE_KIB 16000
#define SAGA_STORE_MIN_CACHE_KIB 2000

/* Opens (creating if needed) and migrates the database. NULL + err. */
saga_store_t *saga_store_open(const char *path, const saga_store_options_t *opt, char *err,
                              size_t errlen);
void saga_store_close(saga_store_t **st);
/* The last SQLite error message, for logs. */
const char *saga_store_errmsg(const saga_store_t *st);

/* Prepared statements run on this connection since the last call (SQLite's
 * SQLITE_STMTSTATUS_RUN of each, reset): the cost figure of docs/BENCHMARKS.md. */
uint64_t saga_store_statements_take(saga_store_t *st);

int saga_store_begin(saga_store_t *st);
int saga_store_commit(saga_store_t *st);
/* A read transaction (BEGIN DEFERRED; saga_store_commit ends it): many
 * reads in one take the WAL's read lock once instead of once each. */
int saga_store_read_begin(saga_store_t *st);
void saga_store_rollback(saga_store_t *st);

/* Records that consumer saw message_id. Returns 1 when new, 0 when it is a
 * duplicate, or a negative SAGA_E* code. */
int saga_store_dedup(saga_store_t *st, const char *consumer, const char *message_id, int64_t now);

/* Deletes up to `limit` dedup rows seen before `before`, in its own
 * transaction. Returns how many were deleted, or a negative code. */
int saga_store_prune_dedup(saga_store_t *st, int64_t before, int limit);

/* Retention: deletes up to `limit` finished sagas (completed or compensated;
 * never compensation_failed, which waits for an operator) last updated
 * before `before`, with their steps, history and timers, in one
 * transaction of its own. With changelog_topic (not NULL), each pruned
 * saga gets a tombstone outbox row (key its id, NULL value) to that topic's
 * partition `partition`, in the same transaction, so that compaction
 * removes its record. Returns how many sagas went, or a negative code. */
int saga_store_prune_finished(saga_store_t *st, int64_t before, int limit, const char *changelog_topic,
                              int partition, int64_t now);

/* Takes an exclusive lock on "<db_path>.lock" (created if needed; holds the
 * pid of its owner) for the life of the process, so that a second sagad
 * cannot run on the same database. Returns the lock's descriptor (keep it
 * open), or -1 with err naming the file and, when known, the holder's pid. */
int saga_store_lock(const char *db_path, char *err, size_t errlen);
/* The same on the lock file path; what ("the data directory D") names the
 * locked state in the message. */
int saga_store_lock_file(const char *path, const char *what, char *err, size_t errlen);

/* A shard's meta value (shard_meta, migration 5): 1 and *value when set,
 * 0 when not, negative on error. */
int saga_store_meta_get(saga_store_t *st, const char *key, long long *value);
/* Sets a shard's meta value in a transaction of its own. */
int saga_store_meta_set(saga_store_t *st, const char *key, long long value);

/* 1 when a saga with this id exists, 0 when not, negative on error. */
int saga_store_saga_exists(saga_store_t *st, const char *id);

/* 1 when a saga was started by the start message message_id (its
 * sagas.start_message_id, kept for the saga's life: a start is idempotent
 * on its message id even after its dedup row was pruned), 0 when not,
 * negative on error. */
int saga_store_start_seen(saga_store_t *st, const char *message_id);

/* Loads a saga and its steps; its definition is looked up in reg by
 * (name, version). Returns 0, SAGA_ENOTFOUND, or an error with err set.
 * On success the caller owns out's JSON (saga_clear). */
int saga_store_load(saga_store_t *st, const saga_registry_t *reg, const char *id, saga_t *out,
                    char *err, size_t errlen);

/* The saga as it was at until_ms (INT64_MAX: now), rebuilt from its
 * history rows alone (replay.h). 0, SAGA_ENOTFOUND (no such saga, or it did
 * not exist yet), or an error with err set. The caller saga_clears out. */
int saga_store_state_at(saga_store_t *st, const saga_registry_t *reg, const char *id, int64_t until_ms,
                        saga_t *out, char *err, size_t errlen);

/* Inserts a new saga row (not its effects: call saga_store_save next). */
int saga_store_insert(saga_store_t *st, const saga_t *s, const char *start_message_id);

/* Writes the saga row, its dirty step rows (then clears the flags), and
 * every effect: history rows and saga.events messages for EVENT, outbox
 * rows for COMMAND, timers for SET_TIMER/CLEAR_TIMER. ALERT effects are
 * recorded as events on events_topic too. */
int saga_store_save(saga_store_t *st, saga_t *s, const saga_effects_t *fx, const char *events_topic,
                    int64_t now);

/* Queues a message for the relay (dead letters, for instance). */
int saga_store_outbox_add(saga_store_t *st, const char *topic, const char *key, const char *headers,
                          const char *payload, size_t payload_len, int64_t now);
/* The same, to Kafka partition `partition` (-1: by key); payload NULL
 * queues a tombstone, produced with a NULL value (saga.changelog). */
int saga_store_outbox_add_to(saga_store_t *st, const char *topic, int partition, const char *key,
                             const char *headers, const char *payload, size_t payload_len, int64_t now);

typedef struct {
    char saga_id[SAGA_ID_MAX];
    int slot;
    saga_timer_kind_t kind;
    int attempt;
    int64_t due_at;
} saga_timer_row_t;

/* Up to max timers due at or before now, oldest first. Returns the count
 * or a negative code. Each returned timer should be deleted with
 * saga_store_timer_delete before its event is applied. */
int saga_store_due_timers(saga_store_t *st, int64_t now, saga_timer_row_t *rows, int max);
int saga_store_timer_delete(saga_store_t *st, const saga_timer_row_t *t);
/* Earliest due time, or INT64_MAX when there is no timer. */
int64_t saga_store_next_timer_due(saga_store_t *st);

/* The outbox column "tombstone": what a row's value is. */
enum {
    SAGA_OUTBOX_VALUE = 0,     /* the payload */
    SAGA_OUTBOX_TOMBSTONE = 1, /* NULL */
    SAGA_OUTBOX_RECORD = 2,    /* the changelog record of saga `key`, encoded when relayed (migration 7) */
};

/* Queues the changelog record of saga_id to partition of topic; its value
 * is encoded from the shard's state when the relay sends it (changelog_out.c). */
int saga_store_outbox_add_record(saga_store_t *st, const char *topic, int partition, const char *saga_id, int64_t now);

typedef struct {
    int64_t id;
    const char *topic, *key, *headers; /* valid during the callback only */
    bool record;              /* SAGA_OUTBOX_RECORD: payload NULL, the value is encoded by the relay */
    const void *payload;      /* NULL: a tombstone (produced with a NULL value), or a record */
    size_t payload_len;
    int partition;            /* the Kafka partition to produce to, -1: by key */
} saga_outbox_row_t;

/* Calls fn for up to max outbox rows with id > after_id, in id order.
 * Returns the number of rows visited or a negative code. */
int saga_store_outbox_scan(saga_store_t *st, int64_t after_id, int max,
                           int (*fn)(const saga_outbox_row_t *row, void *user), void *user);
/* Calls fn(id, saga_id) for up to max SAGA_OUTBOX_RECORD rows with id >
 * after_id, in id order, until fn returns non-zero (a negative value is
 * returned). Returns the number of rows visited or a negative code. */
int saga_store_outbox_records(saga_store_t *st, int64_t after_id, int max,
                              int (*fn)(int64_t id, const char *saga_id, void *user), void *user);
/* Deletes acknowledged rows (ids in any order, with repeats; sorts them). */
int saga_store_outbox_delete(saga_store_t *st, int64_t *ids, int n);
/* Rows not yet acknowledged. */
long long saga_store_outbox_backlog(saga_store_t *st);
/* The highest outbox id now (0: empty), -1 on error. */
int64_t saga_store_outbox_max_id(saga_store_t *st);
/* Calls fn for outbox row id if it is still there. Returns 1 (found), 0
 * (gone: acknowledged or parked meanwhile) or a negative code. */
int saga_store_outbox_get(saga_store_t *st, int64_t id, int (*fn)(const saga_outbox_row_t *row, void *user),
                          void *user);
/* Moves outbox row id to outbox_parked (the broker refused it for good),
 * recording why and what was done instead (outcome). */
int saga_store_outbox_park(saga_store_t *st, int64_t id, int64_t now, const char *error, const char *outcome);

/* Stores a definition (name, version, hash, json). SAGA_EEXISTS with err
 * when that (name, version) was stored before with another hash. */
int saga_store_put_definition(saga_store_t *st, const saga_definition_t *def, int64_t now, char *err,
                              size_t errlen);

/* Paused participant topics (migration 10), in the caller's transaction.
 * set: pauses topic (again: a new time and reason); clear: resumes it. */
int saga_store_pause_set(saga_store_t *st, const char *topic, int64_t paused_at, const char *reason);
int saga_store_pause_clear(saga_store_t *st, const char *topic);
/* Calls fn for every paused topic, by name. Returns how many, or a negative code. */
int saga_store_paused_topics(saga_store_t *st,
                             void (*fn)(const char *topic, int64_t paused_at, const char *reason, void *user),
                             void *user);

/* Calls fn for every step whose command is out or waiting for room
 * (running, compensating, queued, compensation_queued), oldest change
 * first: how the loop rebuilds its flow-control state after a restart.
 * Returns the number of rows or a negative code. */
int saga_store_active_steps(saga_store_t *st,
                            int (*fn)(const char *saga_id, const char *definition, int version, int idx,
                                      const char *status, void *user),
                            void *user);

/* Adds to reg, marked retired, every stored definition that reg does not
 * hold, so sagas started on a version whose file is gone can finish.
 * Returns 0 or an error with err set. */
int saga_store_load_retired(saga_store_t *st, saga_registry_t *reg, char *err, size_t errlen);

#endif

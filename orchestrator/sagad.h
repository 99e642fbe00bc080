/* The sagad process: its configuration and the one loop that owns all
 * writes (see docs/DESIGN.md, "Main loop"). */
#ifndef SAGAD_H
#define SAGAD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "alerts.h"
#include "bus.h"
#include "definition.h"
#include "engine.h"
#include "flow.h"
#include "restore.h"
#include "runtime.h"
#include "shard.h"
#include "store.h"
#include "txnplan.h"

typedef struct {
    const char *bootstrap, *bootstrap_file;
    const char *data_dir;          /* the shards, lock and admin token (datadir.h) */
    const char *db;                /* an older release's single-file database, converted on start */
    const char *sagas_dir;
    const char *admin_addr;
    const char *admin_token, *admin_token_file, *admin_host;
    long long admin_port;
    const char *ready_file;
    const char *alert_webhook;
    const char *group;
    const char *instance_id;       /* this instance's name in the group (static membership) */
    const char *start_topic, *replies_topic, *events_topic, *dlq_topic;
    const char *changelog_topic;   /* the shards' changelog (compacted, P partitions) */
    const char *control_topic;     /* operator commands through Kafka (P partitions, consumed) */
    const char *instances_topic;   /* the instance registry (compacted, one partition; instances.h) */
    const char *admin_url;         /* this instance's admin API as others reach it (NULL: from addr and port) */
    long long partitions;          /* P: partitions of every consumed topic (shards) */
    long long batch_size;
    const char *synchronous;
    const char *events_level;   /* --events: all, saga or terminal (saga_events_level_t) */
    const char *dedup_retention;   /* duration string, e.g. "168h" */
    int64_t dedup_retention_ms;
    const char *retention;         /* finished sagas are deleted after this (duration) */
    int64_t retention_ms;
    const char *log_level, *log_format;
    bool check;
    long long max_in_flight, breaker_failures;
    const char *breaker_cooldown;
    int64_t breaker_cooldown_ms;
    saga_kv_list_t kafka_props;
    long long max_message_bytes;   /* largest Kafka record sagad publishes */
} sagad_config_t;

/* Counters of what the loop did; logged periodically, metrics later. */
#define SAGAD_COUNTERS(X)                                      \
    X(messages, "messages consumed")                           \
    X(sagas_started, "sagas started")                          \
    X(duplicate_start, "duplicate start events dropped")       \
    X(duplicate_message, "duplicate messages dropped (dedup)") \
    X(stale_reply, "stale or late replies ignored")            \
    X(stale_timer, "stale timers ignored")                     \
    X(signals_applied, "signals applied to signal steps")      \
    X(signals_refused, "signals refused (unknown saga or signal, finished saga, already received)") \
    X(dead_letters, "messages sent to the dead-letter topic")  \
    X(commits, "SQLite transactions committed")                \
    X(sql_statements, "SQLite prepared statements run in committed shard transactions (reads and writes; BEGIN and COMMIT not counted)") \
    X(produced, "outbox messages produced")                    \
    X(dedup_pruned, "dedup rows pruned after the retention")   \
    X(resumed, "queued steps resumed when their topic had room")  \
    X(retries, "step retries scheduled (actions and compensations)") \
    X(timeouts, "step timeouts")                               \
    X(sagas_finished, "sagas that reached a terminal status")  \
    X(outbox_parked, "outbox messages the broker refused for good (parked: step failed or stub sent)") \
    X(produce_retries, "outbox messages sent again after a transient delivery failure") \
    X(txn_aborts, "relay transactions aborted (a delivery failed); their rows are sent again")                \
    X(producers_recreated, "Kafka producers replaced after a fatal error that was not a fencing") \
    X(sagas_pruned, "finished sagas deleted after the retention") \
    X(clock_jumps, "wall-clock jumps of more than 1 s detected")  \
    X(catchups, "times timers waited for the replies to be read up to the high watermark") \
    X(changelog_records, "saga.changelog records (saga records and tombstones) encoded for the relay") \
    X(changelog_too_large, "saga.changelog records over --max-message-bytes (produced anyway, alerted)") \
    X(changelog_refused, "saga.changelog records the broker refused for good (parked, not restorable)") \
    X(shards_acquired, "shards taken on an assignment (restored or caught up first)") \
    X(shards_released, "shards given up on a revocation, a lost session or a fenced transaction") \
    X(shards_diverged, "shards rebuilt because another instance wrote their changelog after this file's unsent commits") \
    X(forwarded, "messages read on another shard's partition, forwarded to their saga's partition") \
    X(txn_fenced, "relay transactions refused because this instance's group generation was stale (it had lost its partitions)") \
    X(not_owner, "operator commands for a saga of a shard this instance does not own (dropped)")

typedef struct {
#define SAGAD_COUNTER_FIELD(name, help) uint64_t name;
    SAGAD_COUNTERS(SAGAD_COUNTER_FIELD)
#undef SAGAD_COUNTER_FIELD
} sagad_counters_t;

typedef struct sagad {
    sagad_config_t cfg;
    saga_registry_t *registry;
    sagad_shard_t *shards;              /* cfg.partitions of them, shards[p].partition == p; */
    int shard_count;                    /* shards[p].store is open while this instance owns p */
    int owned_count;                    /* shards owned (open) */
    unsigned char *owned;               /* owned[p]: shards[p].store is open (the admin API reads it) */
    /* Ownership (ownership.c): the bus's assignment version last acted on,
     * shards assigned but not ready (a restore failed: tried again at
     * retry_ms), and after a fenced transaction every shard held back
     * until the next assignment (or held_until_ms). */
    uint64_t owned_version;
    int pending_count;
    int64_t retry_ms;
    bool held;
    uint64_t held_version;
    int64_t held_until_ms;
    rd_kafka_t *restorer;               /* the changelog reader of restores */
    struct sagad_instances *instances;  /* the instance registry (instances.h), NULL before it starts */
    sagad_restore_config_t restore_cfg;
    sagad_restore_stat_t *restore_stats; /* per shard: what its last restore did */
    saga_store_options_t store_opt;
    saga_flow_limits_t flow_limits;
    rd_kafka_topic_partition_list_t *committed; /* offsets of the last relay transaction that carried some */
    saga_bus_t *bus;
    saga_engine_config_t engine;
    saga_flow_t *flow;
    struct saga_command_queue *commands; /* from the admin API; applied by the loop */
    saga_alerter_t *alerts;             /* NULL without --alert-webhook */
    bool reload_pending;                /* an operator asked for a reload (done between iterations) */
    json_t *pending_alerts;             /* [kind, fields] pairs raised in this transaction */
    saga_breaker_state_t breaker_logged[256]; /* last logged state per flow topic index */
    bool pause_dirty;                   /* a pause or resume was applied: sagad_pause_sync */
    char paused_logged[1024];           /* the paused topics last logged */
    uint64_t rng;
    uint64_t producers_seen;   /* producer resets (fatal errors) the relay has caught up with */
    int64_t parked_alert_window;   /* start of the minute the outbox_parked alerts are counted in */
    int parked_alerts, parked_unalerted; /* alerts raised in it; parked rows not alerted since */
    int64_t timers_held_since; /* due timers held back behind a message backlog since (0: not) */
    int64_t last_poll_us;      /* monotonic end of the previous poll (stall detection) */
    uint64_t assign_gen;       /* the bus's assignment count last seen */
    bool catching;             /* timers held by a catch-up (bus.h) */
    int64_t catch_ms;          /* how long it has held them */
    int64_t last_wall_ms, last_mono_us; /* clock-jump detection */
    int64_t clock_offset_ms;   /* sum of the wall-clock jumps seen (logged, not applied) */
    sagad_counters_t counters;
    uint64_t stale_by_reason[SAGA_STALE__COUNT];
    saga_histogram_t commit_seconds, iteration_seconds, step_seconds, saga_seconds;
    /* the stages of a hop through sagad (docs/BENCHMARKS.md, "Where a step's time goes"):
     * a record's timestamp to its poll, handling the batch, the relay pass's flush and EndTxn */
    saga_histogram_t consume_lag_seconds, handle_seconds, relay_seconds;
    sagad_runtime_t *runtime;   /* snapshot for the admin API */
    /* The commit sequence (docs/DESIGN.md): iterations whose offsets wait
     * for a relay transaction (payload: rd_kafka_topic_partition_list_t,
     * the positions after it), and the positions after the newest one. */
    sagad_txnplan_t txnplan;
    rd_kafka_topic_partition_list_t *positions;
    uint64_t txns;              /* relay transactions that produced rows (SAGAD_ABORT_TXN counts them) */
    bool txn_open;              /* the relay's Kafka transaction is open */
    bool relay_pending;         /* sagad_relay_send left a transaction for sagad_relay_commit ... */
    int relay_covered;          /* ... with the offsets of this txnplan entry (-1: none) */
    int64_t relay_mono_ms;      /* ... taken at this monotonic ms */
    int64_t offsets_sent_ms;    /* monotonic ms of the last transaction that carried offsets */
    bool offsets_now;           /* every pass sends the covered offsets (draining at shutdown) */
    bool deleted_in_tx;         /* this iteration's SQLite transaction deletes delivered outbox rows */
} sagad_t;

/* One loop iteration: consume a batch, fire due timers, apply everything
 * in one transaction per touched shard, commit them all, remember the
 * batch's offsets, relay the outboxes in one Kafka transaction (which
 * commits the offsets of the batches it completes). Returns 0, or a negative code when a store failed
 * (the process must stop; no offset of the iteration was stored). */
int sagad_iterate(sagad_t *d, int max_wait_ms);

/* Rebuilds flow-control state (in-flight counts, queued steps) from the
 * owned shards (after a start or an ownership change). */
int sagad_flow_recover(sagad_t *d);

/* ---- ownership.c: which shards this instance owns ----
 * Follows the bus's assignment between iterations: a shard no longer
 * assigned is closed (its offsets leave the pending iterations), a newly
 * assigned one is restored or caught up from the changelog (restore.h),
 * opened, given the definitions, and its partitions resumed; then the flow
 * state is rebuilt. A restore that fails on Kafka is tried again a second
 * later. 0, or a negative code (sagad stops). */
int sagad_ownership_sync(sagad_t *d);
/* A relay transaction was refused for a stale generation: every shard is
 * given up now and held until the group assigns again (at most hold_ms). */
void sagad_ownership_release_all(sagad_t *d, int64_t hold_ms);
/* Records every definition of reg in shard p (every owned one: p = -1),
 * refusing a changed file under a version already used, then adds the
 * stored versions whose files are gone, retired. All or nothing. */
int sagad_adopt_definitions(sagad_t *d, saga_registry_t *reg, int p);
/* Offsets of shard p's partitions removed from list (may be NULL). */
void sagad_offsets_drop_shard(rd_kafka_topic_partition_list_t *list, int p, int partitions);

/* Publishes a runtime snapshot (counters, flow, timings) for the admin API. */
void sagad_publish_runtime(sagad_t *d);

/* Writes the changelog record rows of the sagas each open shard
 * transaction changed (sagad_changelog_flush); 0 or the first error (the
 * caller rolls back). */
int sagad_flush_changelogs(sagad_t *d, int64_t now);
/* Commits every shard with an open transaction, all at once (a kept
 * commit thread each beyond the first), after sagad_flush_changelogs; a
 * shard whose commit failed is rolled back, the others stay committed.
 * 0 or the first error. */
int sagad_commit_shards(sagad_t *d);
/* Stops and joins the threads sagad_commit_shards keeps (at shutdown). */
void sagad_commit_workers_stop(void);

/* changelog_out.c: the saga.changelog records of the sagas shard sh's
 * open transaction changed (sagad_shard_touch), one row per saga, added to
 * its outbox for partition sh->partition just before the commit
 * (SAGA_OUTBOX_RECORD: the relay encodes the value when it sends it,
 * sagad_changelog_record); before a shard's first record of a definition
 * (name, version), that definition's record, encoded now (once per shard
 * file: shard_meta 'def_written/def/NAME/VERSION'). 0 or an error (the
 * iteration fails). */
int sagad_changelog_flush(sagad_t *d, sagad_shard_t *sh, int64_t now);
/* The value of saga_id's changelog record as shard sh holds it now, in
 * *value (saga_free it): 0, SAGA_ENOTFOUND (the saga is gone: a
 * tombstone, *value NULL) or an error. */
int sagad_changelog_record(sagad_t *d, sagad_shard_t *sh, const char *saga_id, char **value, size_t *len);
/* After sh's commit (committed) or rollback: forgets this iteration's list,
 * and on a rollback the definitions it noted as written. */
void sagad_changelog_forget(sagad_shard_t *sh, bool committed);
void sagad_rollback_shards(sagad_t *d);

/* Sends what the outbox holds and waits for acknowledgements (shutdown). */
int sagad_drain_outbox(sagad_t *d, int timeout_ms);

/* ---- between the loop (loop.c) and the relay (relay.c) ---- */

/* Applies ev to saga s of shard sh and persists the outcome in sh's open
 * transaction; a stale event counts in *stale_counter. */
int sagad_apply_and_save(sagad_t *d, sagad_shard_t *sh, saga_t *s, const saga_event_t *ev, int64_t now, uint64_t *stale_counter);
/* The same; why (non-empty) says why the event changed nothing when it was stale. */
int sagad_apply_and_save_why(sagad_t *d, sagad_shard_t *sh, saga_t *s, const saga_event_t *ev, int64_t now,
                             uint64_t *stale_counter, char *why, size_t why_len);
/* Routing inside a loop iteration (loop.c): a message sagad will not apply
 * goes to saga.dlq with its reason (in the shard of the message's own
 * partition, sagad_message_shard); sagad_owned_shard_tx is shard p with its
 * transaction open when this instance owns it, else NULL with *rc 0 (the
 * message was forwarded to p's partition; m NULL: an operator's command,
 * dropped with a log line). */
int sagad_dead_letter(sagad_t *d, sagad_shard_t *sh, const rd_kafka_message_t *m, const char *reason, int64_t now);
sagad_shard_t *sagad_message_shard(sagad_t *d, const rd_kafka_message_t *m, int *rc);
sagad_shard_t *sagad_owned_shard_tx(sagad_t *d, const rd_kafka_message_t *m, int p, const char *saga_id, int64_t now,
                                    int *rc);
/* Paused topics (pause.c): pause or resume topic in shard sh's open
 * transaction (its row and changelog record); the flow's flags follow at
 * the next sagad_pause_sync (the loop calls it when d->pause_dirty, and
 * after the flow is rebuilt), which holds the topics any owned shard paused. */
int sagad_pause_apply(sagad_t *d, sagad_shard_t *sh, const char *topic, bool paused, const char *reason, int64_t now);
int sagad_pause_sync(sagad_t *d);
/* A saga.signal (signals.c), from saga.replies (m) or an operator (m NULL). */
int sagad_handle_signal(sagad_t *d, const rd_kafka_message_t *m, const json_t *root, int64_t now);
/* Queues an alert (fields stolen) until the transaction's end ... */
void sagad_raise_alert(sagad_t *d, const char *kind, json_t *fields);
/* ... which sends the queued alerts if it committed, drops them if not. */
void sagad_send_alerts(sagad_t *d, bool committed);

/* A relay pass (docs/DESIGN.md, "The commit sequence"), in two halves so
 * that the loop's SQLite commit runs while the rows are on their way:
 * sagad_relay_send hands the due resends and the new outbox rows of every
 * shard (as its connection sees them: in the loop, the iteration's open
 * transactions) to the producer in one Kafka transaction, nothing before
 * the first assignment's group check passed; returns the number of rows
 * or a negative code. sagad_relay_commit, only after every shard that
 * transaction read from has committed, waits for the deliveries and
 * commits it with the offsets it covers. sagad_relay_abandon aborts it
 * instead (a shard's commit failed: none of it may become visible).
 * sagad_relay does both halves (no SQLite transaction open). */
int sagad_relay_send(sagad_t *d);
int sagad_relay_commit(sagad_t *d);
void sagad_relay_abandon(sagad_t *d);
/* After a transaction refused for a stale generation or a fenced producer
 * epoch (bus.h): counts it and gives up every shard (no transaction open). */
void sagad_relay_check_fenced(sagad_t *d);
int sagad_relay(sagad_t *d);
/* In the shards' transactions (opened as needed): deletes the outbox rows
 * Kafka acknowledged ... */
int sagad_relay_acked(sagad_t *d);
/* ... and deals with failed deliveries: resend later, or park the row. */
int sagad_relay_failures(sagad_t *d, int64_t now);

/* Before the iteration's relay pass: remembers its consumed positions
 * (msgs) with the highest outbox id of each shard (as the iteration's
 * transactions see them), for the relay transaction that delivers them
 * (nothing is committed to Kafka here). */
void sagad_relay_note_iteration(sagad_t *d, rd_kafka_message_t **msgs, int n);
/* Frees the pending iterations (shutdown). */
void sagad_relay_free(sagad_t *d);

/* Crash points of the commit sequence, for the crash tests: with
 * SAGAD_CRASH_AT=NAME (and SAGAD_CRASH_AFTER=N, default 1) the N-th pass
 * through that point ends the process with _exit(137). Off otherwise. */
typedef enum {
    SAGAD_CRASH_BEFORE_SQLITE_COMMIT, /* the iteration's relay pass produced, its shards not committed */
    SAGAD_CRASH_AFTER_SQLITE_COMMIT,
    SAGAD_CRASH_AFTER_PRODUCE,
    SAGAD_CRASH_AFTER_KAFKA_COMMIT,
    SAGAD_CRASH_AFTER_OUTBOX_DELETE,
    SAGAD_CRASH__COUNT
} sagad_crash_point_t;
void sagad_crash_point(sagad_crash_point_t at);
/* The stall point (tests): with SAGAD_STALL_DIR set, an instance stops
 * itself with SIGSTOP after a relay pass produced (its transaction in
 * hand) when the file SAGAD_STALL_DIR/stall-<its instance id> exists
 * (deleted then). A file holding "without-offsets" waits for a pass that
 * brings no new consumer offsets. */
void sagad_crash_point_instance(const char *instance_id);
void sagad_stall_point(bool new_offsets);

#endif

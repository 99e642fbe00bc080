/* The participant library: how a service joins a saga (docs/PARTICIPANTS.md).
 *
 * Two layers:
 *  - participant_process() (no Kafka): takes the bytes of one saga.command,
 *    runs it against the worker's SQLite ledger in ONE local transaction
 *    (business change + a `processed` row keyed by idempotency_key holding
 *    the reply) and hands back the reply to send. Unit tests drive it with a
 *    real SQLite file.
 *  - participant_run() (Kafka): consumes the command topic in batches, runs
 *    a batch in one SQLite transaction (a savepoint per command), produces
 *    the replies with the idempotent producer, waits for their delivery and
 *    only then stores the consumer offsets.
 *
 * Guarantees the library gives every handler:
 *  - a duplicate command (same idempotency_key, any attempt) runs nothing and
 *    re-sends the stored reply, re-rendered with the new attempt/in_reply_to;
 *  - reply message ids are "r-<idempotency_key>/<attempt>": the same command
 *    delivered twice gets an identical reply message_id;
 *  - a compensation whose action never ran (or failed, or only got transient
 *    outcomes) is a successful no-op, recorded; an action arriving after its
 *    compensation is refused (failure COMPENSATED_BEFORE_ACTION) and runs
 *    nothing;
 *  - a business failure rolls back whatever the handler changed and records
 *    the failure reply; a transient (retry) outcome rolls back and records
 *    nothing, so the next attempt runs again.
 */
#ifndef SAGA_PARTICIPANT_H
#define SAGA_PARTICIPANT_H

#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stddef.h>

#include "saga_config.h"

typedef struct participant participant_t;

typedef enum { PARTICIPANT_ACTION, PARTICIPANT_COMPENSATION } participant_kind_t;

#define PARTICIPANT_STATUS_MAP(X) \
    X(SUCCESS, "success")         \
    X(FAILURE, "failure")         \
    X(RETRY, "retry")

typedef enum {
#define PARTICIPANT_STATUS_ENUM(name, str) PARTICIPANT_##name,
    PARTICIPANT_STATUS_MAP(PARTICIPANT_STATUS_ENUM)
#undef PARTICIPANT_STATUS_ENUM
} participant_status_t;

const char *participant_status_name(participant_status_t s);

/* One decoded command. All pointers are borrowed for the handler call. */
typedef struct {
    const char *message_id;
    const char *saga_id;
    const char *definition;      /* may be NULL */
    const char *step;
    participant_kind_t kind;
    const char *action;
    long long attempt;
    const char *idempotency_key;
    const json_t *payload;       /* always an object */
    /* Compensations only: the idempotency key of the action this undoes and
     * the output recorded for it in this ledger (never NULL for a handler
     * call: a compensation whose action did not succeed never reaches one). */
    const char *action_key;
    const json_t *action_output;
} participant_command_t;

/* What a handler decides. The library zeroes it before the call. */
typedef struct {
    participant_status_t status; /* default SUCCESS */
    json_t *output;              /* success: handler sets a new reference (NULL -> {}) */
    char error_code[64];         /* failure/retry: e.g. "PAYMENT_DECLINED" */
    char error_message[256];
} participant_result_t;

/* Sets result->status/error; returns 0 for convenience in handlers. */
int participant_fail(participant_result_t *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int participant_retry(participant_result_t *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A handler runs inside the library's transaction (a savepoint): it changes
 * its own tables through `db` and fills `res`. Return 0, or a negative
 * SAGA_E* code when the ledger itself failed (rolled back, replied as retry
 * with code LEDGER_ERROR). Never BEGIN/COMMIT inside a handler. */
typedef int (*participant_handler_fn)(sqlite3 *db, const participant_command_t *cmd,
                                      participant_result_t *res, void *user);

typedef struct {
    const char *action;          /* e.g. "payment.charge"; NULL ends a table */
    participant_kind_t kind;
    participant_handler_fn fn;
} participant_handler_t;

/* Loads seed data (already parsed) into an empty ledger; inside a
 * transaction. Returns 0 or a negative code with err set. */
typedef int (*participant_seed_fn)(sqlite3 *db, const json_t *seed, char *err, size_t errlen);

typedef struct {
    const char *name;            /* "payment": log component, defaults */
    const char *program;         /* "payment-worker" */
    const char *env_prefix;      /* "PAYMENT_WORKER" */
    const char *summary;         /* one line for --help */
    const char *schema_sql;      /* worker tables (CREATE ... IF NOT EXISTS); may be NULL */
    participant_seed_fn seed;    /* may be NULL */
    const participant_handler_t *handlers; /* ends with {NULL} */
    void *user;                  /* passed to handlers */
} participant_spec_t;

typedef struct {
    double fail_rate;            /* business failure of actions, 0..1 */
    double retry_rate;           /* transient outcome, 0..1 */
    double no_reply_rate;        /* commit but do not send the reply, 0..1 */
    long long delay_ms;          /* sleep before each command */
    long long crash_after;       /* abort() once this many commands committed; 0 = never */
    unsigned long long rng_seed; /* 0 = random */
} participant_faults_t;

/* Opens (creates) the ledger at db_path: WAL, synchronous=FULL, library and
 * worker schema. `spec` must outlive the participant. Returns NULL with err
 * set on failure. Free with participant_close. */
participant_t *participant_open(const participant_spec_t *spec, const char *db_path, char *err,
                                size_t errlen);
void participant_close(participant_t **p);

/* The ledger connection (for audits and tests); owned by p. */
sqlite3 *participant_db(participant_t *p);

/* Loads a seed JSON file into the ledger if it was never seeded and has
 * processed no command; otherwise logs and does nothing. 0 or negative. */
int participant_seed_file(participant_t *p, const char *path, char *err, size_t errlen);
int participant_seed_json(participant_t *p, const json_t *seed, char *err, size_t errlen);

void participant_set_faults(participant_t *p, const participant_faults_t *faults);

/* The reply to send for one command. All strings owned by the struct. */
typedef struct {
    char *body;                  /* reply JSON; NULL: nothing to send */
    char *topic;                 /* the command's reply_to */
    char *key;                   /* saga_id: the Kafka key */
    int partition;               /* the command's reply_partition: the reply goes to that partition
                                    of topic; -1 (absent, invalid): keyed by saga_id, murmur2 */
    char *message_id;            /* the reply's message_id */
    participant_status_t status;
    int duplicate;               /* 1: a stored reply re-sent, nothing ran */
    int suppressed;              /* 1: fault injection dropped the reply */
} participant_reply_t;

void participant_reply_clear(participant_reply_t *r);

/* Processes one command in its own transaction. `where` (may be NULL)
 * names the source in logs, e.g. "payment.commands[2]@41".
 * Returns 0 (out->body is the reply, or NULL when suppressed), SAGA_EPARSE
 * for a malformed command (logged; out->body holds a failure reply when
 * saga_id/step/kind/reply_to/message_id were readable, else NULL), or
 * SAGA_ESTORE when the ledger failed (out holds a retry reply). */
int participant_process(participant_t *p, const char *bytes, size_t len, const char *where,
                        participant_reply_t *out);

/* Group commit: begin, process any number of commands, commit. Replies of a
 * batch may be sent only after participant_batch_commit returned 0; if it
 * fails the whole batch was rolled back (process the commands again). */
int participant_batch_begin(participant_t *p);
int participant_batch_process(participant_t *p, const char *bytes, size_t len, const char *where,
                              participant_reply_t *out);
int participant_batch_commit(participant_t *p);
void participant_batch_rollback(participant_t *p);

/* Number of commands committed so far (duplicates included). */
long long participant_processed_count(const participant_t *p);

typedef struct {
    const char *bootstrap;       /* resolved bootstrap list */
    const char *topic;           /* command topic */
    const char *group;           /* consumer group */
    const char *client_id;       /* may be NULL: spec->program */
    const char *ready_file;      /* may be NULL */
    const saga_kv_list_t *kafka_props; /* -X overrides, may be NULL */
    int batch_max;               /* <= 0: 500 */
    volatile sig_atomic_t *stop; /* set by the signal handler */
    /* NULL: none. Rewritten (atomically) every second and at the end, in
     * Prometheus text: the stages of a command through the participant
     * (participant_consume_lag_seconds, _process_duration_seconds,
     * _reply_duration_seconds) and participant_commands_total. */
    const char *metrics_file;
} participant_run_opts_t;

/* Runs until *stop: consume, process, reply, store offsets. On stop it
 * finishes the current batch, flushes the producer and closes the consumer.
 * Returns 0 or a negative code with err set. */
int participant_run(participant_t *p, const participant_run_opts_t *opts, char *err, size_t errlen);

/* A whole worker's main(): CLI/env from one table (--bootstrap,
 * --bootstrap-file, --db, --seed, --topic, --group, --ready-file,
 * --log-level, fault flags, -X), seed, signals, participant_run. */
int participant_main(const participant_spec_t *spec, int argc, char **argv);

/* Helpers for handlers. */
/* Runs one statement with bound parameters described by `types`, one
 * argument each: 't' const char * (NULL binds NULL), 'i' long long, 'n'
 * any pointer, bound as NULL. Returns 0 or SAGA_ESTORE (logged). */
int participant_exec(sqlite3 *db, const char *sql, const char *types, ...);
/* Runs a query with bound parameters (as participant_exec) and reads the
 * first column of the first row as an integer. Returns 1 (row found, *out
 * set), 0 (no row) or SAGA_ESTORE (logged). */
int participant_query_int(sqlite3 *db, long long *out, const char *sql, const char *types, ...);
/* Current time as RFC 3339 text into buf. */
const char *participant_now(char *buf, size_t len);

#endif

/* The pure saga engine: engine_apply(saga, event, now_ms, rng) -> effects.
 * No I/O, no clock, no randomness of its own: time and a PRNG state come
 * from the caller, so every transition is tested with a fake clock.
 * Every status change goes through one function in engine_record.c
 * (eng_set_status / eng_set_step_status), which appends a lifecycle event
 * effect; the store records those as the saga's history and publishes them
 * on saga.events (by the events level). */
#ifndef SAGA_ENGINE_H
#define SAGA_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "definition.h"

#define SAGA_ID_MAX 128

#define SAGA_STATUS_MAP(X)                         \
    X(RUNNING, "running")                          \
    X(COMPLETED, "completed")                      \
    X(COMPENSATING, "compensating")                \
    X(COMPENSATED, "compensated")                  \
    X(COMPENSATION_FAILED, "compensation_failed")  \
    X(SCHEDULED, "scheduled")

typedef enum {
#define SAGA_STATUS_ENUM(name, str) SAGA_STATUS_##name,
    SAGA_STATUS_MAP(SAGA_STATUS_ENUM)
#undef SAGA_STATUS_ENUM
    SAGA_STATUS__COUNT
} saga_status_t;

/* Step life: pending -> running (command sent) -> succeeded | failed |
 * retry_wait (backoff, then running again) | unknown (timed out, retries
 * exhausted: it may have run, so it is compensated). Compensation of a
 * succeeded/unknown step: compensating (command sent) -> compensated |
 * compensation_retry_wait (backoff, then compensating again) |
 * compensation_failed. A step that never ran because the saga failed
 * first is cancelled. A signal step waits (waiting) for its signal instead
 * of sending a command: succeeded or failed by the signal, failed by its
 * timeout, cancelled when the saga compensates first. */
#define SAGA_STEP_STATUS_MAP(X)                    \
    X(PENDING, "pending")                          \
    X(RUNNING, "running")                          \
    X(RETRY_WAIT, "retry_wait")                    \
    X(QUEUED, "queued")                            \
    X(SUCCEEDED, "succeeded")                      \
    X(FAILED, "failed")                            \
    X(UNKNOWN, "unknown")                          \
    X(COMPENSATING, "compensating")                \
    X(COMPENSATION_QUEUED, "compensation_queued")  \
    X(COMPENSATION_RETRY_WAIT, "compensation_retry_wait") \
    X(COMPENSATED, "compensated")                  \
    X(COMPENSATION_FAILED, "compensation_failed")  \
    X(CANCELLED, "cancelled")                      \
    X(WAITING, "waiting")

typedef enum {
#define SAGA_STEP_STATUS_ENUM(name, str) SAGA_STEP_##name,
    SAGA_STEP_STATUS_MAP(SAGA_STEP_STATUS_ENUM)
#undef SAGA_STEP_STATUS_ENUM
    SAGA_STEP__COUNT
} saga_step_status_t;

/* Timers: a step's reply timeout or retry backoff (slot = step index),
 * the saga's deadline, and a scheduled saga's begin time (slot -1). */
#define SAGA_TIMER_KIND_MAP(X)  \
    X(STEP_TIMEOUT, "step_timeout") \
    X(BACKOFF, "backoff")           \
    X(DEADLINE, "deadline")         \
    X(START, "start")

typedef enum {
#define SAGA_TIMER_ENUM(name, str) SAGA_TIMER_##name,
    SAGA_TIMER_KIND_MAP(SAGA_TIMER_ENUM)
#undef SAGA_TIMER_ENUM
    SAGA_TIMER__COUNT
} saga_timer_kind_t;

typedef enum { SAGA_KIND_ACTION, SAGA_KIND_COMPENSATION } saga_command_kind_t;
typedef enum { SAGA_REPLY_SUCCESS, SAGA_REPLY_FAILURE, SAGA_REPLY_RETRY } saga_reply_status_t;

/* Names from the X-macro lists; NULL-safe parsers return -1 when unknown. */
const char *saga_status_name(saga_status_t s);
int saga_status_parse(const char *name);
const char *saga_step_status_name(saga_step_status_t s);
int saga_step_status_parse(const char *name);
const char *saga_timer_kind_name(saga_timer_kind_t k);
int saga_timer_kind_parse(const char *name);
const char *saga_command_kind_name(saga_command_kind_t k);
int saga_command_kind_parse(const char *name);

typedef struct {
    saga_step_status_t status;
    int attempt;                 /* action attempts sent so far */
    int comp_attempt;            /* compensation attempts sent so far */
    int comp_budget_base;        /* comp_attempt when an operator last retried */
    bool outcome_unknown;        /* an attempt timed out without a reply */
    json_t *output;              /* owned, NULL until success */
    char error_code[64];
    char error_message[256];
    int64_t started_at, finished_at, updated_at;
    int completion_order;        /* 1, 2, ... in order of success; 0 = none */
    json_t *signal;              /* owned; a signal step's signal that came before the step
                                    started ({"status", "output"?, "error"?}), NULL: none */
} saga_step_state_t;

typedef struct saga {
    char id[SAGA_ID_MAX];
    const saga_definition_t *def; /* borrowed from the registry */
    saga_status_t status;
    json_t *input;               /* owned */
    json_t *search;              /* owned; the search attributes set at the start (saga_search_render),
                                    NULL: none. Written by saga_store_insert only; not loaded */
    json_t *parent;              /* owned; a child saga's parent: {"saga_id", "step", "attempt",
                                    "partition", "compensate"?: the parent's compensation attempt
                                    once it asked the child to undo itself}; NULL: not a child */
    char traceparent[64];        /* W3C trace context, "" when none */
    int64_t created_at, updated_at, deadline_at; /* deadline 0 = none */
    int64_t seq;                 /* last history sequence number */
    int completions;             /* steps succeeded so far (completion_order source) */
    char error_code[64];         /* why it is compensating, "" otherwise */
    char error_message[256];
    saga_step_state_t steps[SAGA_MAX_STEPS];
    bool step_dirty[SAGA_MAX_STEPS]; /* set by the engine: rows the store must write */
} saga_t;

/* Initialises a fresh saga (status running, steps pending). Takes a
 * reference to input. Only steps[0..def->step_count) are initialised: the
 * rest stay as they were, and nothing may read them. */
void saga_init(saga_t *s, const char *id, const saga_definition_t *def, json_t *input,
               const char *traceparent, int64_t now_ms);
/* Releases what the saga owns (input, outputs); the struct itself is the caller's. */
void saga_clear(saga_t *s);

typedef enum {
    SAGA_EV_START,   /* begin: run the first steps, arm the deadline; with begin_at in the
                        future, become scheduled and begin then (a START timer) */
    SAGA_EV_REPLY,   /* a participant's reply */
    SAGA_EV_TIMER,   /* a timer set by an earlier effect fired */
    SAGA_EV_ABORT,   /* operator: compensate a running saga */
    SAGA_EV_RETRY,   /* operator: resume a compensation_failed saga */
    SAGA_EV_RESUME,  /* a queued step got room on its topic (the caller took it) */
    SAGA_EV_UNDELIVERABLE, /* the broker refused a command for good (step, command_kind, attempt,
                              error_code, error_message): the step fails at once */
    SAGA_EV_SIGNAL,  /* a signal for signal step `step` (reply_status success or failure,
                        output, error_code, error_message); kept when the step has not
                        started yet */
    SAGA_EV_COMPENSATE, /* a child saga's parent compensates its step (attempt: the parent's
                           compensation attempt): undo what the child did, then say so */
} saga_event_kind_t;

typedef struct {
    saga_event_kind_t kind;
    /* REPLY, UNDELIVERABLE */
    int step;                    /* index in def->steps */
    saga_command_kind_t command_kind;
    int attempt;
    saga_reply_status_t reply_status;
    const json_t *output;        /* borrowed */
    const char *error_code;      /* may be NULL */
    const char *error_message;   /* may be NULL */
    /* TIMER: slot = step index, or -1 for the saga deadline; RESUME: step index */
    int slot;
    saga_timer_kind_t timer_kind;
    int timer_attempt;
    /* ABORT / RETRY */
    const char *reason;          /* may be NULL */
    /* START: when the saga begins (ms since the epoch); 0 or not after now: at once */
    int64_t begin_at;
} saga_event_t;

typedef enum {
    SAGA_FX_COMMAND,     /* publish message to topic (outbox) */
    SAGA_FX_SET_TIMER,   /* (saga, slot) fires at due_at; replaces any timer in that slot */
    SAGA_FX_CLEAR_TIMER, /* drop the timer of (saga, slot) */
    SAGA_FX_EVENT,       /* lifecycle event: history row + saga.events message */
    SAGA_FX_ALERT,       /* an operator must look (compensation_failed) */
    SAGA_FX_WAIT_FOR_ROOM, /* the step waits for room on `topic`: queue it, resume it later */
} saga_effect_kind_t;

typedef struct {
    saga_effect_kind_t kind;
    const char *topic;          /* COMMAND: borrowed from the definition */
    json_t *message;            /* COMMAND: the saga.command; EVENT/ALERT: the event body; owned */
    char *text;                 /* COMMAND/EVENT with a message size limit: the bytes to publish
                                   (an event too large is truncated here, its history keeps it
                                   whole); owned (saga_free), NULL: the store serialises message */
    int slot;                   /* timers */
    char key[SAGA_ID_MAX];      /* COMMAND: the Kafka key when not this saga's id ("": its id) ... */
    int partition;              /* ... and then the partition (-1: by key) */
    saga_timer_kind_t timer_kind;
    int timer_attempt;
    int64_t due_at;
    bool unpublished;           /* EVENT: history only, not on saga.events (saga_events_level_t) */
} saga_effect_t;

/* Why an event changed nothing (SAGA_ESTALE), for counters and logs. */
#define SAGA_STALE_REASONS(X)                                   \
    X(NONE, "none")                                             \
    X(ALREADY_STARTED, "already_started")                       \
    X(SAGA_FINISHED, "saga_finished")                           \
    X(UNKNOWN_STEP, "unknown_step")                             \
    X(NOT_WAITING, "step_not_waiting")                          \
    X(OTHER_ATTEMPT, "other_attempt")                           \
    X(WRONG_KIND, "wrong_kind")                                 \
    X(STALE_TIMER, "stale_timer")                               \
    X(STALE_RESUME, "stale_resume")                             \
    X(NOT_ALLOWED, "not_allowed")                               \
    X(SIGNAL_RECEIVED, "signal_already_received")               \
    X(INVALID, "invalid")

typedef enum {
#define SAGA_STALE_ENUM(name, str) SAGA_STALE_##name,
    SAGA_STALE_REASONS(SAGA_STALE_ENUM)
#undef SAGA_STALE_ENUM
    SAGA_STALE__COUNT
} saga_stale_reason_t;

const char *saga_stale_reason_name(saga_stale_reason_t r);
int saga_stale_reason_parse(const char *name);

typedef struct {
    saga_effect_t *items;
    int count, cap;
    saga_stale_reason_t stale_reason; /* set when apply returns SAGA_ESTALE */
} saga_effects_t;

void saga_effects_init(saga_effects_t *fx);
void saga_effects_clear(saga_effects_t *fx); /* frees messages, keeps capacity */
void saga_effects_free(saga_effects_t *fx);
/* Appends e; takes ownership of e.message and e.text, even on failure
 * (SAGA_ENOMEM). */
int saga_effects_push(saga_effects_t *fx, saga_effect_t e);

typedef struct saga_flow saga_flow_t;

/* Bytes of a Kafka record beyond its value (key, headers, framing) that a
 * message size limit keeps free: a value may be at most
 * max_message_bytes - SAGA_MESSAGE_RESERVE bytes. */
#define SAGA_MESSAGE_RESERVE 1024

/* Which lifecycle events go to saga.events (every one is kept in the
 * saga's history either way). */
typedef enum {
    SAGA_EVENTS_ALL,      /* every saga and step transition (the default) */
    SAGA_EVENTS_SAGA,     /* the saga's own transitions (saga.*), no step.* */
    SAGA_EVENTS_TERMINAL, /* saga.* events that leave the saga completed, compensated or compensation_failed */
} saga_events_level_t;

/* "all", "saga" or "terminal" -> level; -1 when unknown. */
int saga_events_level_parse(const char *name);

typedef struct {
    const char *replies_topic;   /* reply_to of every command, e.g. "saga.replies" */
    const char *start_topic;     /* where a child saga's start goes (NULL: "saga.start") */
    const char *control_topic;   /* where a child's abort and compensate go (NULL: "saga.control") */
    /* P, the partition count of the topics sagad consumes: every command
     * carries "reply_partition": saga_partition_of(saga id, P), the
     * partition of replies_topic its reply must be produced to (the saga's
     * shard). 0: the field is left out (tests that do not care). */
    int partitions;
    saga_flow_t *flow;           /* bulkhead and circuit breaker (flow.h); NULL: no limits */
    /* Largest Kafka record sagad publishes (0: no limit). A command over it
     * fails its step at once (PAYLOAD_TOO_LARGE, no retry: it can never be
     * sent); a lifecycle event over it is published truncated, marked
     * "truncated": original size (its history row keeps it whole). */
    size_t max_message_bytes;
    saga_events_level_t events_level;
} saga_engine_config_t;

/* Applies one event. Returns 0 when the saga changed (effects appended),
 * SAGA_ESTALE when the event changes nothing (duplicate, late, stale: the
 * reason is written into `why`), SAGA_ESTATE when the engine would make a
 * transition not listed in transitions.h (a bug; reason in `why`), or
 * SAGA_ENOMEM. On any error the caller must discard the saga and effects. `rng` is a PRNG state the
 * caller seeds; the engine advances it for jitter. */
int saga_engine_apply(const saga_engine_config_t *cfg, saga_t *saga, const saga_event_t *ev,
                      int64_t now_ms, uint64_t *rng, saga_effects_t *fx, char *why, size_t why_len);

/* Backoff before attempt `attempt`+1 after `attempt` failed: full jitter
 * random(0, min(max, initial * multiplier^(attempt-1))), or the cap itself
 * with jitter none. Pure; advances rng. */
int64_t saga_backoff_ms(const saga_retry_policy_t *p, int attempt, uint64_t *rng);

bool saga_status_is_terminal(saga_status_t s);

/* The id of the child saga that step `step` of saga `parent` runs:
 * "PARENT.STEP", or, when that is over 127 bytes, a cut prefix and a hash
 * of both. The same for every attempt: a retried start finds its child. */
void saga_child_id(const char *parent, const char *step, char *out, size_t len);

#endif

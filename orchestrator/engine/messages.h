/* Decoding of the wire messages sagad consumes (saga.start, saga.reply);
 * see docs/PROTOCOL.md and schemas/. Pure: fields borrow from the parsed
 * JSON, which the caller keeps alive. Errors name the field. */
#ifndef SAGA_MESSAGES_H
#define SAGA_MESSAGES_H

#include <jansson.h>
#include <stddef.h>

#include "engine.h"

typedef struct {
    const char *message_id;
    const char *definition;
    int version;              /* 0: the newest */
    const char *saga_id;      /* NULL: sagad assigns one */
    const json_t *input;      /* an object; {} when absent */
    int64_t not_before;       /* "not_before" (RFC 3339) in ms since the epoch; 0: absent */
    int64_t delay_ms;         /* "delay" (a duration); -1: absent. At most one of the two. */
    const json_t *parent;     /* a child saga's parent {"saga_id", "step", "attempt", "partition"}; NULL: none */
} saga_start_msg_t;

/* The longest a start may be delayed ("delay", or "not_before" from now). */
#define SAGA_START_DELAY_MAX_MS (366LL * 24 * 3600 * 1000)

typedef struct {
    const char *message_id;
    const char *in_reply_to;
    const char *saga_id;
    const char *step;
    saga_command_kind_t kind;
    int attempt;
    saga_reply_status_t status;
    const json_t *output;     /* may be NULL */
    const char *error_code;   /* may be NULL */
    const char *error_message;
} saga_reply_msg_t;

/* saga.signal: a signal for a saga's signal step (docs/PROTOCOL.md). */
typedef struct {
    const char *message_id;
    const char *saga_id;
    const char *signal;       /* the name a signal step waits for */
    saga_reply_status_t status; /* SUCCESS or FAILURE */
    const json_t *output;     /* success: an object, may be NULL */
    const char *error_code;   /* failure: may be NULL */
    const char *error_message;
} saga_signal_msg_t;

int saga_parse_signal(const json_t *root, saga_signal_msg_t *out, char *err, size_t errlen);

/* 0, or SAGA_EPARSE with err such as "saga.start: 'definition' must be a string". */
/* When a start begins, received at now: not_before, or now + delay, or now. */
int64_t saga_start_begin_at(const saga_start_msg_t *start, int64_t now_ms);
int saga_parse_start(const json_t *root, saga_start_msg_t *out, char *err, size_t errlen);
int saga_parse_reply(const json_t *root, saga_reply_msg_t *out, char *err, size_t errlen);

/* Id limits, consistent end to end (docs/PROTOCOL.md "Limits"):
 * - saga ids, definition and step names: 1..127 bytes (SAGA_ID_MAX - 1,
 *   SAGA_NAME_MAX - 1), printable ASCII without '/';
 * - message ids: 1..SAGA_MESSAGE_ID_MAX bytes of printable ASCII. Every id
 *   derived from the others fits, whatever the attempt (an int: at most 10
 *   digits): a command's <saga>/<step>/<kind>/<attempt> is at most
 *   127+1+127+1+12+1+10 = 279 bytes, the participant library's reply ids
 *   r-<idempotency key>/<attempt> at most 281 and r-<key>/<attempt>/t-<16
 *   hex> (a retry) 300. */
#define SAGA_MESSAGE_ID_MAX 400

/* The highest attempt number of a step's action or compensation: what a
 * reply (and a child's parent reference) may carry, and so the highest
 * max_attempts a definition may give (checked at load, definition.c). */
#define SAGA_ATTEMPT_MAX 1000000

/* Saga ids (allow_slash 0): 1..127 bytes of printable ASCII without '/'
 * — they are used in keys, paths and message ids. Message ids
 * (allow_slash 1): 1..SAGA_MESSAGE_ID_MAX bytes of printable ASCII. */
int saga_valid_id(const char *id, int allow_slash);

#endif

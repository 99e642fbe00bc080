/* Operator commands from the admin API's thread to the main loop: the admin
 * API never writes state itself; it queues a command, the loop applies it
 * in its next transaction. Thread-safe. */
#ifndef SAGA_COMMANDS_H
#define SAGA_COMMANDS_H

#include <stddef.h>

#define SAGA_COMMAND_KINDS(X) \
    X(START, "start") X(ABORT, "abort") X(RETRY, "retry") X(RELOAD, "reload") X(SIGNAL, "signal") \
    X(PAUSE, "pause") X(RESUME, "resume") X(COMPENSATE, "compensate")

typedef enum {
#define SAGA_COMMAND_ENUM(name, str) SAGA_CMD_##name,
    SAGA_COMMAND_KINDS(SAGA_COMMAND_ENUM)
#undef SAGA_COMMAND_ENUM
} saga_command_kind_op_t;

/* "start", "abort", ... (the names of saga.control's "command"); and back: -1 when unknown. */
const char *saga_command_op_name(saga_command_kind_op_t kind);
int saga_command_op_parse(const char *name);

typedef struct {
    saga_command_kind_op_t kind;
    char saga_id[256];   /* PAUSE/RESUME: the topic */
    char *body;    /* START: the saga.start message, SIGNAL: the saga.signal message (JSON text); owned */
    char *reason;  /* ABORT/RETRY: the operator's reason, may be NULL; owned */
} saga_command_t;

typedef struct saga_command_queue saga_command_queue_t;

saga_command_queue_t *saga_command_queue_new(size_t max_pending);
void saga_command_queue_free(saga_command_queue_t **q);

/* Copies what it needs. Returns 0, SAGA_EIO when max_pending commands are
 * already waiting (the API answers 503), or SAGA_ENOMEM. */
int saga_command_push(saga_command_queue_t *q, saga_command_kind_op_t kind, const char *saga_id,
                      const char *body, const char *reason);

/* Moves up to max waiting commands into out (the caller frees each with
 * saga_command_clear). Returns how many. */
int saga_command_take(saga_command_queue_t *q, saga_command_t *out, int max);
int saga_command_pending(saga_command_queue_t *q);
void saga_command_clear(saga_command_t *c);

#endif

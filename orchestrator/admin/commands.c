/* The command queue between the admin API's thread and sagad's main loop: bounded, mutex-guarded, FIFO. */
#include "commands.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_error.h"

struct saga_command_queue {
    pthread_mutex_t lock;
    saga_command_t *items;
    size_t count, max;
};

saga_command_queue_t *saga_command_queue_new(size_t max_pending) {
    saga_command_queue_t *q = saga_calloc(1, sizeof *q);
    if (!q) return NULL;
    q->items = saga_calloc(max_pending, sizeof *q->items);
    if (!q->items) {
        saga_free(q);
        return NULL;
    }
    q->max = max_pending;
    pthread_mutex_init(&q->lock, NULL);
    return q;
}

void saga_command_clear(saga_command_t *c) {
    saga_free(c->body);
    saga_free(c->reason);
    c->body = c->reason = NULL;
}

void saga_command_queue_free(saga_command_queue_t **pq) {
    saga_command_queue_t *q = *pq;
    if (!q) return;
    for (size_t i = 0; i < q->count; i++) saga_command_clear(&q->items[i]);
    pthread_mutex_destroy(&q->lock);
    saga_free(q->items);
    saga_free(q);
    *pq = NULL;
}

int saga_command_push(saga_command_queue_t *q, saga_command_kind_op_t kind, const char *saga_id,
                      const char *body, const char *reason) {
    saga_command_t c = {.kind = kind};
    snprintf(c.saga_id, sizeof c.saga_id, "%s", saga_id ? saga_id : "");
    if ((body && !(c.body = saga_strdup(body))) || (reason && !(c.reason = saga_strdup(reason)))) {
        saga_command_clear(&c);
        return SAGA_ENOMEM;
    }
    pthread_mutex_lock(&q->lock);
    int rc = 0;
    if (q->count == q->max) rc = SAGA_EIO;
    else q->items[q->count++] = c;
    pthread_mutex_unlock(&q->lock);
    if (rc) saga_command_clear(&c);
    return rc;
}

int saga_command_take(saga_command_queue_t *q, saga_command_t *out, int max) {
    pthread_mutex_lock(&q->lock);
    size_t n = q->count < (size_t)max ? q->count : (size_t)max;
    memcpy(out, q->items, n * sizeof *out);
    memmove(q->items, q->items + n, (q->count - n) * sizeof *q->items);
    q->count -= n;
    pthread_mutex_unlock(&q->lock);
    return (int)n;
}

int saga_command_pending(saga_command_queue_t *q) {
    pthread_mutex_lock(&q->lock);
    int n = (int)q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

static const char *const op_names[] = {
#define SAGA_COMMAND_NAME(name, str) [SAGA_CMD_##name] = str,
    SAGA_COMMAND_KINDS(SAGA_COMMAND_NAME)
#undef SAGA_COMMAND_NAME
};

const char *saga_command_op_name(saga_command_kind_op_t kind) {
    return (size_t)kind < sizeof op_names / sizeof op_names[0] ? op_names[kind] : "?";
}

int saga_command_op_parse(const char *name) {
    for (size_t i = 0; name && i < sizeof op_names / sizeof op_names[0]; i++)
        if (!strcmp(op_names[i], name)) return (int)i;
    return -1;
}

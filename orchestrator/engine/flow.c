/* Flow control per participant topic: bulkhead and circuit breaker (flow.h). Pure. */
#include "flow.h"

#include <stdio.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_error.h"

typedef struct {
    char *name;
    int in_flight;
    saga_breaker_state_t breaker;
    int consecutive_failures;
    int64_t opened_at;
    bool probe_out;             /* half-open: the one probe is in flight */
    bool paused;                /* by an operator: no command goes out */
    saga_flow_waiter_t *queue;  /* FIFO: items [head, head + len) modulo cap */
    int head, len, cap;
} topic_t;

struct saga_flow {
    saga_flow_limits_t limits;
    topic_t *topics;
    int count, cap;
    int rr;                     /* where next_ready starts looking: fairness across topics */
};

static const char *const breaker_names[] = {
#define SAGA_BREAKER_NAME(name, str) str,
    SAGA_BREAKER_STATES(SAGA_BREAKER_NAME)
#undef SAGA_BREAKER_NAME
};

const char *saga_breaker_state_name(saga_breaker_state_t s) {
    return (unsigned)s < sizeof breaker_names / sizeof breaker_names[0] ? breaker_names[s] : "invalid";
}

saga_flow_t *saga_flow_new(const saga_flow_limits_t *limits) {
    saga_flow_t *f = saga_calloc(1, sizeof *f);
    if (f) f->limits = *limits;
    return f;
}

void saga_flow_free(saga_flow_t **pf) {
    saga_flow_t *f = *pf;
    if (!f) return;
    for (int i = 0; i < f->count; i++) {
        saga_free(f->topics[i].name);
        saga_free(f->topics[i].queue);
    }
    saga_free(f->topics);
    saga_free(f);
    *pf = NULL;
}

/* The topic's entry, created on first use; NULL only without memory. */
static topic_t *topic_get(saga_flow_t *f, const char *name) {
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->topics[i].name, name) == 0) return &f->topics[i];
    if (f->count == f->cap) {
        int cap = f->cap ? f->cap * 2 : 8;
        topic_t *t = saga_realloc(f->topics, (size_t)cap * sizeof *t);
        if (!t) return NULL;
        f->topics = t;
        f->cap = cap;
    }
    topic_t *t = &f->topics[f->count];
    memset(t, 0, sizeof *t);
    t->name = saga_strdup(name);
    if (!t->name) return NULL;
    f->count++;
    return t;
}

/* Moves an open breaker to half-open once its cool-down is over. */
static void breaker_tick(const saga_flow_t *f, topic_t *t, int64_t now) {
    if (t->breaker == SAGA_BREAKER_OPEN && now - t->opened_at >= f->limits.breaker_cooldown_ms) {
        t->breaker = SAGA_BREAKER_HALF_OPEN;
        t->probe_out = false;
    }
}

static bool has_room(const saga_flow_t *f, topic_t *t, int64_t now) {
    if (t->paused) return false;
    breaker_tick(f, t, now);
    if (t->breaker == SAGA_BREAKER_OPEN) return false;
    if (t->breaker == SAGA_BREAKER_HALF_OPEN) return !t->probe_out;
    return f->limits.max_in_flight <= 0 || t->in_flight < f->limits.max_in_flight;
}

static void take_room(topic_t *t) {
    t->in_flight++;
    if (t->breaker == SAGA_BREAKER_HALF_OPEN) t->probe_out = true;
}

int saga_flow_acquire(saga_flow_t *f, const char *topic, int64_t now_ms) {
    topic_t *t = topic_get(f, topic);
    if (!t) return 1; /* without memory for bookkeeping, do not block sagas */
    /* Waiters go first: a newcomer may not overtake the queue. */
    if (t->len > 0 || !has_room(f, t, now_ms)) return 0;
    take_room(t);
    return 1;
}

saga_breaker_state_t saga_flow_done(saga_flow_t *f, const char *topic, bool ok, int64_t now_ms) {
    topic_t *t = topic_get(f, topic);
    if (!t) return SAGA_BREAKER_CLOSED;
    if (t->in_flight > 0) t->in_flight--;
    if (ok) {
        t->consecutive_failures = 0;
        t->breaker = SAGA_BREAKER_CLOSED;
        t->probe_out = false;
        return t->breaker;
    }
    t->consecutive_failures++;
    if (t->breaker == SAGA_BREAKER_HALF_OPEN ||
        (t->breaker == SAGA_BREAKER_CLOSED && f->limits.breaker_failures > 0 &&
         t->consecutive_failures >= f->limits.breaker_failures)) {
        t->breaker = SAGA_BREAKER_OPEN;
        t->opened_at = now_ms;
        t->probe_out = false;
    }
    return t->breaker;
}

void saga_flow_count_in_flight(saga_flow_t *f, const char *topic) {
    topic_t *t = topic_get(f, topic);
    if (t) t->in_flight++;
}

int saga_flow_enqueue(saga_flow_t *f, const char *topic, const char *saga_id, int slot) {
    topic_t *t = topic_get(f, topic);
    if (!t) return SAGA_ENOMEM;
    if (t->len == t->cap) {
        int cap = t->cap ? t->cap * 2 : 16;
        saga_flow_waiter_t *q = saga_malloc((size_t)cap * sizeof *q);
        if (!q) return SAGA_ENOMEM;
        for (int i = 0; i < t->len; i++) q[i] = t->queue[(t->head + i) % t->cap];
        saga_free(t->queue);
        t->queue = q;
        t->head = 0;
        t->cap = cap;
    }
    saga_flow_waiter_t *w = &t->queue[(t->head + t->len) % t->cap];
    snprintf(w->saga_id, sizeof w->saga_id, "%s", saga_id);
    w->slot = slot;
    w->topic = t->name;
    t->len++;
    return 0;
}

int saga_flow_next_ready(saga_flow_t *f, int64_t now_ms, saga_flow_waiter_t *out) {
    for (int k = 0; k < f->count; k++) {
        int i = (f->rr + k) % f->count;
        topic_t *t = &f->topics[i];
        if (t->len == 0 || !has_room(f, t, now_ms)) continue;
        *out = t->queue[t->head];
        out->topic = t->name;
        t->head = (t->head + 1) % t->cap;
        t->len--;
        take_room(t);
        f->rr = i + 1;
        return 1;
    }
    return 0;
}

int saga_flow_has_ready(saga_flow_t *f, int64_t now_ms) {
    for (int i = 0; i < f->count; i++)
        if (f->topics[i].len > 0 && has_room(f, &f->topics[i], now_ms)) return 1;
    return 0;
}

void saga_flow_release(saga_flow_t *f, const char *topic) {
    topic_t *t = topic_get(f, topic);
    if (!t) return;
    if (t->in_flight > 0) t->in_flight--;
    if (t->breaker == SAGA_BREAKER_HALF_OPEN) t->probe_out = false;
}

int saga_flow_stats(const saga_flow_t *f, int i, saga_flow_topic_stats_t *out) {
    if (i < 0 || i >= f->count) return 0;
    const topic_t *t = &f->topics[i];
    *out = (saga_flow_topic_stats_t){.topic = t->name, .in_flight = t->in_flight, .waiting = t->len,
                                     .breaker = t->breaker, .consecutive_failures = t->consecutive_failures,
                                     .paused = t->paused};
    return 1;
}

int saga_flow_pause(saga_flow_t *f, const char *topic, bool paused) {
    topic_t *t = topic_get(f, topic);
    if (!t) return SAGA_ENOMEM;
    t->paused = paused;
    return 0;
}

void saga_flow_unpause_all(saga_flow_t *f) {
    for (int i = 0; i < f->count; i++) f->topics[i].paused = false;
}

bool saga_flow_paused(saga_flow_t *f, const char *topic) {
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->topics[i].name, topic) == 0) return f->topics[i].paused;
    return false;
}

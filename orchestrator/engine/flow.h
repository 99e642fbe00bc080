/* Flow control per participant topic (pure, cross-saga): a bulkhead (at
 * most max_in_flight commands out at once; the rest wait in FIFO order) and
 * a circuit breaker (opens after `breaker_failures` consecutive transient
 * outcomes — timeouts or retry replies — stays open for `breaker_cooldown`,
 * then lets one probe through: success closes it, failure reopens it).
 * The loop owns one saga_flow_t; the engine asks it before sending a command
 * (saga_flow_acquire) and tells it each command's outcome (saga_flow_done). */
#ifndef SAGA_FLOW_H
#define SAGA_FLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

#define SAGA_BREAKER_STATES(X) X(CLOSED, "closed") X(OPEN, "open") X(HALF_OPEN, "half_open")

typedef enum {
#define SAGA_BREAKER_ENUM(name, str) SAGA_BREAKER_##name,
    SAGA_BREAKER_STATES(SAGA_BREAKER_ENUM)
#undef SAGA_BREAKER_ENUM
} saga_breaker_state_t;

const char *saga_breaker_state_name(saga_breaker_state_t s);

typedef struct {
    int max_in_flight;        /* per topic; <= 0: unlimited */
    int breaker_failures;     /* consecutive transient outcomes that open it; <= 0: never */
    int64_t breaker_cooldown_ms;
} saga_flow_limits_t;

/* A step waiting for room on its topic. */
typedef struct {
    char saga_id[SAGA_ID_MAX];
    int slot;
    const char *topic;        /* owned by the flow; valid while it lives */
} saga_flow_waiter_t;

typedef struct saga_flow saga_flow_t;

saga_flow_t *saga_flow_new(const saga_flow_limits_t *limits);
void saga_flow_free(saga_flow_t **flow);

/* 1: a command may go to topic now and its slot is taken; 0: it must wait. */
int saga_flow_acquire(saga_flow_t *flow, const char *topic, int64_t now_ms);
/* A command on topic ended: ok = reply success/failure, !ok = timeout or
 * retry reply. Returns the breaker state after it. */
saga_breaker_state_t saga_flow_done(saga_flow_t *flow, const char *topic, bool ok, int64_t now_ms);
/* Counts a command that is out already (recovery after a restart). */
void saga_flow_count_in_flight(saga_flow_t *flow, const char *topic);

/* Waiters, FIFO per topic. Returns 0 or SAGA_ENOMEM. */
int saga_flow_enqueue(saga_flow_t *flow, const char *topic, const char *saga_id, int slot);
/* Takes the oldest waiter of any topic that has room now (taking that
 * room, as saga_flow_acquire does). Returns 1 and fills *out, or 0. */
int saga_flow_next_ready(saga_flow_t *flow, int64_t now_ms, saga_flow_waiter_t *out);
/* 1 when saga_flow_next_ready would return a waiter now. */
int saga_flow_has_ready(saga_flow_t *flow, int64_t now_ms);
/* Gives back a slot taken by saga_flow_next_ready when the waiter turned
 * out stale (its saga moved on). */
void saga_flow_release(saga_flow_t *flow, const char *topic);

typedef struct {
    const char *topic;
    int in_flight, waiting;
    saga_breaker_state_t breaker;
    int consecutive_failures;
    bool paused;
} saga_flow_topic_stats_t;

/* An operator's pause of a topic (POST /v1/topics/{topic}/pause): like an
 * open circuit that only an operator closes. While paused no command goes
 * to the topic (acquire and next_ready say no); unpausing lets its waiters
 * go in order. 0 or SAGA_ENOMEM. */
int saga_flow_pause(saga_flow_t *flow, const char *topic, bool paused);
/* Unpauses every topic (before the loop sets the flags again). */
void saga_flow_unpause_all(saga_flow_t *flow);
bool saga_flow_paused(saga_flow_t *flow, const char *topic);

/* Per-topic figures for logs and metrics; i from 0 while it returns 1. */
int saga_flow_stats(const saga_flow_t *flow, int i, saga_flow_topic_stats_t *out);

#endif

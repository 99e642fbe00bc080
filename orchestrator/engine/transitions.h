/* Every status change the engine may make, as data. eng_set_status() and
 * eng_set_step_status() in engine_record.c refuse anything not listed here, and a unit
 * test checks that docs/DESIGN.md's transition table lists exactly these. */
#ifndef SAGA_TRANSITIONS_H
#define SAGA_TRANSITIONS_H

#include <stdbool.h>

#include "engine.h"

/* X(from, to, lifecycle event) for sagas. */
#define SAGA_TRANSITIONS(X)                                               \
    X(RUNNING, COMPLETED, "saga.completed")                               \
    X(RUNNING, COMPENSATING, "saga.compensating")                         \
    X(COMPENSATING, COMPENSATED, "saga.compensated")                      \
    X(COMPENSATING, COMPENSATION_FAILED, "saga.compensation_failed")      \
    X(COMPENSATION_FAILED, COMPENSATING, "saga.retried")                  \
    X(SCHEDULED, RUNNING, "saga.started")       /* its begin time came */  \
    X(SCHEDULED, COMPENSATING, "saga.compensating") /* aborted before it began */ \
    X(COMPLETED, COMPENSATING, "saga.compensating") /* a child whose parent compensates */

/* X(from, to, lifecycle event) for steps. */
#define SAGA_STEP_TRANSITIONS(X)                                          \
    X(PENDING, RUNNING, "step.started")                                   \
    X(QUEUED, RUNNING, "step.started")                                    \
    X(PENDING, QUEUED, "step.queued")          /* no room on the topic */ \
    X(RETRY_WAIT, QUEUED, "step.queued")                                  \
    X(QUEUED, FAILED, "step.failed")                                      \
    X(QUEUED, UNKNOWN, "step.unknown")                                    \
    X(QUEUED, CANCELLED, "step.cancelled")                                \
    X(RETRY_WAIT, RUNNING, "step.started")                                \
    X(PENDING, FAILED, "step.failed")           /* payload cannot render */ \
    X(RETRY_WAIT, FAILED, "step.failed")                                  \
    X(RUNNING, SUCCEEDED, "step.succeeded")                               \
    X(RUNNING, FAILED, "step.failed")                                     \
    X(RUNNING, RETRY_WAIT, "step.retry_scheduled")                        \
    X(RUNNING, UNKNOWN, "step.unknown")                                   \
    X(RETRY_WAIT, UNKNOWN, "step.unknown")                                \
    X(RETRY_WAIT, CANCELLED, "step.cancelled")                            \
    X(PENDING, CANCELLED, "step.cancelled")                               \
    X(SUCCEEDED, COMPENSATING, "compensation.started")                    \
    X(COMPENSATION_QUEUED, COMPENSATING, "compensation.started")          \
    X(SUCCEEDED, COMPENSATION_QUEUED, "compensation.queued")              \
    X(UNKNOWN, COMPENSATION_QUEUED, "compensation.queued")                \
    X(COMPENSATION_RETRY_WAIT, COMPENSATION_QUEUED, "compensation.queued") \
    X(COMPENSATION_FAILED, COMPENSATION_QUEUED, "compensation.queued")    \
    X(COMPENSATION_QUEUED, COMPENSATION_FAILED, "compensation.failed")    \
    X(UNKNOWN, COMPENSATING, "compensation.started")                      \
    X(COMPENSATION_RETRY_WAIT, COMPENSATING, "compensation.started")      \
    X(COMPENSATION_FAILED, COMPENSATING, "compensation.started")          \
    X(SUCCEEDED, COMPENSATED, "compensation.skipped")                     \
    X(UNKNOWN, COMPENSATED, "compensation.skipped")                       \
    X(COMPENSATING, COMPENSATED, "compensation.succeeded")                \
    X(COMPENSATING, COMPENSATION_RETRY_WAIT, "compensation.retry_scheduled") \
    X(COMPENSATING, COMPENSATION_FAILED, "compensation.failed")           \
    X(SUCCEEDED, COMPENSATION_FAILED, "compensation.failed")              \
    X(UNKNOWN, COMPENSATION_FAILED, "compensation.failed")                \
    X(COMPENSATION_RETRY_WAIT, COMPENSATION_FAILED, "compensation.failed") \
    X(COMPENSATION_FAILED, COMPENSATION_FAILED, "compensation.failed")   \
    X(PENDING, WAITING, "step.waiting")         /* a signal step started */ \
    X(WAITING, SUCCEEDED, "step.succeeded")                              \
    X(WAITING, FAILED, "step.failed")           /* a failure signal, or its timeout */ \
    X(WAITING, CANCELLED, "step.cancelled")

typedef struct {
    int from, to;      /* saga_status_t or saga_step_status_t */
    const char *event;
} saga_transition_t;

extern const saga_transition_t saga_transitions[];
extern const int saga_transition_count;
extern const saga_transition_t saga_step_transitions[];
extern const int saga_step_transition_count;

bool saga_transition_allowed(saga_status_t from, saga_status_t to, const char *event);
bool saga_step_transition_allowed(saga_step_status_t from, saga_step_status_t to, const char *event);

#endif

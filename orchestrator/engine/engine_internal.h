/* What the engine's files share (engine.c, engine_record.c, engine_child.c,
 * engine_signal.c): the context of one saga_engine_apply call and the
 * functions one file calls in another, prefixed eng_. Not part of the
 * engine's interface (engine.h). */
#ifndef SAGA_ENGINE_INTERNAL_H
#define SAGA_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "engine.h"

typedef struct {
    const saga_engine_config_t *cfg;
    saga_t *saga;
    int64_t now;
    uint64_t *rng;
    saga_effects_t *fx;
    int err; /* first failure; the caller discards the effects */
    char *why;
    size_t why_len;
} apply_ctx_t;

/* An event that changes nothing: the reason counted, the text for logs
 * (inside functions with apply_ctx_t *c, char *why, size_t why_len). */
#define STALE(reason, ...)                                        \
    do {                                                          \
        c->fx->stale_reason = SAGA_STALE_##reason;                \
        snprintf(why, why_len, __VA_ARGS__);                      \
        return SAGA_ESTALE;                                       \
    } while (0)

/* engine_record.c: effects, lifecycle events and status changes */
void eng_fx_push(apply_ctx_t *c, saga_effect_t e);
void eng_set_timer(apply_ctx_t *c, int slot, saga_timer_kind_t kind, int attempt, int64_t due);
void eng_clear_timer(apply_ctx_t *c, int slot);
/* Sets key on o (o NULL or value NULL: frees both, returns NULL). */
json_t *eng_put(json_t *o, const char *key, json_t *value);
/* The largest message value the engine may produce (0: no limit). */
size_t eng_message_limit(const apply_ctx_t *c);
/* Appends a lifecycle event (history, and saga.events by the events level); steals detail. */
void eng_record(apply_ctx_t *c, const char *event, int step, json_t *detail);
/* The one function that changes a saga's status; steals detail. */
void eng_set_status(apply_ctx_t *c, saga_status_t status, const char *event, json_t *detail);
/* The one function that changes a step's status; steals detail. */
void eng_set_step_status(apply_ctx_t *c, int i, saga_step_status_t status, const char *event, json_t *detail);
json_t *eng_error_detail(const char *code, const char *message, int attempt);
void eng_set_step_error(saga_step_state_t *st, const char *code, const char *message);

/* engine.c: commands, the forward path and compensation */
json_t *eng_template_context(const saga_t *s);
void eng_advance(apply_ctx_t *c);
void eng_begin_compensation(apply_ctx_t *c, const char *code, const char *message);
static inline void eng_mark_completed(saga_t *s, int i) { s->steps[i].completion_order = ++s->completions; }

/* engine_child.c: child sagas */
int eng_start_child(apply_ctx_t *c, int i, char *err, size_t errlen);
void eng_tell_child(apply_ctx_t *c, int i, const char *command, int attempt, const char *reason);
/* A child saga reached a terminal status: it answers its parent's step. */
void eng_notify_parent(apply_ctx_t *c);

/* engine_signal.c: signal steps */
void eng_start_signal_wait(apply_ctx_t *c, int i);
int eng_on_signal(apply_ctx_t *c, const saga_event_t *ev, char *why, size_t why_len);
/* Signal step i's signal arrived (or its timeout, a failure): the step succeeds with output or fails. */
void eng_signal_arrived(apply_ctx_t *c, int i, bool success, const json_t *output, const char *code,
                        const char *message);

#endif

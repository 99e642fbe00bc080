/* Saga values outside the state machine: state names, a saga's lifetime,
 * the effects list, and retry backoff with full jitter. Pure, like engine.c. */
#include "engine.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_error.h"

/* ---- names ------------------------------------------------------------ */

#define NAME_TABLE(fn_name, fn_parse, type, MAP, count)                     \
    static const char *const fn_name##_table[] = {MAP(NAME_ENTRY)};         \
    const char *fn_name(type v) {                                           \
        return (unsigned)v < count ? fn_name##_table[v] : "invalid";       \
    }                                                                       \
    int fn_parse(const char *name) {                                        \
        for (unsigned i = 0; name && i < count; i++)                        \
            if (strcmp(name, fn_name##_table[i]) == 0) return (int)i;      \
        return -1;                                                          \
    }
#define NAME_ENTRY(name, str) str,
#define KIND_MAP(X) X(ACTION, "action") X(COMPENSATION, "compensation")

NAME_TABLE(saga_status_name, saga_status_parse, saga_status_t, SAGA_STATUS_MAP, SAGA_STATUS__COUNT)
NAME_TABLE(saga_step_status_name, saga_step_status_parse, saga_step_status_t, SAGA_STEP_STATUS_MAP,
           SAGA_STEP__COUNT)
NAME_TABLE(saga_timer_kind_name, saga_timer_kind_parse, saga_timer_kind_t, SAGA_TIMER_KIND_MAP, SAGA_TIMER__COUNT)
NAME_TABLE(saga_command_kind_name, saga_command_kind_parse, saga_command_kind_t, KIND_MAP, 2u)
NAME_TABLE(saga_stale_reason_name, saga_stale_reason_parse, saga_stale_reason_t, SAGA_STALE_REASONS,
           SAGA_STALE__COUNT)

bool saga_status_is_terminal(saga_status_t s) {
    return s == SAGA_STATUS_COMPLETED || s == SAGA_STATUS_COMPENSATED ||
           s == SAGA_STATUS_COMPENSATION_FAILED;
}

/* ---- saga lifetime ---------------------------------------------------- */

void saga_init(saga_t *s, const char *id, const saga_definition_t *def, json_t *input,
               const char *traceparent, int64_t now_ms) {
    /* Only the definition's steps: every reader stops at def->step_count,
     * and zeroing all SAGA_MAX_STEPS of them (~25 KB) was 5% of sagad's
     * instructions (docs/BENCHMARKS.md, "Profile"). */
    assert(def && def->step_count >= 0 && def->step_count <= SAGA_MAX_STEPS);
    memset(s, 0, offsetof(saga_t, steps));
    memset(s->steps, 0, (size_t)def->step_count * sizeof s->steps[0]);
    memset(s->step_dirty, 0, sizeof s->step_dirty);
    snprintf(s->id, sizeof s->id, "%s", id);
    s->def = def;
    s->status = SAGA_STATUS_RUNNING;
    s->input = json_incref(input);
    snprintf(s->traceparent, sizeof s->traceparent, "%s", traceparent ? traceparent : "");
    s->created_at = s->updated_at = now_ms;
    for (int i = 0; i < def->step_count; i++) s->steps[i].status = SAGA_STEP_PENDING;
}

void saga_clear(saga_t *s) {
    json_decref(s->input);
    s->input = NULL;
    json_decref(s->search);
    s->search = NULL;
    json_decref(s->parent);
    s->parent = NULL;
    /* saga_init left the steps past the definition's uninitialised; a saga
     * never initialised has no definition and is all zeros */
    int steps = s->def ? s->def->step_count : SAGA_MAX_STEPS;
    for (int i = 0; i < steps; i++) {
        json_decref(s->steps[i].output);
        s->steps[i].output = NULL;
        json_decref(s->steps[i].signal);
        s->steps[i].signal = NULL;
    }
}

void saga_child_id(const char *parent, const char *step, char *out, size_t len) {
    int n = snprintf(out, len, "%s.%s", parent, step);
    if (n >= 0 && (size_t)n < len && n < SAGA_ID_MAX) return;
    uint64_t h = 1469598103934665603ull; /* FNV-1a over "parent/step" */
    for (const char *p = parent; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ '/') * 1099511628211ull;
    for (const char *p = step; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    snprintf(out, len, "%.80s.%.20s.%016llx", parent, step, (unsigned long long)h);
}

/* ---- effects ---------------------------------------------------------- */

void saga_effects_init(saga_effects_t *fx) { memset(fx, 0, sizeof *fx); }

void saga_effects_clear(saga_effects_t *fx) {
    for (int i = 0; i < fx->count; i++) {
        json_decref(fx->items[i].message);
        saga_free(fx->items[i].text);
    }
    fx->count = 0;
}

void saga_effects_free(saga_effects_t *fx) {
    saga_effects_clear(fx);
    saga_free(fx->items);
    memset(fx, 0, sizeof *fx);
}

int saga_effects_push(saga_effects_t *fx, saga_effect_t e) {
    if (fx->count == fx->cap) {
        int cap = fx->cap ? fx->cap * 2 : 16;
        saga_effect_t *items = saga_realloc(fx->items, (size_t)cap * sizeof *items);
        if (!items) {
            json_decref(e.message);
            saga_free(e.text);
            return SAGA_ENOMEM;
        }
        fx->items = items;
        fx->cap = cap;
    }
    fx->items[fx->count++] = e;
    return 0;
}

/* ---- randomness and backoff -------------------------------------------- */

static uint64_t next_random(uint64_t *state) {
    /* splitmix64: tiny, full period, good enough for jitter. */
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int64_t saga_backoff_ms(const saga_retry_policy_t *p, int attempt, uint64_t *rng) {
    double cap = (double)p->initial_backoff_ms * pow(p->multiplier, attempt > 1 ? attempt - 1 : 0);
    if (cap > (double)p->max_backoff_ms) cap = (double)p->max_backoff_ms;
    int64_t ceiling = (int64_t)cap;
    if (p->jitter == SAGA_JITTER_NONE || ceiling <= 0) return ceiling;
    return (int64_t)(next_random(rng) % (uint64_t)(ceiling + 1));
}

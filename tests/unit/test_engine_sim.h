/* The engine simulation's shared types (test_engine_sim.c drives sagas,
 * test_engine_sim_checks.c checks the invariants after every event,
 * test_engine_sim_shapes.c builds the definitions and runs them). */
#ifndef TEST_ENGINE_SIM_H
#define TEST_ENGINE_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "flow.h"

#define TRACE_LINES 64

static inline uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline int rnd(uint64_t *s, int n) { return n <= 0 ? 0 : (int)(splitmix(s) % (uint64_t)n); }
static inline bool chance(uint64_t *s, int percent) { return rnd(s, 100) < percent; }

typedef struct {
    const char *name;
    saga_definition_t def;
    int fail_pct, retry_pct;      /* action replies: failure / retry, the rest success */
    int comp_fail_pct;            /* compensation replies that are not success */
    int abort_pct;                /* per 1000 events */
    bool flow;                    /* with a bulkhead and circuit breaker (limits) */
    saga_flow_limits_t limits;
} shape_t;

typedef struct {
    int step;
    saga_command_kind_t kind;
    int attempt;
} cmd_t;

typedef struct {
    bool set;
    saga_timer_kind_t kind;
    int attempt;
    int64_t due;
} tmr_t;

typedef struct {
    long sagas, events, stale, completed, compensated, comp_failed_final, op_retries, aborts,
        deadlines, step_timeouts, template_failures, comp_commands, replays, max_events, queued, resumes,
        stale_resumes, breaker_waits, calm;
    long scheduled; /* delayed starts */
    long signals;   /* signals accepted */
} stats_t;

typedef struct {
    const saga_definition_t *def;
    saga_engine_config_t cfg;
    saga_t saga, replica, before;
    /* deep copies of the saga's JSON values, refreshed when a pointer
     * changes (we hold a reference to the value copied, so its address
     * cannot be reused): a stale event must leave the values equal to them */
    json_t *shadow_input, *shadow_outputs[SAGA_MAX_STEPS];
    json_t *shadow_of_input, *shadow_of_outputs[SAGA_MAX_STEPS];
    saga_effects_t fx;
    saga_flow_t *flow;                 /* NULL: no flow control */
    uint64_t eng_rng, rng;
    int64_t now;
    json_t **events;
    int nev, cap_ev;
    cmd_t *cmds;
    int ncmd, cap_cmd;
    tmr_t timers[SAGA_MAX_STEPS + 1]; /* slot + 1 */
    bool comp_began;
    bool parent_asked;                 /* a child saga whose parent asked it to undo itself */
    int completed[SAGA_MAX_STEPS], ncompleted; /* steps in the order step.succeeded/unknown were seen */
    int comp_steps[SAGA_MAX_STEPS], ncomp_steps; /* steps compensated, in the order of their first command */
    bool timed_out[SAGA_MAX_STEPS];
    int op_retries;
    long applied;
    /* snapshot for the until_ms check */
    saga_t snap;
    bool have_snap;
    int64_t snap_at;
    uint64_t saga_seed;
    int index;
    char trace[TRACE_LINES][200];
    int ntrace;
    stats_t *stats;
} sim_t;

extern shape_t g_shape;
extern uint64_t g_seed;
extern bool g_trace;
extern int g_sagas; /* sagas per shape */

/* Runs g_sagas sagas of g_shape (seeds from g_seed and shape_no) and checks
 * every invariant after every event (test_engine_sim.c). */
void run_shape(int shape_no);

/* The driver's (test_engine_sim.c). */
void trace(sim_t *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Prints the saga's last events and state, then fails the test. */
void sim_fail(sim_t *s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
#define CHECK(s, cond, ...) do { if (!(cond)) sim_fail(s, __VA_ARGS__); } while (0)
void deliver_reply(sim_t *s, const cmd_t *c, int status);
void stale_timer(sim_t *s);
void op_event(sim_t *s, saga_event_kind_t kind);
bool resume_ready(sim_t *s);

/* The invariants (test_engine_sim_checks.c): a command, a lifecycle event
 * (in answer to `in`), the timer table, all after an apply; and the final
 * saga: (a), (b), full replays, a barrage of stale events. */
void check_command(sim_t *s, const saga_effect_t *e);
void check_event(sim_t *s, const saga_event_t *in, const json_t *ev);
void check_timers(sim_t *s);
void check_final(sim_t *s);

#endif

/* The engine simulation's definition shapes (sequential, parallel, no
 * compensation, small budgets, deadline, flow control, signals, children),
 * each run through the simulated sagas of test_engine_sim.c, and its main
 * (SAGA_SIM_SEED, SAGA_SIM_SAGAS, SAGA_SIM_TRACE). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_engine_sim.h"
#include "test_filter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "flow.h"
#include "saga_clock.h"

/* ---- definitions built in code ------------------------------------------------ */


static saga_retry_policy_t policy(int attempts, int64_t initial, double mult, int64_t max, saga_jitter_t j) {
    return (saga_retry_policy_t){attempts, initial, mult, max, j};
}

static void add_step(saga_definition_t *d, const char *comp, int attempts, int comp_attempts) {
    saga_step_def_t *s = &d->steps[d->step_count];
    snprintf(s->name, sizeof s->name, "s%d", d->step_count);
    snprintf(s->topic, sizeof s->topic, "topic%d", d->step_count);
    snprintf(s->action, sizeof s->action, "do%d", d->step_count);
    snprintf(s->compensation, sizeof s->compensation, "%s", comp ? comp : "");
    s->payload = json_pack("{s:s, s:s}", "order", "${input.order_id}", "saga", "${saga.id}");
    s->timeout_ms = 1000;
    s->retry = policy(attempts, 100, 2, 800, SAGA_JITTER_FULL);
    s->compensation_retry = policy(comp_attempts, 200, 2, 1000, SAGA_JITTER_FULL);
    if (d->step_count > 0) {
        s->after[0] = d->step_count - 1;
        s->after_count = 1;
    }
    d->step_count++;
}

static void release_shape(void) {
    for (int i = 0; i < g_shape.def.step_count; i++) {
        json_decref(g_shape.def.steps[i].payload);
        json_decref(g_shape.def.steps[i].compensation_payload);
    }
    memset(&g_shape, 0, sizeof g_shape);
}

static void begin_shape(const char *name) {
    release_shape();
    g_shape.name = name;
    snprintf(g_shape.def.name, sizeof g_shape.def.name, "sim_%s", name);
    g_shape.def.version = 1;
    g_shape.fail_pct = 8;
    g_shape.retry_pct = 15;
    g_shape.comp_fail_pct = 20;
    g_shape.abort_pct = 10;
}

/* ---- shapes --------------------------------------------------------------------- */

/* s0 -> s1 -> s2 -> s3, every step compensable. */
static void test_sim_sequential(void **state) {
    (void)state;
    begin_shape("sequential");
    for (int i = 0; i < 4; i++) {
        char comp[16];
        snprintf(comp, sizeof comp, "undo%d", i);
        add_step(&g_shape.def, comp, 3, 3);
    }
    run_shape(1);
}

/* s0; s1 and s2 after s0; s3 after s1 and s2; s4 with no dependency (runs
 * from the start); s5 after s4 and s3. s1's payload needs s0's output.tok
 * (missing in 10% of replies: a template failure). */
static void test_sim_parallel(void **state) {
    (void)state;
    begin_shape("parallel");
    saga_definition_t *d = &g_shape.def;
    for (int i = 0; i < 6; i++) {
        char comp[16];
        snprintf(comp, sizeof comp, "undo%d", i);
        add_step(d, i == 4 ? NULL : comp, 3, 3);
    }
    d->steps[0].after_count = 0;
    d->steps[2].after[0] = 0;
    d->steps[3].after[0] = 1, d->steps[3].after[1] = 2, d->steps[3].after_count = 2;
    d->steps[4].after_count = 0;
    d->steps[5].after[0] = 4, d->steps[5].after[1] = 3, d->steps[5].after_count = 2;
    json_decref(d->steps[1].payload);
    d->steps[1].payload = json_pack("{s:s}", "tok", "${steps.s0.output.tok}");
    run_shape(2);
}

/* Five sequential steps, s1 and s3 without compensation. */
static void test_sim_no_compensation(void **state) {
    (void)state;
    begin_shape("no_comp");
    for (int i = 0; i < 5; i++) {
        char comp[16];
        snprintf(comp, sizeof comp, "undo%d", i);
        add_step(&g_shape.def, (i == 1 || i == 3) ? NULL : comp, 2, 3);
    }
    run_shape(3);
}

/* Tiny budgets: one attempt per action, one or two per compensation, no
 * jitter; many compensation_failed sagas and operator retries. s2's
 * compensation payload needs its own output, which an unknown step lacks
 * (a compensation that can never render). */
static void test_sim_small_budgets(void **state) {
    (void)state;
    begin_shape("small");
    g_shape.comp_fail_pct = 40;
    g_shape.retry_pct = 25;
    saga_definition_t *d = &g_shape.def;
    for (int i = 0; i < 4; i++) {
        char comp[16];
        snprintf(comp, sizeof comp, "undo%d", i);
        add_step(d, comp, i == 0 ? 2 : 1, 1 + (i & 1));
        d->steps[i].retry.jitter = d->steps[i].compensation_retry.jitter = SAGA_JITTER_NONE;
    }
    d->steps[2].compensation_payload = json_pack("{s:s}", "ref", "${steps.s2.output.tok}");
    run_shape(4);
}

/* A saga deadline shorter than the worst case of its steps. */
static void test_sim_deadline(void **state) {
    (void)state;
    begin_shape("deadline");
    saga_definition_t *d = &g_shape.def;
    d->timeout_ms = 2500;
    g_shape.abort_pct = 5;
    for (int i = 0; i < 4; i++) {
        char comp[16];
        snprintf(comp, sizeof comp, "undo%d", i);
        add_step(d, i == 2 ? NULL : comp, 4, 3);
    }
    d->steps[3].after_count = 1, d->steps[3].after[0] = 1; /* s2 and s3 in parallel after s1 */
    run_shape(5);
}

/* Signal steps: s0; s1 waits for signal (timeout 1.5 s) after s0; s2 after
 * s1; s3 waits for another signal, without a timeout, in parallel with s2
 * (the saga's 20 s deadline ends a wait nobody answers); s4 after both.
 * Signals come early, on time, late and twice; a quarter say failure. */
static void test_sim_signals(void **state) {
    (void)state;
    begin_shape("signals");
    saga_definition_t *d = &g_shape.def;
    d->timeout_ms = 20000;
    g_shape.abort_pct = 5;
    for (int i = 0; i < 5; i++) {
        char comp[16];
        snprintf(comp, sizeof comp, "undo%d", i);
        add_step(d, i == 1 || i == 3 ? NULL : comp, 3, 3);
    }
    for (int i = 1; i <= 3; i += 2) {
        saga_step_def_t *st = &d->steps[i];
        st->kind = SAGA_STEP_KIND_SIGNAL;
        snprintf(st->signal, sizeof st->signal, "approve%d", i);
        st->topic[0] = st->action[0] = '\0';
        st->retry.max_attempts = 1;
        st->timeout_ms = i == 1 ? 1500 : 0;
    }
    d->steps[3].after[0] = 1; /* s2 and s3 after s1 */
    d->steps[4].after[0] = 2, d->steps[4].after[1] = 3, d->steps[4].after_count = 2;
    run_shape(7);
}

/* Child sagas: s0; s1 a child saga (no timeout) and s2 a child saga (1.5 s
 * timeout) in parallel after s0; s3 after both. The children's answers come
 * as replies (success, failure, late, twice); the parent's compensation
 * asks a child to undo itself, its abort stops a running one. */
static void test_sim_children(void **state) {
    (void)state;
    begin_shape("children");
    saga_definition_t *d = &g_shape.def;
    g_shape.abort_pct = 10;
    for (int i = 0; i < 4; i++) {
        char comp[16];
        snprintf(comp, sizeof comp, "undo%d", i);
        add_step(d, comp, 3, 4);
    }
    for (int i = 1; i <= 2; i++) {
        saga_step_def_t *st = &d->steps[i];
        st->kind = SAGA_STEP_KIND_CHILD;
        snprintf(st->child, sizeof st->child, "kid%d", i);
        snprintf(st->compensation, sizeof st->compensation, "saga.compensate");
        st->topic[0] = st->action[0] = '\0';
        st->retry.max_attempts = 1;
        st->timeout_ms = i == 1 ? 0 : 1500;
    }
    d->steps[2].after[0] = 0; /* s1 and s2 after s0 */
    d->steps[3].after[0] = 1, d->steps[3].after[1] = 2, d->steps[3].after_count = 2;
    run_shape(8);
}

/* Flow control: s0; s1, s2, s3 in parallel after s0, all four on one topic
 * with room for two commands and a breaker that opens after three
 * consecutive transient outcomes; s4 (another topic) after the three. */
static void test_sim_flow_control(void **state) {
    (void)state;
    begin_shape("flow");
    g_shape.flow = true;
    g_shape.limits = (saga_flow_limits_t){.max_in_flight = 2, .breaker_failures = 3, .breaker_cooldown_ms = 700};
    g_shape.retry_pct = 25;
    saga_definition_t *d = &g_shape.def;
    for (int i = 0; i < 5; i++) {
        char comp[16];
        snprintf(comp, sizeof comp, "undo%d", i);
        add_step(d, i == 2 ? NULL : comp, 3, 3);
        snprintf(d->steps[i].topic, sizeof d->steps[i].topic, "%s", i < 4 ? "shared.commands" : "other.commands");
    }
    d->steps[2].after[0] = 0;
    d->steps[3].after[0] = 0;
    d->steps[4].after[0] = 1, d->steps[4].after[1] = 2, d->steps[4].after[2] = 3, d->steps[4].after_count = 3;
    run_shape(6);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const char *env = getenv("SAGA_SIM_SEED");
    if (env && *env) g_seed = strtoull(env, NULL, 0);
    else {
        uint64_t x = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid() ^ (uint64_t)saga_monotonic_us();
        g_seed = splitmix(&x) >> 11; /* short enough to copy */
    }
    env = getenv("SAGA_SIM_SAGAS");
    if (env && atoi(env) > 0) g_sagas = atoi(env);
    env = getenv("SAGA_SIM_TRACE");
    g_trace = env && *env && strcmp(env, "0") != 0;
    printf("engine simulation: SAGA_SIM_SEED=%" PRIu64 " (set it to reproduce), %d sagas per shape\n", g_seed,
           g_sagas);
    fflush(stdout);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_sequential),   cmocka_unit_test(test_sim_parallel),
        cmocka_unit_test(test_sim_no_compensation), cmocka_unit_test(test_sim_small_budgets),
        cmocka_unit_test(test_sim_deadline),       cmocka_unit_test(test_sim_flow_control),
        cmocka_unit_test(test_sim_signals),
        cmocka_unit_test(test_sim_children),
    };
    int failed = cmocka_run_group_tests_name("engine_sim", tests, NULL, NULL);
    release_shape();
    return failed;
}

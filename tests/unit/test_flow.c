/* Flow control per topic: the bulkhead, FIFO waiters, the circuit breaker,
 * and the engine's use of them (queued steps, resume, outcomes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "flow.h"
#include "saga_error.h"

static saga_flow_t *flow_with(int max, int failures, int64_t cooldown) {
    saga_flow_limits_t l = {.max_in_flight = max, .breaker_failures = failures, .breaker_cooldown_ms = cooldown};
    saga_flow_t *f = saga_flow_new(&l);
    assert_non_null(f);
    return f;
}

static saga_flow_topic_stats_t stats_of(saga_flow_t *f, const char *topic) {
    saga_flow_topic_stats_t t;
    for (int i = 0; saga_flow_stats(f, i, &t); i++)
        if (!strcmp(t.topic, topic)) return t;
    fail_msg("no topic %s", topic);
    return t;
}

static void test_bulkhead_limits_in_flight_per_topic(void **state) {
    saga_flow_t *f = flow_with(2, 0, 0);
    assert_int_equal(saga_flow_acquire(f, "a", 0), 1);
    assert_int_equal(saga_flow_acquire(f, "a", 0), 1);
    assert_int_equal(saga_flow_acquire(f, "a", 0), 0);
    assert_int_equal(saga_flow_acquire(f, "b", 0), 1); /* topics are independent */
    saga_flow_done(f, "a", true, 1);
    assert_int_equal(saga_flow_acquire(f, "a", 1), 1);
    assert_int_equal(stats_of(f, "a").in_flight, 2);
    saga_flow_free(&f);
    assert_null(f);
}

static void test_waiters_are_served_in_order_and_first(void **state) {
    saga_flow_t *f = flow_with(1, 0, 0);
    assert_int_equal(saga_flow_acquire(f, "a", 0), 1);
    assert_int_equal(saga_flow_enqueue(f, "a", "s-1", 0), 0);
    assert_int_equal(saga_flow_enqueue(f, "a", "s-2", 3), 0);
    saga_flow_waiter_t w;
    assert_int_equal(saga_flow_next_ready(f, 0, &w), 0); /* no room yet */
    saga_flow_done(f, "a", true, 0);
    assert_int_equal(saga_flow_acquire(f, "a", 0), 0);    /* a newcomer may not overtake */
    assert_int_equal(saga_flow_has_ready(f, 0), 1);
    assert_int_equal(saga_flow_next_ready(f, 0, &w), 1);
    assert_string_equal(w.saga_id, "s-1");
    assert_string_equal(w.topic, "a");
    assert_int_equal(saga_flow_next_ready(f, 0, &w), 0);  /* s-1 took the room */
    saga_flow_release(f, "a");                             /* s-1 was stale */
    assert_int_equal(saga_flow_next_ready(f, 0, &w), 1);
    assert_string_equal(w.saga_id, "s-2");
    assert_int_equal(w.slot, 3);
    assert_int_equal(stats_of(f, "a").waiting, 0);
    saga_flow_free(&f);
}

static void test_many_waiters_keep_fifo_order_across_growth(void **state) {
    saga_flow_t *f = flow_with(1, 0, 0);
    saga_flow_acquire(f, "a", 0);
    char id[32];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "s-%d", i);
        assert_int_equal(saga_flow_enqueue(f, "a", id, i), 0);
    }
    saga_flow_waiter_t w;
    for (int i = 0; i < 100; i++) {
        saga_flow_done(f, "a", true, 0);
        assert_int_equal(saga_flow_next_ready(f, 0, &w), 1);
        assert_int_equal(w.slot, i);
    }
    saga_flow_free(&f);
}

static void test_breaker_opens_probes_and_closes(void **state) {
    saga_flow_t *f = flow_with(0, 3, 1000);
    for (int i = 0; i < 3; i++) assert_int_equal(saga_flow_acquire(f, "p", 0), 1);
    assert_int_equal(saga_flow_done(f, "p", false, 10), SAGA_BREAKER_CLOSED);
    assert_int_equal(saga_flow_done(f, "p", false, 20), SAGA_BREAKER_CLOSED);
    assert_int_equal(saga_flow_done(f, "p", false, 30), SAGA_BREAKER_OPEN);
    assert_int_equal(saga_flow_acquire(f, "p", 500), 0);   /* open: nothing goes */
    assert_int_equal(saga_flow_acquire(f, "p", 1030), 1);  /* cool-down over: one probe */
    assert_int_equal(stats_of(f, "p").breaker, SAGA_BREAKER_HALF_OPEN);
    assert_int_equal(saga_flow_acquire(f, "p", 1031), 0);  /* only one */
    assert_int_equal(saga_flow_done(f, "p", true, 1040), SAGA_BREAKER_CLOSED);
    assert_int_equal(saga_flow_acquire(f, "p", 1041), 1);
    saga_flow_free(&f);
}

static void test_failed_probe_reopens(void **state) {
    saga_flow_t *f = flow_with(0, 1, 100);
    saga_flow_acquire(f, "p", 0);
    assert_int_equal(saga_flow_done(f, "p", false, 0), SAGA_BREAKER_OPEN);
    assert_int_equal(saga_flow_acquire(f, "p", 100), 1);
    assert_int_equal(saga_flow_done(f, "p", false, 150), SAGA_BREAKER_OPEN);
    assert_int_equal(saga_flow_acquire(f, "p", 200), 0); /* a new cool-down from 150 */
    assert_int_equal(saga_flow_acquire(f, "p", 250), 1);
    saga_flow_free(&f);
}

static void test_success_resets_the_failure_count(void **state) {
    saga_flow_t *f = flow_with(0, 2, 100);
    saga_flow_done(f, "p", false, 0);
    saga_flow_done(f, "p", true, 0);
    assert_int_equal(saga_flow_done(f, "p", false, 0), SAGA_BREAKER_CLOSED);
    saga_flow_free(&f);
}

/* ---- the engine with a flow ------------------------------------------------ */

static saga_definition_t def;

static void make_def(void) {
    memset(&def, 0, sizeof def);
    snprintf(def.name, sizeof def.name, "flowtest");
    def.version = 1;
    def.step_count = 2;
    for (int i = 0; i < 2; i++) {
        saga_step_def_t *s = &def.steps[i];
        snprintf(s->name, sizeof s->name, "s%d", i);
        snprintf(s->topic, sizeof s->topic, "t%d", i);
        snprintf(s->action, sizeof s->action, "a%d", i);
        snprintf(s->compensation, sizeof s->compensation, "c%d", i);
        s->payload = json_object();
        s->timeout_ms = 1000;
        s->retry = (saga_retry_policy_t){3, 10, 2, 100, SAGA_JITTER_NONE};
        s->compensation_retry = s->retry;
        if (i) { s->after[0] = 0; s->after_count = 1; }
    }
}

static int apply(saga_engine_config_t *cfg, saga_t *s, saga_event_t ev, saga_effects_t *fx) {
    uint64_t rng = 1;
    char why[256];
    saga_effects_clear(fx);
    return saga_engine_apply(cfg, s, &ev, 1000, &rng, fx, why, sizeof why);
}

static int count_kind(const saga_effects_t *fx, saga_effect_kind_t k) {
    int n = 0;
    for (int i = 0; i < fx->count; i++) n += fx->items[i].kind == k;
    return n;
}

static void test_engine_queues_when_topic_is_full_and_resumes(void **state) {
    make_def();
    saga_flow_t *f = flow_with(1, 0, 0);
    saga_engine_config_t cfg = {.replies_topic = "r", .flow = f};
    saga_t a, b;
    saga_effects_t fx;
    saga_effects_init(&fx);
    json_t *in = json_object();
    saga_init(&a, "a", &def, in, "", 0);
    saga_init(&b, "b", &def, in, "", 0);
    assert_int_equal(apply(&cfg, &a, (saga_event_t){.kind = SAGA_EV_START}, &fx), 0);
    assert_int_equal(count_kind(&fx, SAGA_FX_COMMAND), 1);
    assert_int_equal(apply(&cfg, &b, (saga_event_t){.kind = SAGA_EV_START}, &fx), 0);
    assert_int_equal(count_kind(&fx, SAGA_FX_COMMAND), 0);
    assert_int_equal(count_kind(&fx, SAGA_FX_WAIT_FOR_ROOM), 1);
    assert_int_equal(b.steps[0].status, SAGA_STEP_QUEUED);
    assert_int_equal(b.steps[0].attempt, 0); /* nothing sent yet */
    assert_int_equal(saga_flow_enqueue(f, "t0", "b", 0), 0);
    /* a's reply frees the room; b is next */
    assert_int_equal(apply(&cfg, &a, (saga_event_t){.kind = SAGA_EV_REPLY, .step = 0, .attempt = 1,
                                                    .reply_status = SAGA_REPLY_SUCCESS}, &fx), 0);
    saga_flow_waiter_t w;
    assert_int_equal(saga_flow_next_ready(f, 1000, &w), 1);
    assert_string_equal(w.saga_id, "b");
    assert_int_equal(apply(&cfg, &b, (saga_event_t){.kind = SAGA_EV_RESUME, .slot = w.slot}, &fx), 0);
    assert_int_equal(count_kind(&fx, SAGA_FX_COMMAND), 1);
    assert_int_equal(b.steps[0].status, SAGA_STEP_RUNNING);
    assert_int_equal(b.steps[0].attempt, 1);
    /* a second resume is stale */
    assert_int_equal(apply(&cfg, &b, (saga_event_t){.kind = SAGA_EV_RESUME, .slot = 0}, &fx), SAGA_ESTALE);
    json_decref(in);
    saga_clear(&a);
    saga_clear(&b);
    saga_effects_free(&fx);
    saga_flow_free(&f);
    json_decref(def.steps[0].payload);
    json_decref(def.steps[1].payload);
}

static void test_engine_reports_timeouts_to_the_breaker(void **state) {
    make_def();
    saga_flow_t *f = flow_with(0, 1, 5000);
    saga_engine_config_t cfg = {.replies_topic = "r", .flow = f};
    saga_t a;
    saga_effects_t fx;
    saga_effects_init(&fx);
    json_t *in = json_object();
    saga_init(&a, "a", &def, in, "", 0);
    apply(&cfg, &a, (saga_event_t){.kind = SAGA_EV_START}, &fx);
    assert_int_equal(apply(&cfg, &a, (saga_event_t){.kind = SAGA_EV_TIMER, .slot = 0,
                                                    .timer_kind = SAGA_TIMER_STEP_TIMEOUT, .timer_attempt = 1}, &fx), 0);
    assert_int_equal(stats_of(f, "t0").breaker, SAGA_BREAKER_OPEN);
    /* the retry after backoff waits: the circuit is open */
    assert_int_equal(apply(&cfg, &a, (saga_event_t){.kind = SAGA_EV_TIMER, .slot = 0,
                                                    .timer_kind = SAGA_TIMER_BACKOFF, .timer_attempt = 1}, &fx), 0);
    assert_int_equal(a.steps[0].status, SAGA_STEP_QUEUED);
    assert_true(a.steps[0].outcome_unknown);
    /* an abort now: the queued step's outcome is unknown, so it is compensated */
    assert_int_equal(apply(&cfg, &a, (saga_event_t){.kind = SAGA_EV_ABORT}, &fx), 0);
    assert_int_equal(a.steps[0].status, SAGA_STEP_COMPENSATION_QUEUED); /* still open */
    json_decref(in);
    saga_clear(&a);
    saga_effects_free(&fx);
    saga_flow_free(&f);
    json_decref(def.steps[0].payload);
    json_decref(def.steps[1].payload);
}

static void test_paused_topic_holds_everything_until_resumed(void **state) {
    saga_flow_t *f = flow_with(0, 0, 0); /* no bulkhead, no breaker: only the pause holds */
    assert_int_equal(saga_flow_acquire(f, "pay", 0), 1);
    assert_int_equal(saga_flow_pause(f, "pay", true), 0);
    assert_true(saga_flow_paused(f, "pay"));
    assert_true(stats_of(f, "pay").paused);
    assert_int_equal(saga_flow_acquire(f, "pay", 0), 0);
    assert_int_equal(saga_flow_acquire(f, "ship", 0), 1); /* other topics go on */
    assert_int_equal(saga_flow_enqueue(f, "pay", "s-1", 2), 0);
    assert_int_equal(saga_flow_enqueue(f, "pay", "s-2", 2), 0);
    saga_flow_waiter_t w;
    assert_int_equal(saga_flow_has_ready(f, 1000000), 0);
    assert_int_equal(saga_flow_next_ready(f, 1000000, &w), 0); /* not even after a long time */
    saga_flow_done(f, "pay", true, 5);                          /* a command out before the pause ends */
    assert_int_equal(saga_flow_next_ready(f, 5, &w), 0);
    /* a pause of a topic never seen, then unpause_all */
    assert_int_equal(saga_flow_pause(f, "new", true), 0);
    assert_int_equal(saga_flow_acquire(f, "new", 0), 0);
    saga_flow_unpause_all(f);
    assert_false(saga_flow_paused(f, "pay"));
    assert_int_equal(saga_flow_acquire(f, "new", 0), 1);
    /* resumed: the waiters go in order, then newcomers */
    assert_int_equal(saga_flow_next_ready(f, 6, &w), 1);
    assert_string_equal(w.saga_id, "s-1");
    assert_int_equal(saga_flow_next_ready(f, 6, &w), 1);
    assert_string_equal(w.saga_id, "s-2");
    assert_int_equal(saga_flow_acquire(f, "pay", 6), 1);
    saga_flow_free(&f);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bulkhead_limits_in_flight_per_topic),
        cmocka_unit_test(test_waiters_are_served_in_order_and_first),
        cmocka_unit_test(test_many_waiters_keep_fifo_order_across_growth),
        cmocka_unit_test(test_breaker_opens_probes_and_closes),
        cmocka_unit_test(test_failed_probe_reopens),
        cmocka_unit_test(test_success_resets_the_failure_count),
        cmocka_unit_test(test_engine_queues_when_topic_is_full_and_resumes),
        cmocka_unit_test(test_engine_reports_timeouts_to_the_breaker),
        cmocka_unit_test(test_paused_topic_holds_everything_until_resumed),
    };
    return cmocka_run_group_tests_name("flow", tests, NULL, NULL);
}

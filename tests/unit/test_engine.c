/* The pure engine with a fake clock: every transition of the saga and step
 * state machines, stale-event handling, backoff, compensation order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "saga_error.h"
#include "saga_alloc.h"
#include "saga_json.h"
#include "replay.h"
#include "saga_partition.h"
#include <stdlib.h>

#include "test_engine_fixture.h"

/* ---- tests ---------------------------------------------------------------- */

static void test_start_sends_first_command_only(void **state) {
    world_t *w = world_new(make_def(3, 0));
    assert_int_equal(start(w), 0);
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 1);
    const saga_effect_t *c = find_fx(w, SAGA_FX_COMMAND, 0);
    assert_string_equal(c->topic, "topic0");
    assert_string_equal(cmd_str(c, "message_id"), "saga-1/s0/action/1");
    assert_string_equal(cmd_str(c, "idempotency_key"), "saga-1/s0/action");
    assert_string_equal(cmd_str(c, "action"), "do0");
    assert_string_equal(cmd_str(c, "reply_to"), "saga.replies");
    assert_string_equal(json_string_value(json_object_get(json_object_get(c->message, "payload"), "order")), "o-1");
    const saga_effect_t *t = find_fx(w, SAGA_FX_SET_TIMER, 0);
    assert_non_null(t);
    assert_int_equal(t->timer_kind, SAGA_TIMER_STEP_TIMEOUT);
    assert_int_equal(t->due_at, w->now + 1000);
    assert_int_equal(w->saga.steps[0].status, SAGA_STEP_RUNNING);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_PENDING);
    assert_true(has_event(w, "saga.started"));
    world_free(w);
}

static void test_happy_path_completes(void **state) {
    world_t *w = world_new(make_def(3, 0));
    start(w);
    for (int i = 0; i < 3; i++) {
        w->now += 10;
        assert_int_equal(ok(w, i), 0);
        assert_int_equal(w->saga.steps[i].status, SAGA_STEP_SUCCEEDED);
        assert_int_equal(w->saga.steps[i].completion_order, i + 1);
        assert_non_null(w->saga.steps[i].output);
    }
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPLETED);
    assert_true(has_event(w, "saga.completed"));
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 0);
    world_free(w);
}

static void test_second_start_is_stale(void **state) {
    world_t *w = world_new(make_def(2, 0));
    start(w);
    assert_int_equal(start(w), SAGA_ESTALE);
    assert_int_equal(w->fx.count, 0);
    world_free(w);
}

static void test_failure_compensates_in_reverse_order(void **state) {
    world_t *w = world_new(make_def(3, 0));
    start(w);
    ok(w, 0);
    ok(w, 1);
    assert_int_equal(reply(w, 2, SAGA_KIND_ACTION, 1, SAGA_REPLY_FAILURE), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATING);
    assert_int_equal(w->saga.steps[2].status, SAGA_STEP_FAILED);
    assert_string_equal(w->saga.steps[2].error_code, "E_TEST");
    assert_string_equal(w->saga.error_code, "E_TEST");
    const saga_effect_t *c = find_fx(w, SAGA_FX_COMMAND, 0);
    assert_non_null(c);
    assert_string_equal(cmd_str(c, "step"), "s1");
    assert_string_equal(cmd_str(c, "kind"), "compensation");
    assert_string_equal(cmd_str(c, "action"), "undo1");
    /* the compensation carries the action's output */
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(c->message, "payload"), "action_output"), "n")), 1);
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 1); /* one at a time */
    assert_int_equal(reply(w, 1, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_SUCCESS), 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_COMPENSATED);
    c = find_fx(w, SAGA_FX_COMMAND, 0);
    assert_string_equal(cmd_str(c, "step"), "s0");
    assert_int_equal(reply(w, 0, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_SUCCESS), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATED);
    assert_int_equal(w->saga.steps[2].status, SAGA_STEP_FAILED); /* a failed step is not compensated */
    world_free(w);
}

static void test_failure_of_first_step_compensates_nothing(void **state) {
    world_t *w = world_new(make_def(3, 0));
    start(w);
    reply(w, 0, SAGA_KIND_ACTION, 1, SAGA_REPLY_FAILURE);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATED);
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_CANCELLED);
    assert_int_equal(w->saga.steps[2].status, SAGA_STEP_CANCELLED);
    world_free(w);
}

static void test_retry_reply_schedules_backoff_then_resends(void **state) {
    world_t *w = world_new(make_def(2, 0));
    start(w);
    assert_int_equal(reply(w, 0, SAGA_KIND_ACTION, 1, SAGA_REPLY_RETRY), 0);
    assert_int_equal(w->saga.steps[0].status, SAGA_STEP_RETRY_WAIT);
    const saga_effect_t *t = find_fx(w, SAGA_FX_SET_TIMER, 0);
    assert_int_equal(t->timer_kind, SAGA_TIMER_BACKOFF);
    assert_int_equal(t->due_at, w->now + 100); /* jitter none: initial backoff */
    w->now = t->due_at;
    assert_int_equal(timer(w, 0, SAGA_TIMER_BACKOFF, 1), 0);
    const saga_effect_t *c = find_fx(w, SAGA_FX_COMMAND, 0);
    assert_string_equal(cmd_str(c, "message_id"), "saga-1/s0/action/2");
    assert_int_equal(w->saga.steps[0].attempt, 2);
    /* the reply to attempt 1 is now stale */
    assert_int_equal(reply(w, 0, SAGA_KIND_ACTION, 1, SAGA_REPLY_SUCCESS), SAGA_ESTALE);
    assert_int_equal(reply(w, 0, SAGA_KIND_ACTION, 2, SAGA_REPLY_SUCCESS), 0);
    assert_int_equal(w->saga.steps[0].status, SAGA_STEP_SUCCEEDED);
    world_free(w);
}

static void test_retries_exhausted_fail_without_compensating_the_step(void **state) {
    world_t *w = world_new(make_def(2, 0));
    start(w);
    ok(w, 0);
    for (int a = 1; a <= 3; a++) {
        assert_int_equal(reply(w, 1, SAGA_KIND_ACTION, a, SAGA_REPLY_RETRY), 0);
        if (a < 3) timer(w, 1, SAGA_TIMER_BACKOFF, a);
    }
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_FAILED);
    assert_string_equal(w->saga.error_code, "RETRIES_EXHAUSTED");
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATING);
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "step"), "s0");
    world_free(w);
}

static void test_timeouts_exhausted_make_outcome_unknown_and_compensate_it(void **state) {
    world_t *w = world_new(make_def(2, 0));
    start(w);
    ok(w, 0);
    for (int a = 1; a <= 3; a++) {
        assert_int_equal(timer(w, 1, SAGA_TIMER_STEP_TIMEOUT, a), 0);
        if (a < 3) assert_int_equal(timer(w, 1, SAGA_TIMER_BACKOFF, a), 0);
    }
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_COMPENSATING);
    assert_true(w->saga.steps[1].outcome_unknown);
    /* the unknown step is compensated first: it completed (gave up) last */
    const saga_effect_t *c = find_fx(w, SAGA_FX_COMMAND, 0);
    assert_string_equal(cmd_str(c, "step"), "s1");
    assert_true(json_is_null(json_object_get(json_object_get(c->message, "payload"), "action_output")));
    reply(w, 1, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_SUCCESS);
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "step"), "s0");
    reply(w, 0, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_SUCCESS);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATED);
    world_free(w);
}

static void test_stale_timers_change_nothing(void **state) {
    world_t *w = world_new(make_def(2, 0));
    start(w);
    ok(w, 0);
    assert_int_equal(timer(w, 0, SAGA_TIMER_STEP_TIMEOUT, 1), SAGA_ESTALE); /* step already done */
    assert_int_equal(timer(w, 1, SAGA_TIMER_STEP_TIMEOUT, 7), SAGA_ESTALE); /* other attempt */
    assert_int_equal(timer(w, 1, SAGA_TIMER_BACKOFF, 1), SAGA_ESTALE);      /* not waiting */
    assert_int_equal(timer(w, -1, SAGA_TIMER_BACKOFF, 0), SAGA_ESTALE);
    assert_int_equal(timer(w, 9, SAGA_TIMER_BACKOFF, 0), SAGA_ESTALE);
    assert_int_equal(w->fx.count, 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_RUNNING);
    world_free(w);
}

static void test_stale_replies_change_nothing(void **state) {
    world_t *w = world_new(make_def(2, 0));
    start(w);
    int64_t seq = w->saga.seq;
    assert_int_equal(reply(w, 0, SAGA_KIND_ACTION, 2, SAGA_REPLY_SUCCESS), SAGA_ESTALE);
    assert_non_null(strstr(w->why, "attempt 2"));
    assert_int_equal(w->fx.stale_reason, SAGA_STALE_OTHER_ATTEMPT);
    assert_int_equal(reply(w, 0, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_SUCCESS), SAGA_ESTALE);
    assert_int_equal(w->fx.stale_reason, SAGA_STALE_WRONG_KIND);
    assert_int_equal(reply(w, 1, SAGA_KIND_ACTION, 1, SAGA_REPLY_SUCCESS), SAGA_ESTALE); /* not started */
    assert_int_equal(w->fx.stale_reason, SAGA_STALE_NOT_WAITING);
    assert_int_equal(reply(w, 5, SAGA_KIND_ACTION, 1, SAGA_REPLY_SUCCESS), SAGA_ESTALE);
    assert_int_equal(w->fx.stale_reason, SAGA_STALE_UNKNOWN_STEP);
    ok(w, 0);
    assert_int_equal(reply(w, 0, SAGA_KIND_ACTION, 1, SAGA_REPLY_SUCCESS), SAGA_ESTALE); /* duplicate */
    assert_int_equal(w->fx.stale_reason, SAGA_STALE_NOT_WAITING);
    ok(w, 1);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPLETED);
    assert_int_equal(reply(w, 1, SAGA_KIND_ACTION, 1, SAGA_REPLY_FAILURE), SAGA_ESTALE); /* terminal */
    assert_int_equal(w->fx.stale_reason, SAGA_STALE_SAGA_FINISHED);
    assert_true(w->saga.seq > seq);
    world_free(w);
}

static void test_deadline_compensates(void **state) {
    saga_definition_t *def = make_def(2, 0);
    def->timeout_ms = 5000;
    world_t *w = world_new(def);
    start(w);
    const saga_effect_t *t = NULL;
    for (int i = 0; (t = find_fx(w, SAGA_FX_SET_TIMER, i)); i++)
        if (t->slot == -1) break;
    assert_non_null(t);
    assert_int_equal(t->timer_kind, SAGA_TIMER_DEADLINE);
    assert_int_equal(t->due_at, w->now + 5000);
    ok(w, 0);
    w->now += 5000;
    assert_int_equal(timer(w, -1, SAGA_TIMER_DEADLINE, 0), 0);
    assert_string_equal(w->saga.error_code, "SAGA_DEADLINE");
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATING);
    /* s1 is still running: compensation waits for it */
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 0);
    assert_int_equal(timer(w, 1, SAGA_TIMER_STEP_TIMEOUT, 1), 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_COMPENSATING); /* unknown, no retry while compensating */
    world_free(w);
}

static void test_compensation_failure_parks_and_alerts_then_operator_retry(void **state) {
    world_t *w = world_new(make_def(2, 0));
    start(w);
    ok(w, 0);
    reply(w, 1, SAGA_KIND_ACTION, 1, SAGA_REPLY_FAILURE);
    assert_int_equal(reply(w, 0, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_FAILURE), 0);
    assert_int_equal(w->saga.steps[0].status, SAGA_STEP_COMPENSATION_RETRY_WAIT);
    assert_int_equal(timer(w, 0, SAGA_TIMER_BACKOFF, 1), 0);
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "message_id"), "saga-1/s0/compensation/2");
    assert_int_equal(reply(w, 0, SAGA_KIND_COMPENSATION, 2, SAGA_REPLY_RETRY), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATION_FAILED);
    assert_int_equal(w->saga.steps[0].status, SAGA_STEP_COMPENSATION_FAILED);
    assert_int_equal(count_fx(w, SAGA_FX_ALERT), 1);
    assert_true(has_event(w, "saga.compensation_failed"));
    /* nothing moves it on its own */
    assert_int_equal(timer(w, 0, SAGA_TIMER_BACKOFF, 2), SAGA_ESTALE);
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_ABORT}), SAGA_ESTALE);
    /* operator retry: a fresh budget, attempt numbers keep growing */
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_RETRY, .reason = "fixed"}), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATING);
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "message_id"), "saga-1/s0/compensation/3");
    assert_int_equal(reply(w, 0, SAGA_KIND_COMPENSATION, 3, SAGA_REPLY_RETRY), 0);
    assert_int_equal(w->saga.steps[0].status, SAGA_STEP_COMPENSATION_RETRY_WAIT);
    timer(w, 0, SAGA_TIMER_BACKOFF, 3);
    assert_int_equal(reply(w, 0, SAGA_KIND_COMPENSATION, 4, SAGA_REPLY_SUCCESS), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATED);
    world_free(w);
}

static void test_retry_only_from_compensation_failed(void **state) {
    world_t *w = world_new(make_def(1, 0));
    start(w);
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_RETRY}), SAGA_ESTALE);
    assert_non_null(strstr(w->why, "running"));
    world_free(w);
}

static void test_abort_running_saga_compensates(void **state) {
    world_t *w = world_new(make_def(3, 0));
    start(w);
    ok(w, 0);
    ok(w, 1);
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_ABORT, .reason = "customer called"}), 0);
    assert_string_equal(w->saga.error_code, "ABORTED");
    assert_string_equal(w->saga.error_message, "customer called");
    /* s2 is in flight: wait for its outcome */
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 0);
    ok(w, 2);
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "step"), "s2");
    world_free(w);
}

static void test_abort_of_completed_saga_is_refused(void **state) {
    world_t *w = world_new(make_def(1, 0));
    start(w);
    ok(w, 0);
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_ABORT}), SAGA_ESTALE);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPLETED);
    world_free(w);
}

static void test_step_without_compensation_is_skipped(void **state) {
    world_t *w = world_new(make_def(3, 1u << 1));
    start(w);
    ok(w, 0);
    ok(w, 1);
    reply(w, 2, SAGA_KIND_ACTION, 1, SAGA_REPLY_FAILURE);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_COMPENSATED);
    assert_true(has_event(w, "compensation.skipped"));
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "step"), "s0");
    world_free(w);
}

static void test_parallel_branches_start_together_and_failure_waits(void **state) {
    saga_definition_t *def = make_def(4, 0);
    /* s0 -> (s1 | s2) -> s3 */
    def->steps[2].after[0] = 0;
    def->steps[3].after[0] = 1;
    def->steps[3].after[1] = 2;
    def->steps[3].after_count = 2;
    world_t *w = world_new(def);
    start(w);
    ok(w, 0);
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 2);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_RUNNING);
    assert_int_equal(w->saga.steps[2].status, SAGA_STEP_RUNNING);
    reply(w, 1, SAGA_KIND_ACTION, 1, SAGA_REPLY_FAILURE);
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 0); /* s2 in flight */
    assert_int_equal(w->saga.steps[3].status, SAGA_STEP_CANCELLED);
    ok(w, 2); /* succeeded late: compensated first */
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "step"), "s2");
    reply(w, 2, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_SUCCESS);
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "step"), "s0");
    reply(w, 0, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_SUCCESS);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATED);
    world_free(w);
}

static void test_join_waits_for_all_dependencies(void **state) {
    saga_definition_t *def = make_def(4, 0);
    def->steps[2].after[0] = 0;
    def->steps[3].after[0] = 1;
    def->steps[3].after[1] = 2;
    def->steps[3].after_count = 2;
    world_t *w = world_new(def);
    start(w);
    ok(w, 0);
    ok(w, 1);
    assert_int_equal(w->saga.steps[3].status, SAGA_STEP_PENDING);
    ok(w, 2);
    assert_int_equal(w->saga.steps[3].status, SAGA_STEP_RUNNING);
    world_free(w);
}

static void test_missing_template_value_fails_the_step(void **state) {
    saga_definition_t *def = make_def(2, 0);
    json_decref(def->steps[1].payload);
    def->steps[1].payload = json_pack("{s:s}", "x", "${input.no_such_field}");
    world_t *w = world_new(def);
    start(w);
    ok(w, 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_FAILED);
    assert_string_equal(w->saga.steps[1].error_code, "TEMPLATE");
    assert_non_null(strstr(w->saga.steps[1].error_message, "no_such_field"));
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "step"), "s0"); /* compensating s0 */
    world_free(w);
}


static void test_history_sequence_is_gap_free(void **state) {
    world_t *w = world_new(make_def(3, 0));
    int64_t expect = 1;
    start(w);
    for (int step = 0; step <= 3; step++) {
        for (int i = 0; i < w->fx.count; i++) {
            if (w->fx.items[i].kind != SAGA_FX_EVENT) continue;
            assert_int_equal(json_integer_value(json_object_get(w->fx.items[i].message, "seq")), expect);
            expect++;
        }
        if (step < 3) ok(w, step);
    }
    assert_int_equal(w->saga.seq, expect - 1);
    world_free(w);
}

static void test_backoff_without_jitter_grows_and_caps(void **state) {
    saga_retry_policy_t p = policy(10, 100, 2, 1000, SAGA_JITTER_NONE);
    uint64_t rng = 1;
    assert_int_equal(saga_backoff_ms(&p, 1, &rng), 100);
    assert_int_equal(saga_backoff_ms(&p, 2, &rng), 200);
    assert_int_equal(saga_backoff_ms(&p, 4, &rng), 800);
    assert_int_equal(saga_backoff_ms(&p, 5, &rng), 1000);
    assert_int_equal(saga_backoff_ms(&p, 60, &rng), 1000);
}

static void test_full_jitter_stays_within_cap_and_varies(void **state) {
    saga_retry_policy_t p = policy(10, 100, 2, 1000, SAGA_JITTER_FULL);
    uint64_t rng = 7;
    int64_t min = INT64_MAX, max = -1;
    for (int i = 0; i < 1000; i++) {
        int64_t d = saga_backoff_ms(&p, 3, &rng);
        assert_true(d >= 0 && d <= 400);
        if (d < min) min = d;
        if (d > max) max = d;
    }
    assert_true(max - min > 200); /* spread over the range, not constant */
}

static void test_names_round_trip(void **state) {
    for (int i = 0; i < SAGA_STATUS__COUNT; i++)
        assert_int_equal(saga_status_parse(saga_status_name((saga_status_t)i)), i);
    for (int i = 0; i < SAGA_STEP__COUNT; i++)
        assert_int_equal(saga_step_status_parse(saga_step_status_name((saga_step_status_t)i)), i);
    assert_int_equal(saga_status_parse("nope"), -1);
    assert_int_equal(saga_step_status_parse(NULL), -1);
    assert_string_equal(saga_command_kind_name(SAGA_KIND_COMPENSATION), "compensation");
    assert_int_equal(saga_timer_kind_parse("deadline"), SAGA_TIMER_DEADLINE);
}

/* Issue 13.5: a step that timed out (outcome unknown, no output) is
 * compensated; a compensation payload reading the step's own output with
 * a default renders (the default), where without one it failed at every
 * attempt with TEMPLATE. */
static void test_timed_out_step_compensation_uses_default(void **state) {
    saga_definition_t *def = make_def(2, 0);
    def->steps[1].retry = policy(1, 100, 2, 1000, SAGA_JITTER_NONE);
    def->steps[1].compensation_payload =
        json_pack("{s:s, s:s}", "ref", "${steps.s1.output.ref:-null}", "order", "${input.order_id}");
    world_t *w = world_new(def);
    start(w);
    ok(w, 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_RUNNING);
    assert_int_equal(timer(w, 1, SAGA_TIMER_STEP_TIMEOUT, 1), 0);
    assert_true(w->saga.steps[1].outcome_unknown);
    const saga_effect_t *cmd = find_fx(w, SAGA_FX_COMMAND, 0);
    assert_non_null(cmd);
    assert_string_equal(cmd_str(cmd, "step"), "s1");
    assert_string_equal(cmd_str(cmd, "kind"), "compensation");
    json_t *payload = json_object_get(cmd->message, "payload");
    assert_true(json_is_null(json_object_get(payload, "ref")));
    assert_string_equal(json_string_value(json_object_get(payload, "order")), "o-1");
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_COMPENSATING);
    /* the compensation succeeds, then s0's runs: the saga ends compensated */
    assert_int_equal(reply(w, 1, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_SUCCESS), 0);
    assert_int_equal(reply(w, 0, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_SUCCESS), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATED);
    world_free(w);
}

static bool valid_utf8(const char *s) {
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

/* Issue 13.9: a participant's long non-ASCII error code and message are
 * cut to the step's buffers on a character boundary, not inside one. */
static void test_long_multibyte_error_cut_on_boundary(void **state) {
    world_t *w = world_new(make_def(2, 0));
    start(w);
    ok(w, 0);
    char code[100] = "", msg[600] = "";
    for (int i = 0; i < 40; i++) strcat(code, "\xc3\xa9");      /* 80 bytes of 'é' */
    for (int i = 0; i < 150; i++) strcat(msg, "\xe2\x82\xac"); /* 450 bytes of '€' */
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_REPLY, .step = 1, .command_kind = SAGA_KIND_ACTION,
                                             .attempt = 1, .reply_status = SAGA_REPLY_FAILURE,
                                             .error_code = code, .error_message = msg}),
                     0);
    const saga_step_state_t *st = &w->saga.steps[1];
    assert_true(valid_utf8(st->error_code));
    assert_true(valid_utf8(st->error_message));
    assert_int_equal(strlen(st->error_code), 62);     /* 31 whole characters of 63 bytes */
    assert_int_equal(strlen(st->error_message), 255); /* 85 whole characters */
    assert_true(valid_utf8(w->saga.error_code));
    assert_true(valid_utf8(w->saga.error_message));
    assert_true(has_event(w, "saga.compensating"));
    world_free(w);
}

/* ---- delayed starts -------------------------------------------------------- */

/* The timer effect of slot -1, or NULL. */
static const saga_effect_t *saga_timer_fx(const world_t *w) {
    const saga_effect_t *t;
    for (int i = 0; (t = find_fx(w, SAGA_FX_SET_TIMER, i)); i++)
        if (t->slot == -1) return t;
    return NULL;
}

static void test_delayed_start_is_scheduled_then_begins(void **state) {
    saga_definition_t *def = make_def(2, 0);
    def->timeout_ms = 5000;
    world_t *w = world_new(def);
    int64_t begin = w->now + 60000;
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_START, .begin_at = begin}), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_SCHEDULED);
    assert_true(has_event(w, "saga.scheduled"));
    assert_false(has_event(w, "saga.started"));
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 0); /* nothing runs before its time */
    const saga_effect_t *t = saga_timer_fx(w);
    assert_non_null(t);
    assert_int_equal(t->timer_kind, SAGA_TIMER_START);
    assert_int_equal(t->due_at, begin);
    assert_int_equal(w->saga.deadline_at, 0);
    /* a second start, a reply, a deadline timer: nothing */
    assert_int_equal(start(w), SAGA_ESTALE);
    assert_int_equal(reply(w, 0, SAGA_KIND_ACTION, 1, SAGA_REPLY_SUCCESS), SAGA_ESTALE);
    assert_int_equal(timer(w, -1, SAGA_TIMER_DEADLINE, 0), SAGA_ESTALE);
    /* its time comes: running, the first command, the deadline counted from now */
    w->now = begin;
    assert_int_equal(timer(w, -1, SAGA_TIMER_START, 0), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_RUNNING);
    assert_true(has_event(w, "saga.started"));
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 1);
    assert_int_equal(w->saga.deadline_at, begin + 5000);
    t = saga_timer_fx(w);
    assert_non_null(t);
    assert_int_equal(t->timer_kind, SAGA_TIMER_DEADLINE);
    assert_int_equal(w->saga.created_at, 1000000); /* created when it was scheduled */
    /* the begin timer again (a duplicate after a restart): stale */
    assert_int_equal(timer(w, -1, SAGA_TIMER_START, 0), SAGA_ESTALE);
    ok(w, 0);
    ok(w, 1);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPLETED);
    world_free(w);
}

static void test_start_time_not_in_the_future_begins_at_once(void **state) {
    world_t *w = world_new(make_def(2, 0));
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_START, .begin_at = w->now}), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_RUNNING);
    assert_false(has_event(w, "saga.scheduled"));
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 1);
    world_free(w);
    w = world_new(make_def(2, 0));
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_START, .begin_at = w->now - 5000}), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_RUNNING);
    world_free(w);
}

static void test_abort_of_scheduled_saga_cancels_it(void **state) {
    world_t *w = world_new(make_def(3, 0));
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_START, .begin_at = w->now + 1000}), 0);
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_ABORT, .reason = "not needed"}), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATED);
    assert_string_equal(w->saga.error_code, "ABORTED");
    for (int i = 0; i < 3; i++) assert_int_equal(w->saga.steps[i].status, SAGA_STEP_CANCELLED);
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 0);
    const saga_effect_t *c = find_fx(w, SAGA_FX_CLEAR_TIMER, 0);
    assert_non_null(c);
    assert_int_equal(c->slot, -1); /* the begin timer is dropped */
    /* had it fired anyway: nothing */
    w->now += 1000;
    assert_int_equal(timer(w, -1, SAGA_TIMER_START, 0), SAGA_ESTALE);
    world_free(w);
}

static void test_scheduled_saga_replays(void **state) {
    saga_definition_t *def = make_def(2, 0);
    def->timeout_ms = 7000;
    world_t *w = world_new(def);
    json_t *history = json_array();
    int64_t begin = w->now + 30000;
    saga_event_t evs[] = {{.kind = SAGA_EV_START, .begin_at = begin}, {.kind = SAGA_EV_TIMER, .slot = -1,
                                                                        .timer_kind = SAGA_TIMER_START}};
    for (size_t k = 0; k < 2; k++) {
        if (k == 1) w->now = begin;
        assert_int_equal(apply(w, evs[k]), 0);
        for (int i = 0; i < w->fx.count; i++)
            if (w->fx.items[i].kind == SAGA_FX_EVENT) json_array_append(history, w->fx.items[i].message);
        saga_t r;
        char err[256] = "";
        saga_replay_init(&r, def, "saga-1");
        size_t j;
        json_t *ev;
        json_array_foreach(history, j, ev) assert_int_equal(saga_replay_event(&r, ev, err, sizeof err), 0);
        assert_int_equal(r.status, w->saga.status);
        assert_int_equal(r.deadline_at, w->saga.deadline_at);
        assert_int_equal(r.created_at, w->saga.created_at);
        assert_true(json_equal(r.input, w->saga.input));
        saga_clear(&r);
    }
    json_decref(history);
    world_free(w);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_sends_first_command_only),
        cmocka_unit_test(test_happy_path_completes),
        cmocka_unit_test(test_second_start_is_stale),
        cmocka_unit_test(test_failure_compensates_in_reverse_order),
        cmocka_unit_test(test_failure_of_first_step_compensates_nothing),
        cmocka_unit_test(test_retry_reply_schedules_backoff_then_resends),
        cmocka_unit_test(test_retries_exhausted_fail_without_compensating_the_step),
        cmocka_unit_test(test_timeouts_exhausted_make_outcome_unknown_and_compensate_it),
        cmocka_unit_test(test_stale_timers_change_nothing),
        cmocka_unit_test(test_stale_replies_change_nothing),
        cmocka_unit_test(test_deadline_compensates),
        cmocka_unit_test(test_compensation_failure_parks_and_alerts_then_operator_retry),
        cmocka_unit_test(test_retry_only_from_compensation_failed),
        cmocka_unit_test(test_abort_running_saga_compensates),
        cmocka_unit_test(test_abort_of_completed_saga_is_refused),
        cmocka_unit_test(test_step_without_compensation_is_skipped),
        cmocka_unit_test(test_parallel_branches_start_together_and_failure_waits),
        cmocka_unit_test(test_join_waits_for_all_dependencies),
        cmocka_unit_test(test_missing_template_value_fails_the_step),
        cmocka_unit_test(test_history_sequence_is_gap_free),
        cmocka_unit_test(test_delayed_start_is_scheduled_then_begins),
        cmocka_unit_test(test_start_time_not_in_the_future_begins_at_once),
        cmocka_unit_test(test_abort_of_scheduled_saga_cancels_it),
        cmocka_unit_test(test_scheduled_saga_replays),
        cmocka_unit_test(test_backoff_without_jitter_grows_and_caps),
        cmocka_unit_test(test_full_jitter_stays_within_cap_and_varies),
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_timed_out_step_compensation_uses_default),
        cmocka_unit_test(test_long_multibyte_error_cut_on_boundary),
    };
    int failed = cmocka_run_group_tests_name("engine", tests, NULL, NULL);
    release_def();
    return failed;
}

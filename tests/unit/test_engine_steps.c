/* The pure engine's steps that send no command, with a fake clock: signal
 * steps (waiting, early signals, timeouts) and child sagas (start, abort,
 * compensate, the answer to the parent). The command steps are in
 * test_engine.c. */
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

/* ---- signal steps ------------------------------------------------------------ */

/* make_def(3) with s1 a signal step waiting for "approve" (timeout ms, 0: none). */
static saga_definition_t *signal_def(int64_t timeout) {
    saga_definition_t *def = make_def(3, 0);
    saga_step_def_t *st = &def->steps[1];
    st->kind = SAGA_STEP_KIND_SIGNAL;
    snprintf(st->signal, sizeof st->signal, "approve");
    st->topic[0] = st->action[0] = st->compensation[0] = '\0';
    st->timeout_ms = timeout;
    return def;
}

static int signal(world_t *w, bool success, const json_t *output) {
    return apply(w, (saga_event_t){.kind = SAGA_EV_SIGNAL, .step = 1,
                                   .reply_status = success ? SAGA_REPLY_SUCCESS : SAGA_REPLY_FAILURE,
                                   .output = output, .error_code = success ? NULL : "REJECTED",
                                   .error_message = success ? NULL : "over budget"});
}

static void test_signal_step_waits_then_succeeds(void **state) {
    world_t *w = world_new(signal_def(5000));
    start(w);
    ok(w, 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_WAITING);
    assert_true(has_event(w, "step.waiting"));
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 0); /* a signal step sends nothing */
    const saga_effect_t *t = find_fx(w, SAGA_FX_SET_TIMER, 0);
    assert_non_null(t);
    assert_int_equal(t->slot, 1);
    assert_int_equal(t->due_at, w->now + 5000);
    json_t *out = json_pack("{s:s}", "approver", "ann");
    w->now += 100;
    assert_int_equal(signal(w, true, out), 0);
    json_decref(out);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_SUCCEEDED);
    assert_string_equal(json_string_value(json_object_get(w->saga.steps[1].output, "approver")), "ann");
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 1); /* s2 starts */
    assert_int_equal(w->saga.steps[2].status, SAGA_STEP_RUNNING);
    /* the same signal again: already received, nothing changes */
    assert_int_equal(signal(w, true, NULL), SAGA_ESTALE);
    assert_int_equal(w->fx.stale_reason, SAGA_STALE_SIGNAL_RECEIVED);
    ok(w, 2);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPLETED);
    assert_int_equal(signal(w, true, NULL), SAGA_ESTALE);
    assert_int_equal(w->fx.stale_reason, SAGA_STALE_SAGA_FINISHED);
    world_free(w);
}

static void test_signal_failure_compensates(void **state) {
    world_t *w = world_new(signal_def(5000));
    start(w);
    ok(w, 0);
    assert_int_equal(signal(w, false, NULL), 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_FAILED);
    assert_string_equal(w->saga.steps[1].error_code, "REJECTED");
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATING);
    assert_string_equal(w->saga.error_code, "REJECTED");
    const saga_effect_t *c = find_fx(w, SAGA_FX_COMMAND, 0);
    assert_non_null(c);
    assert_string_equal(cmd_str(c, "kind"), "compensation");
    assert_string_equal(cmd_str(c, "step"), "s0");
    assert_int_equal(w->saga.steps[2].status, SAGA_STEP_CANCELLED);
    world_free(w);
}

static void test_signal_timeout_compensates(void **state) {
    world_t *w = world_new(signal_def(5000));
    start(w);
    ok(w, 0);
    w->now += 5000;
    assert_int_equal(timer(w, 1, SAGA_TIMER_STEP_TIMEOUT, 1), 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_FAILED);
    assert_string_equal(w->saga.steps[1].error_code, "SIGNAL_TIMEOUT");
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATING);
    /* a signal after the timeout: too late */
    assert_int_equal(signal(w, true, NULL), SAGA_ESTALE);
    world_free(w);
    /* without a timeout there is no timer, and a stray one changes nothing */
    w = world_new(signal_def(0));
    start(w);
    ok(w, 0);
    assert_int_equal(count_fx(w, SAGA_FX_SET_TIMER), 0);
    assert_int_equal(timer(w, 1, SAGA_TIMER_STEP_TIMEOUT, 1), SAGA_ESTALE);
    world_free(w);
}

static void test_signal_before_its_step_is_kept(void **state) {
    world_t *w = world_new(signal_def(5000));
    start(w);
    json_t *out = json_pack("{s:s}", "approver", "bo");
    assert_int_equal(signal(w, true, out), 0); /* s0 still runs */
    json_decref(out);
    assert_true(has_event(w, "signal.received"));
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_PENDING);
    assert_non_null(w->saga.steps[1].signal);
    assert_true(w->saga.step_dirty[1]); /* the store writes the kept signal */
    /* a second one before the step: already received */
    assert_int_equal(signal(w, false, NULL), SAGA_ESTALE);
    assert_int_equal(w->fx.stale_reason, SAGA_STALE_SIGNAL_RECEIVED);
    /* s0 succeeds: s1 starts, takes the kept signal at once, s2 starts */
    ok(w, 0);
    assert_true(has_event(w, "step.waiting"));
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_SUCCEEDED);
    assert_string_equal(json_string_value(json_object_get(w->saga.steps[1].output, "approver")), "bo");
    assert_int_equal(w->saga.steps[2].status, SAGA_STEP_RUNNING);
    world_free(w);
    /* a kept failure fails the step when it starts */
    w = world_new(signal_def(0));
    start(w);
    assert_int_equal(signal(w, false, NULL), 0);
    ok(w, 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_FAILED);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATING);
    world_free(w);
}

static void test_abort_cancels_a_waiting_signal_step(void **state) {
    world_t *w = world_new(signal_def(5000));
    start(w);
    ok(w, 0);
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_ABORT}), 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_CANCELLED);
    const saga_effect_t *c = find_fx(w, SAGA_FX_CLEAR_TIMER, 0);
    assert_non_null(c);
    assert_int_equal(c->slot, 1);
    assert_int_equal(signal(w, true, NULL), SAGA_ESTALE);
    assert_int_equal(w->fx.stale_reason, SAGA_STALE_NOT_WAITING);
    world_free(w);
}

/* ---- child sagas ------------------------------------------------------------- */

/* make_def(3) with s1 a child step running definition "kid". */
static saga_definition_t *child_def(void) {
    saga_definition_t *def = make_def(3, 0);
    saga_step_def_t *st = &def->steps[1];
    st->kind = SAGA_STEP_KIND_CHILD;
    snprintf(st->child, sizeof st->child, "kid");
    snprintf(st->compensation, sizeof st->compensation, "saga.compensate");
    st->topic[0] = st->action[0] = '\0';
    st->timeout_ms = 0;
    st->retry.max_attempts = 1;
    return def;
}

static const json_t *fx_msg(const world_t *w, const char *topic, int nth) {
    for (int i = 0; i < w->fx.count; i++)
        if (w->fx.items[i].kind == SAGA_FX_COMMAND && !strcmp(w->fx.items[i].topic, topic) && nth-- == 0)
            return w->fx.items[i].message;
    return NULL;
}

static void test_child_step_starts_waits_and_compensates_its_child(void **state) {
    world_t *w = world_new(child_def());
    w->cfg.partitions = 8;
    start(w);
    ok(w, 0);
    const json_t *st = fx_msg(w, "saga.start", 0);
    assert_non_null(st);
    assert_string_equal(json_string_value(json_object_get(st, "saga_id")), "saga-1.s1");
    assert_string_equal(json_string_value(json_object_get(st, "definition")), "kid");
    assert_string_equal(json_string_value(json_object_get(st, "message_id")), "saga-1/s1/action/1");
    const json_t *p = json_object_get(st, "parent");
    assert_string_equal(json_string_value(json_object_get(p, "saga_id")), "saga-1");
    assert_string_equal(json_string_value(json_object_get(p, "step")), "s1");
    assert_int_equal(json_integer_value(json_object_get(p, "attempt")), 1);
    const saga_effect_t *e = find_fx(w, SAGA_FX_COMMAND, 0);
    assert_string_equal(e->key, "saga-1.s1");
    assert_int_equal(e->partition, saga_partition_of("saga-1.s1", 8));
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_RUNNING);
    /* the child completed: its reply is a participant's */
    assert_int_equal(ok(w, 1), 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_SUCCEEDED);
    /* s2 fails: the completed child is asked to undo itself */
    assert_int_equal(reply(w, 2, SAGA_KIND_ACTION, 1, SAGA_REPLY_FAILURE), 0);
    const json_t *comp = fx_msg(w, "saga.control", 0);
    assert_non_null(comp);
    assert_string_equal(json_string_value(json_object_get(comp, "command")), "compensate");
    assert_string_equal(json_string_value(json_object_get(comp, "saga_id")), "saga-1.s1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(comp, "parent"), "attempt")), 1);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_COMPENSATING);
    assert_int_equal(reply(w, 1, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_SUCCESS), 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_COMPENSATED);
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "step"), "s0"); /* then s0, in reverse */
    world_free(w);
}

static void test_parent_abort_stops_a_running_child(void **state) {
    world_t *w = world_new(child_def());
    start(w);
    ok(w, 0);
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_ABORT, .reason = "stop"}), 0);
    const json_t *ab = fx_msg(w, "saga.control", 0);
    assert_non_null(ab);
    assert_string_equal(json_string_value(json_object_get(ab, "command")), "abort");
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATING);
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 1); /* s0 waits: the child is still in flight */
    /* the child compensated itself: a failure reply ends the step, s0 is compensated */
    assert_int_equal(reply(w, 1, SAGA_KIND_ACTION, 1, SAGA_REPLY_FAILURE), 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_FAILED);
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "kind"), "compensation");
    world_free(w);
}

/* A saga of make_def(2) started as the child of step "kid" of "mom". */
static world_t *child_world(void) {
    saga_definition_t *def = make_def(2, 0);
    world_t *w = world_new(def);
    w->saga.parent = json_pack("{s:s, s:s, s:i, s:i}", "saga_id", "mom", "step", "kid", "attempt", 1, "partition", 3);
    start(w);
    return w;
}

static const json_t *parent_reply(const world_t *w) {
    const json_t *r = fx_msg(w, "saga.replies", 0);
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "type")), "saga.reply");
    assert_string_equal(json_string_value(json_object_get(r, "saga_id")), "mom");
    assert_string_equal(json_string_value(json_object_get(r, "step")), "kid");
    for (int i = 0; i < w->fx.count; i++)
        if (w->fx.items[i].message == r) {
            assert_string_equal(w->fx.items[i].key, "mom");
            assert_int_equal(w->fx.items[i].partition, 3);
        }
    return r;
}

static void test_child_answers_its_parent(void **state) {
    world_t *w = child_world();
    ok(w, 0);
    assert_null(fx_msg(w, "saga.replies", 0)); /* not yet */
    ok(w, 1);
    const json_t *r = parent_reply(w);
    assert_string_equal(json_string_value(json_object_get(r, "kind")), "action");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "success");
    assert_int_equal(json_integer_value(json_object_get(r, "attempt")), 1);
    /* the parent compensates: the completed child undoes its steps in reverse, then answers */
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_COMPENSATE, .attempt = 1}), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATING);
    assert_string_equal(w->saga.error_code, "PARENT_COMPENSATING");
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "step"), "s1");
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_COMPENSATE, .attempt = 1}), SAGA_ESTALE); /* again */
    reply(w, 1, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_SUCCESS);
    reply(w, 0, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_SUCCESS);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATED);
    r = parent_reply(w);
    assert_string_equal(json_string_value(json_object_get(r, "kind")), "compensation");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "success");
    /* asked again (a later attempt): the same answer for that attempt */
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_COMPENSATE, .attempt = 2}), 0);
    r = parent_reply(w);
    assert_int_equal(json_integer_value(json_object_get(r, "attempt")), 2);
    world_free(w);
    /* a child that fails answers failure */
    w = child_world();
    reply(w, 0, SAGA_KIND_ACTION, 1, SAGA_REPLY_FAILURE);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATED);
    r = parent_reply(w);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "failure");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"), "code")), "E_TEST");
    world_free(w);
    /* a saga without a parent ignores a compensate */
    w = world_new(make_def(2, 0));
    start(w);
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_COMPENSATE, .attempt = 1}), SAGA_ESTALE);
    world_free(w);
}

static void test_child_ids(void **state) {
    char id[SAGA_ID_MAX], again[SAGA_ID_MAX];
    saga_child_id("o-1", "pay", id, sizeof id);
    assert_string_equal(id, "o-1.pay");
    char long_parent[128];
    memset(long_parent, 'p', 127);
    long_parent[127] = '\0';
    saga_child_id(long_parent, "pay", id, sizeof id);
    assert_true(strlen(id) < SAGA_ID_MAX);
    saga_child_id(long_parent, "pay", again, sizeof again);
    assert_string_equal(id, again); /* deterministic */
    saga_child_id(long_parent, "ship", again, sizeof again);
    assert_string_not_equal(id, again);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signal_step_waits_then_succeeds),
        cmocka_unit_test(test_signal_failure_compensates),
        cmocka_unit_test(test_signal_timeout_compensates),
        cmocka_unit_test(test_signal_before_its_step_is_kept),
        cmocka_unit_test(test_abort_cancels_a_waiting_signal_step),
        cmocka_unit_test(test_child_step_starts_waits_and_compensates_its_child),
        cmocka_unit_test(test_parent_abort_stops_a_running_child),
        cmocka_unit_test(test_child_answers_its_parent),
        cmocka_unit_test(test_child_ids),
    };
    int failed = cmocka_run_group_tests_name("engine_steps", tests, NULL, NULL);
    release_def();
    return failed;
}

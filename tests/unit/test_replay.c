/* Replay: a saga rebuilt from its lifecycle events (or history rows) equals
 * the engine's; until_ms gives the state at that time; missing or garbled
 * events are refused with a clear reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "replay.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"

static saga_definition_t the_def;

static void release_def(void) {
    for (int i = 0; i < the_def.step_count; i++) {
        json_decref(the_def.steps[i].payload);
        json_decref(the_def.steps[i].compensation_payload);
    }
    memset(&the_def, 0, sizeof the_def);
}

/* n sequential steps s0..s(n-1), each with compensation undo<i>. */
static const saga_definition_t *make_def(int n, int64_t timeout_ms) {
    release_def();
    snprintf(the_def.name, sizeof the_def.name, "replay_saga");
    the_def.version = 3;
    the_def.timeout_ms = timeout_ms;
    the_def.step_count = n;
    for (int i = 0; i < n; i++) {
        saga_step_def_t *s = &the_def.steps[i];
        snprintf(s->name, sizeof s->name, "s%d", i);
        snprintf(s->topic, sizeof s->topic, "topic%d", i);
        snprintf(s->action, sizeof s->action, "do%d", i);
        snprintf(s->compensation, sizeof s->compensation, "undo%d", i);
        s->payload = json_pack("{s:s}", "order", "${input.order_id}");
        s->timeout_ms = 1000;
        s->retry = (saga_retry_policy_t){3, 100, 2, 1000, SAGA_JITTER_FULL};
        s->compensation_retry = (saga_retry_policy_t){2, 200, 2, 1000, SAGA_JITTER_NONE};
        if (i > 0) s->after[0] = i - 1, s->after_count = 1;
    }
    return &the_def;
}

/* The engine plus every lifecycle event it emitted. */
typedef struct {
    saga_t saga;
    saga_effects_t fx;
    uint64_t rng;
    int64_t now;
    saga_engine_config_t cfg;
    json_t *events[256];
    int n;
} world_t;

static world_t W;

static world_t *world_new(const saga_definition_t *def) {
    memset(&W, 0, sizeof W);
    W.cfg.replies_topic = "saga.replies";
    W.now = 1700000000000;
    W.rng = 7;
    json_t *input = json_pack("{s:s, s:[i,i]}", "order_id", "o-1", "items", 1, 2);
    saga_init(&W.saga, "saga-r", def, input, "", W.now);
    json_decref(input);
    saga_effects_init(&W.fx);
    return &W;
}

static void world_free(world_t *w) {
    saga_effects_free(&w->fx);
    saga_clear(&w->saga);
    for (int i = 0; i < w->n; i++) json_decref(w->events[i]);
}

static int apply(world_t *w, saga_event_t ev) {
    char why[256];
    saga_effects_clear(&w->fx);
    int rc = saga_engine_apply(&w->cfg, &w->saga, &ev, w->now, &w->rng, &w->fx, why, sizeof why);
    for (int i = 0; rc == 0 && i < w->fx.count; i++)
        if (w->fx.items[i].kind == SAGA_FX_EVENT) w->events[w->n++] = json_incref(w->fx.items[i].message);
    return rc;
}

static void start(world_t *w) { assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_START}), 0); }

static void reply(world_t *w, int step, saga_command_kind_t kind, saga_reply_status_t st, const char *code) {
    json_t *out = json_pack("{s:i, s:s}", "n", step, "id", "x-1");
    int attempt = kind == SAGA_KIND_ACTION ? w->saga.steps[step].attempt : w->saga.steps[step].comp_attempt;
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_REPLY, .step = step, .command_kind = kind,
                                             .attempt = attempt, .reply_status = st, .output = out,
                                             .error_code = code, .error_message = code ? "went wrong" : NULL}),
                     0);
    json_decref(out);
}

static void timer(world_t *w, int slot, saga_timer_kind_t kind) {
    const saga_step_state_t *st = &w->saga.steps[slot];
    int attempt = st->status >= SAGA_STEP_COMPENSATING ? st->comp_attempt : st->attempt;
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_TIMER, .slot = slot, .timer_kind = kind,
                                             .timer_attempt = attempt}),
                     0);
}

/* Replays w's events (until) and checks the result equals `expect`. */
static void assert_replays_to(world_t *w, int64_t until, const saga_t *expect) {
    saga_t r;
    char err[300], diff[300];
    int rc = saga_replay(w->saga.def, w->saga.id, (const json_t *const *)w->events, w->n, until, &r, err, sizeof err);
    if (rc) fail_msg("replay: %s", err);
    if (!saga_equal(expect, &r, diff, sizeof diff)) fail_msg("replay differs: %s", diff);
    saga_clear(&r);
}

static void copy_saga(saga_t *dst, const saga_t *src) {
    *dst = *src;
    dst->input = json_deep_copy(src->input);
    for (int i = 0; i < SAGA_MAX_STEPS; i++) {
        dst->steps[i].output = json_deep_copy(src->steps[i].output);
        dst->steps[i].signal = json_deep_copy(src->steps[i].signal);
    }
}

static int replay_err(world_t *w, json_t **events, int n, char *err, size_t len) {
    saga_t r;
    int rc = saga_replay(w->saga.def, w->saga.id, (const json_t *const *)events, n, INT64_MAX, &r, err, len);
    saga_clear(&r);
    return rc;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_until_gives_the_state_at_that_time(void **state) {
    (void)state;
    world_t *w = world_new(make_def(3, 60000));
    start(w);
    int64_t t_start = w->now;
    w->now += 10;
    reply(w, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);
    saga_t mid;
    copy_saga(&mid, &w->saga);
    int64_t t_mid = w->now;
    w->now += 20;
    reply(w, 1, SAGA_KIND_ACTION, SAGA_REPLY_RETRY, "E_BUSY");
    w->now += 500;
    timer(w, 1, SAGA_TIMER_BACKOFF);
    w->now += 30;
    reply(w, 1, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);
    w->now += 40;
    reply(w, 2, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPLETED);

    assert_replays_to(w, INT64_MAX, &w->saga);
    assert_replays_to(w, t_mid, &mid);
    assert_replays_to(w, t_mid + 19, &mid); /* nothing happened in between */

    saga_t r;
    char err[200];
    assert_int_equal(saga_replay(w->saga.def, w->saga.id, (const json_t *const *)w->events, w->n, t_start - 1, &r,
                                 err, sizeof err),
                     SAGA_ENOTFOUND);
    assert_non_null(strstr(err, "no event at or before"));
    saga_clear(&r);

    /* the replayed mid state says what the admin API would show then */
    assert_int_equal(saga_replay(w->saga.def, w->saga.id, (const json_t *const *)w->events, w->n, t_mid, &r, err,
                                 sizeof err),
                     0);
    assert_int_equal(r.status, SAGA_STATUS_RUNNING);
    assert_int_equal(r.steps[0].status, SAGA_STEP_SUCCEEDED);
    assert_int_equal(r.steps[1].status, SAGA_STEP_RUNNING);
    assert_int_equal(r.steps[2].status, SAGA_STEP_PENDING);
    assert_int_equal(r.deadline_at, t_start + 60000);
    assert_int_equal(r.created_at, t_start);
    assert_int_equal(json_integer_value(json_object_get(r.steps[0].output, "n")), 0);
    saga_clear(&r);
    saga_clear(&mid);
    world_free(w);
}

static void test_events_in_any_order(void **state) {
    (void)state;
    world_t *w = world_new(make_def(2, 0));
    start(w);
    reply(w, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);
    reply(w, 1, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);
    for (int i = 0; i < w->n / 2; i++) {
        json_t *t = w->events[i];
        w->events[i] = w->events[w->n - 1 - i];
        w->events[w->n - 1 - i] = t;
    }
    assert_replays_to(w, INT64_MAX, &w->saga);
    world_free(w);
}

static void test_compensated_saga(void **state) {
    (void)state;
    world_t *w = world_new(make_def(4, 0));
    start(w);
    w->now += 5;
    reply(w, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);
    w->now += 5;
    timer(w, 1, SAGA_TIMER_STEP_TIMEOUT); /* outcome unknown from now on */
    w->now += 100;
    timer(w, 1, SAGA_TIMER_BACKOFF);
    w->now += 5;
    reply(w, 1, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);
    w->now += 5;
    reply(w, 2, SAGA_KIND_ACTION, SAGA_REPLY_FAILURE, "OUT_OF_STOCK");
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATING);
    assert_replays_to(w, INT64_MAX, &w->saga);
    w->now += 5;
    reply(w, 1, SAGA_KIND_COMPENSATION, SAGA_REPLY_RETRY, "E_BUSY");
    w->now += 300;
    timer(w, 1, SAGA_TIMER_BACKOFF);
    reply(w, 1, SAGA_KIND_COMPENSATION, SAGA_REPLY_SUCCESS, NULL);
    w->now += 5;
    reply(w, 0, SAGA_KIND_COMPENSATION, SAGA_REPLY_SUCCESS, NULL);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATED);

    saga_t r;
    char err[200];
    assert_int_equal(saga_replay(w->saga.def, w->saga.id, (const json_t *const *)w->events, w->n, INT64_MAX, &r,
                                 err, sizeof err),
                     0);
    char diff[300];
    if (!saga_equal(&w->saga, &r, diff, sizeof diff)) fail_msg("%s", diff);
    assert_int_equal(r.status, SAGA_STATUS_COMPENSATED);
    assert_string_equal(r.error_code, "OUT_OF_STOCK");
    assert_true(r.steps[1].outcome_unknown);
    assert_int_equal(r.steps[1].attempt, 2);
    assert_int_equal(r.steps[1].comp_attempt, 2);
    assert_int_equal(r.steps[1].completion_order, 2);
    assert_int_equal(r.steps[2].status, SAGA_STEP_FAILED);
    assert_string_equal(r.steps[2].error_code, "OUT_OF_STOCK");
    assert_int_equal(r.steps[3].status, SAGA_STEP_CANCELLED);
    assert_int_equal(r.steps[3].finished_at, 0);
    saga_clear(&r);
    world_free(w);
}

static void test_compensation_failed_then_operator_retry(void **state) {
    (void)state;
    world_t *w = world_new(make_def(2, 0));
    start(w);
    reply(w, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);
    w->now += 10;
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_ABORT, .reason = "customer called"}), 0);
    reply(w, 1, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL); /* was in flight: now compensated too */
    reply(w, 1, SAGA_KIND_COMPENSATION, SAGA_REPLY_SUCCESS, NULL);
    for (int a = 0; a < 2; a++) {
        w->now += 1000;
        reply(w, 0, SAGA_KIND_COMPENSATION, SAGA_REPLY_FAILURE, "LEDGER_DOWN");
        if (a == 0) timer(w, 0, SAGA_TIMER_BACKOFF);
    }
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATION_FAILED);
    assert_replays_to(w, INT64_MAX, &w->saga);
    saga_t failed;
    copy_saga(&failed, &w->saga);
    int64_t t_failed = w->now;

    w->now += 60000;
    assert_int_equal(apply(w, (saga_event_t){.kind = SAGA_EV_RETRY, .reason = "ledger back"}), 0);
    assert_int_equal(w->saga.steps[0].comp_budget_base, 2);
    assert_replays_to(w, INT64_MAX, &w->saga);
    w->now += 10;
    reply(w, 0, SAGA_KIND_COMPENSATION, SAGA_REPLY_SUCCESS, NULL);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATED);
    assert_replays_to(w, INT64_MAX, &w->saga);
    assert_replays_to(w, t_failed, &failed);

    saga_t r;
    char err[200];
    assert_int_equal(saga_replay(w->saga.def, w->saga.id, (const json_t *const *)w->events, w->n, t_failed, &r, err,
                                 sizeof err),
                     0);
    assert_int_equal(r.status, SAGA_STATUS_COMPENSATION_FAILED);
    assert_int_equal(r.steps[0].status, SAGA_STEP_COMPENSATION_FAILED);
    assert_string_equal(r.steps[0].error_code, "LEDGER_DOWN");
    assert_string_equal(r.error_code, "ABORTED");
    assert_string_equal(r.error_message, "customer called");
    saga_clear(&r);
    saga_clear(&failed);
    world_free(w);
}

/* A participant may answer "retry" with the code STEP_TIMEOUT: only a real
 * timeout makes the outcome unknown (the detail says which). */
static void test_outcome_unknown_comes_from_the_detail(void **state) {
    (void)state;
    world_t *w = world_new(make_def(1, 0));
    start(w);
    reply(w, 0, SAGA_KIND_ACTION, SAGA_REPLY_RETRY, "STEP_TIMEOUT");
    assert_false(w->saga.steps[0].outcome_unknown);
    assert_replays_to(w, INT64_MAX, &w->saga);
    timer(w, 0, SAGA_TIMER_BACKOFF);
    timer(w, 0, SAGA_TIMER_STEP_TIMEOUT);
    assert_true(w->saga.steps[0].outcome_unknown);
    assert_replays_to(w, INT64_MAX, &w->saga);
    /* history written before the flag existed: the code decides */
    json_t *last = w->events[w->n - 1];
    assert_string_equal(json_string_value(json_object_get(last, "event")), "step.retry_scheduled");
    json_object_del(json_object_get(last, "detail"), "outcome_unknown");
    assert_replays_to(w, INT64_MAX, &w->saga);
    world_free(w);
}

static void test_missing_event_is_refused(void **state) {
    (void)state;
    world_t *w = world_new(make_def(3, 0));
    start(w);
    reply(w, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);
    reply(w, 1, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);
    char err[300];
    json_t *gap[64];
    int n = 0;
    for (int i = 0; i < w->n; i++)
        if (i != 2) gap[n++] = w->events[i];
    assert_int_equal(replay_err(w, gap, n, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "missing event: expected seq 3"));
    assert_non_null(strstr(err, "seq 4"));

    /* a duplicate */
    gap[2] = w->events[1];
    assert_int_equal(replay_err(w, gap, n, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "duplicate"));

    /* no saga.started */
    assert_int_equal(replay_err(w, w->events + 1, w->n - 1, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "missing event: expected seq 1"));

    /* nothing at all */
    assert_int_equal(replay_err(w, NULL, 0, err, sizeof err), SAGA_ENOTFOUND);
    world_free(w);
}

/* Replays after breaking event `idx` with `mutate`; returns the error text. */
static const char *garble(world_t *w, int idx, const char *key, json_t *value, int expect_rc) {
    static char err[300];
    json_t *copy[64];
    for (int i = 0; i < w->n; i++) copy[i] = json_deep_copy(w->events[i]);
    if (key) {
        const char *dot = strchr(key, '.');
        json_t *obj = copy[idx];
        if (dot) {
            char head[32];
            snprintf(head, sizeof head, "%.*s", (int)(dot - key), key);
            obj = json_object_get(obj, head);
            key = dot + 1;
        }
        if (value) json_object_set_new(obj, key, value);
        else json_object_del(obj, key);
    } else {
        json_decref(copy[idx]);
        copy[idx] = value;
    }
    assert_int_equal(replay_err(w, copy, w->n, err, sizeof err), expect_rc);
    for (int i = 0; i < w->n; i++) json_decref(copy[i]);
    return err;
}

static void test_garbled_events_are_refused(void **state) {
    (void)state;
    world_t *w = world_new(make_def(2, 0));
    start(w);                                                     /* 1 saga.started, 2 step.started */
    reply(w, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);      /* 3 step.succeeded, 4 step.started */
    reply(w, 1, SAGA_KIND_ACTION, SAGA_REPLY_FAILURE, "E_X");     /* 5 step.failed, 6 compensating, 7 comp.started */
    assert_int_equal(w->n, 7);
    const char *e;
    e = garble(w, 2, "detail.output", NULL, SAGA_EPARSE);
    assert_non_null(strstr(e, "event seq 3 (step.succeeded): detail.output missing"));
    e = garble(w, 1, "detail.attempt", json_string("one"), SAGA_EPARSE);
    assert_non_null(strstr(e, "detail.attempt"));
    e = garble(w, 3, "detail.attempt", json_integer(5), SAGA_EPARSE);
    assert_non_null(strstr(e, "attempt 5 does not follow attempt 0"));
    e = garble(w, 2, "event", json_string("step.exploded"), SAGA_EPARSE);
    assert_non_null(strstr(e, "unknown event name"));
    e = garble(w, 2, "step", json_string("nope"), SAGA_EPARSE);
    assert_non_null(strstr(e, "step 'nope' is not in replay_saga v3"));
    e = garble(w, 2, "step", NULL, SAGA_EPARSE);
    assert_non_null(strstr(e, "'step' missing"));
    e = garble(w, 4, "at", json_string("yesterday"), SAGA_EPARSE);
    assert_non_null(strstr(e, "'at'"));
    e = garble(w, 4, "detail", json_string("{}"), SAGA_EPARSE);
    assert_non_null(strstr(e, "'detail' is not an object"));
    e = garble(w, 5, "status", json_string("completed"), SAGA_EPARSE);
    assert_non_null(strstr(e, "status 'completed' does not match"));
    e = garble(w, 2, "step_status", json_string("failed"), SAGA_EPARSE);
    assert_non_null(strstr(e, "step_status 'failed' does not match"));
    e = garble(w, 0, "saga_id", json_string("other"), SAGA_EPARSE);
    assert_non_null(strstr(e, "saga_id 'other'"));
    e = garble(w, 0, "version", json_integer(2), SAGA_EPARSE);
    assert_non_null(strstr(e, "version is not 3"));
    e = garble(w, 0, "detail.input", NULL, SAGA_EPARSE);
    assert_non_null(strstr(e, "detail.input missing"));
    e = garble(w, 6, NULL, json_string("not an event"), SAGA_EPARSE);
    assert_non_null(strstr(e, "event #6"));
    e = garble(w, 5, "event", json_string("saga.compensated"), SAGA_EPARSE);
    assert_non_null(strstr(e, "the saga cannot go from running to compensated by saga.compensated"));
    e = garble(w, 6, "event", json_string("saga.completed"), SAGA_EPARSE);
    if (!strstr(e, "a saga event names step 's0'")) fail_msg("%s", e);
    e = garble(w, 1, "event", json_string("compensation.skipped"), SAGA_EPARSE);
    assert_non_null(strstr(e, "step 's0' cannot go from pending to compensated by compensation.skipped"));
    /* without deadline_at (older history) the definition's timeout is used */
    garble(w, 0, "detail.deadline_at", NULL, 0);
    world_free(w);
}

static void test_history_rows(void **state) {
    (void)state;
    world_t *w = world_new(make_def(2, 30000));
    start(w);
    reply(w, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);
    reply(w, 1, SAGA_KIND_ACTION, SAGA_REPLY_RETRY, NULL);
    /* what the store keeps: (saga_id, seq, at, event, step, status, detail text) */
    json_t *rows[64];
    char err[300];
    for (int i = 0; i < w->n; i++) {
        const json_t *e = w->events[i];
        const char *step = json_string_value(json_object_get(e, "step"));
        int64_t at;
        assert_int_equal(saga_parse_time(json_string_value(json_object_get(e, "at")), &at), 0);
        char *detail = json_dumps(json_object_get(e, "detail"), JSON_COMPACT);
        rows[i] = saga_history_row_event(w->saga.id, json_integer_value(json_object_get(e, "seq")), at,
                                         json_string_value(json_object_get(e, "event")), step,
                                         json_string_value(json_object_get(e, step ? "step_status" : "status")),
                                         detail, err, sizeof err);
        free(detail);
        assert_non_null(rows[i]);
    }
    saga_t r;
    assert_int_equal(saga_replay(w->saga.def, w->saga.id, (const json_t *const *)rows, w->n, INT64_MAX, &r, err,
                                 sizeof err),
                     0);
    char diff[300];
    if (!saga_equal(&w->saga, &r, diff, sizeof diff)) fail_msg("%s", diff);
    saga_clear(&r);
    for (int i = 0; i < w->n; i++) json_decref(rows[i]);

    assert_null(saga_history_row_event("saga-r", 4, 0, "step.failed", "s0", "failed", "{\"code\":", err, sizeof err));
    assert_non_null(strstr(err, "history row seq 4 (step.failed): detail is not a JSON object"));
    assert_null(saga_history_row_event("saga-r", 4, 0, "step.failed", "s0", "failed", "[1]", err, sizeof err));
    json_t *ev = saga_history_row_event("saga-r", 1, 0, "saga.completed", NULL, "completed", NULL, err, sizeof err);
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_object_get(ev, "status")), "completed");
    assert_true(json_is_object(json_object_get(ev, "detail")));
    json_decref(ev);
    world_free(w);
}

static void test_saga_equal_names_the_first_difference(void **state) {
    (void)state;
    world_t *w = world_new(make_def(2, 0));
    start(w);
    reply(w, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);
    saga_t c;
    copy_saga(&c, &w->saga);
    char diff[200];
    assert_true(saga_equal(&w->saga, &c, diff, sizeof diff));
    c.steps[1].attempt = 9;
    assert_false(saga_equal(&w->saga, &c, diff, sizeof diff));
    assert_string_equal(diff, "steps[1] (s1).attempt: 1 != 9");
    c.steps[1].attempt = 1;
    json_object_set_new(c.steps[0].output, "n", json_integer(5));
    assert_false(saga_equal(&w->saga, &c, diff, sizeof diff));
    assert_string_equal(diff, "steps[0] (s0).output differs");
    c.seq++;
    assert_false(saga_equal(&w->saga, &c, diff, sizeof diff));
    assert_non_null(strstr(diff, "seq: "));
    saga_clear(&c);
    world_free(w);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_until_gives_the_state_at_that_time),
        cmocka_unit_test(test_events_in_any_order),
        cmocka_unit_test(test_compensated_saga),
        cmocka_unit_test(test_compensation_failed_then_operator_retry),
        cmocka_unit_test(test_outcome_unknown_comes_from_the_detail),
        cmocka_unit_test(test_missing_event_is_refused),
        cmocka_unit_test(test_garbled_events_are_refused),
        cmocka_unit_test(test_history_rows),
        cmocka_unit_test(test_saga_equal_names_the_first_difference),
    };
    int failed = cmocka_run_group_tests_name("replay", tests, NULL, NULL);
    release_def();
    return failed;
}

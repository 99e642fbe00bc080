/* The pure engine and its output limits: the message size limit (issue 13:
 * a command, a compensation or an event over the limit, and a command the
 * broker refused for good, fail their step at once, as a reply would) and
 * the events level (which lifecycle events go to saga.events). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "test_engine_fixture.h"

static const saga_effect_t *find_event(const world_t *w, const char *name) {
    for (int i = 0; i < w->fx.count; i++)
        if (w->fx.items[i].kind == SAGA_FX_EVENT &&
            strcmp(json_string_value(json_object_get(w->fx.items[i].message, "event")), name) == 0)
            return &w->fx.items[i];
    return NULL;
}

static int reply_output(world_t *w, int step, json_t *out) {
    int rc = apply(w, (saga_event_t){.kind = SAGA_EV_REPLY, .step = step, .command_kind = SAGA_KIND_ACTION,
                                     .attempt = w->saga.steps[step].attempt, .reply_status = SAGA_REPLY_SUCCESS,
                                     .output = out});
    json_decref(out);
    return rc;
}

static json_t *big_output(size_t n) {
    char *pad = malloc(n + 1);
    memset(pad, 'x', n);
    pad[n] = '\0';
    json_t *o = json_pack("{s:s, s:i}", "big", pad, "n", 7);
    free(pad);
    return o;
}

/* A command over the limit fails its step at once: PAYLOAD_TOO_LARGE naming
 * the step and the size, no timer, no retry, then the usual compensation. */
static void test_oversized_command_fails_its_step_at_once(void **state) {
    saga_definition_t *def = make_def(3, 0);
    json_decref(def->steps[1].payload);
    def->steps[1].payload = json_pack("{s:s, s:s, s:s}", "a", "${steps.s0.output.big}", "b",
                                      "${steps.s0.output.big}", "c", "${steps.s0.output.big}");
    world_t *w = world_new(def);
    w->cfg.max_message_bytes = 8192;
    start(w);
    const saga_effect_t *c = find_fx(w, SAGA_FX_COMMAND, 0);
    assert_non_null(c->text); /* the bytes to publish come with the command */
    char *dump = saga_json_dump(c->message);
    assert_string_equal(c->text, dump);
    saga_free(dump);
    assert_int_equal(reply_output(w, 0, big_output(3000)), 0); /* 3 x 3000 bytes: over 8192 - 1024 */
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_FAILED);
    assert_int_equal(w->saga.steps[1].attempt, 1);
    assert_string_equal(w->saga.steps[1].error_code, "PAYLOAD_TOO_LARGE");
    assert_non_null(strstr(w->saga.steps[1].error_message, "step 's1'"));
    assert_non_null(strstr(w->saga.steps[1].error_message, "over the 7168-byte message limit"));
    assert_string_equal(w->saga.error_code, "PAYLOAD_TOO_LARGE");
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATING);
    for (int i = 0; i < w->fx.count; i++) /* no timeout armed for s1: nothing was sent */
        if (w->fx.items[i].kind == SAGA_FX_SET_TIMER) assert_int_not_equal(w->fx.items[i].slot, 1);
    const saga_effect_t *comp = find_fx(w, SAGA_FX_COMMAND, 0);
    assert_non_null(comp);
    assert_string_equal(cmd_str(comp, "step"), "s0");
    assert_string_equal(cmd_str(comp, "kind"), "compensation");
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 1);
    world_free(w);
}

/* The same payload fits without a limit (the check is the config's alone). */
static void test_no_limit_no_check(void **state) {
    saga_definition_t *def = make_def(2, 0);
    json_decref(def->steps[1].payload);
    def->steps[1].payload = json_pack("{s:s}", "a", "${steps.s0.output.big}");
    world_t *w = world_new(def);
    start(w);
    assert_null(find_fx(w, SAGA_FX_COMMAND, 0)->text);
    assert_int_equal(reply_output(w, 0, big_output(20000)), 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_RUNNING);
    world_free(w);
}

/* A compensation over the limit cannot be sent either: compensation_failed
 * with PAYLOAD_TOO_LARGE and an alert, at once. An event over the limit is
 * published truncated, with a marker; its history (the message) is whole. */
static void test_oversized_compensation_and_event(void **state) {
    world_t *w = world_new(make_def(2, 0));
    w->cfg.max_message_bytes = 8192;
    start(w);
    assert_int_equal(reply_output(w, 0, big_output(10000)), 0); /* s1's payload does not use it */
    const saga_effect_t *ev = find_event(w, "step.succeeded");
    assert_non_null(ev);
    assert_non_null(ev->text);
    assert_true(strlen(ev->text) <= 8192 - 1024);
    json_t *pub = json_loads(ev->text, 0, NULL);
    assert_non_null(pub);
    assert_true(json_integer_value(json_object_get(pub, "truncated")) > 10000);
    json_t *detail = json_object_get(pub, "detail");
    assert_true(json_integer_value(json_object_get(json_object_get(detail, "output"), "truncated")) > 10000);
    assert_int_equal(json_integer_value(json_object_get(detail, "attempt")), 1); /* small members stay */
    assert_string_equal(json_string_value(json_object_get(pub, "event")), "step.succeeded");
    json_decref(pub);
    /* the history keeps the whole output */
    assert_int_equal(json_string_length(json_object_get(
                         json_object_get(json_object_get(ev->message, "detail"), "output"), "big")), 10000);
    /* s1 fails: s0's compensation would carry its 10 KB output (action_output) */
    assert_int_equal(reply(w, 1, SAGA_KIND_ACTION, 1, SAGA_REPLY_FAILURE), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATION_FAILED);
    assert_int_equal(w->saga.steps[0].status, SAGA_STEP_COMPENSATION_FAILED);
    assert_string_equal(w->saga.steps[0].error_code, "PAYLOAD_TOO_LARGE");
    assert_int_equal(count_fx(w, SAGA_FX_ALERT), 1);
    assert_int_equal(count_fx(w, SAGA_FX_COMMAND), 0);
    world_free(w);
}

static int undeliverable(world_t *w, int step, saga_command_kind_t kind, int attempt) {
    return apply(w, (saga_event_t){.kind = SAGA_EV_UNDELIVERABLE, .step = step, .command_kind = kind,
                                   .attempt = attempt, .error_code = "COMMAND_REJECTED",
                                   .error_message = "topic1: Broker: Message size too large"});
}

/* The broker refused a command for good: the step fails now (no timeout,
 * no resend), the saga compensates; a refusal of another attempt or of a
 * finished step changes nothing. */
static void test_undeliverable_command_fails_the_step(void **state) {
    world_t *w = world_new(make_def(3, 0));
    start(w);
    ok(w, 0);
    assert_int_equal(undeliverable(w, 1, SAGA_KIND_ACTION, 2), SAGA_ESTALE); /* other attempt */
    assert_int_equal(undeliverable(w, 0, SAGA_KIND_ACTION, 1), SAGA_ESTALE); /* s0 succeeded */
    assert_int_equal(undeliverable(w, 1, SAGA_KIND_ACTION, 1), 0);
    assert_int_equal(w->saga.steps[1].status, SAGA_STEP_FAILED);
    assert_string_equal(w->saga.steps[1].error_code, "COMMAND_REJECTED");
    assert_non_null(strstr(w->saga.steps[1].error_message, "step 's1'"));
    assert_non_null(strstr(w->saga.steps[1].error_message, "Message size too large"));
    assert_string_equal(w->saga.error_code, "COMMAND_REJECTED");
    const saga_effect_t *t = find_fx(w, SAGA_FX_CLEAR_TIMER, 0);
    assert_non_null(t);
    assert_int_equal(t->slot, 1);
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "kind"), "compensation");
    /* s0's compensation refused for good too: compensation_failed, alerted */
    assert_int_equal(undeliverable(w, 0, SAGA_KIND_COMPENSATION, 1), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATION_FAILED);
    assert_int_equal(w->saga.steps[0].status, SAGA_STEP_COMPENSATION_FAILED);
    assert_int_equal(count_fx(w, SAGA_FX_ALERT), 1);
    assert_int_equal(undeliverable(w, 0, SAGA_KIND_COMPENSATION, 1), SAGA_ESTALE);
    world_free(w);
}

/* An earlier attempt timed out (it may have run): the refused retry leaves
 * the step unknown, and it is compensated. */
/* The history rows of the last apply, as the store writes them. */
static int keep_history(world_t *w, json_t **rows, int n) {
    for (int i = 0; i < w->fx.count; i++) {
        const saga_effect_t *e = &w->fx.items[i];
        if (e->kind != SAGA_FX_EVENT) continue;
        const json_t *ev = e->message;
        const char *status = json_string_value(json_object_get(ev, "step_status"));
        char *detail = saga_json_dump(json_object_get(ev, "detail")), err[256] = "";
        rows[n] = saga_history_row_event(w->saga.id, json_integer_value(json_object_get(ev, "seq")), w->now,
                                         json_string_value(json_object_get(ev, "event")),
                                         json_string_value(json_object_get(ev, "step")),
                                         status ? status : json_string_value(json_object_get(ev, "status")), detail,
                                         err, sizeof err);
        assert_non_null(rows[n]);
        n++;
        saga_free(detail);
    }
    return n;
}

static void test_undeliverable_retry_after_timeout_is_compensated(void **state) {
    world_t *w = world_new(make_def(2, 0));
    json_t *rows[64];
    int n = 0;
    start(w);
    n = keep_history(w, rows, n);
    assert_int_equal(timer(w, 0, SAGA_TIMER_STEP_TIMEOUT, 1), 0);
    n = keep_history(w, rows, n);
    assert_int_equal(w->saga.steps[0].status, SAGA_STEP_RETRY_WAIT);
    assert_int_equal(timer(w, 0, SAGA_TIMER_BACKOFF, 1), 0);
    n = keep_history(w, rows, n);
    assert_int_equal(w->saga.steps[0].attempt, 2);
    assert_int_equal(undeliverable(w, 0, SAGA_KIND_ACTION, 2), 0);
    n = keep_history(w, rows, n);
    assert_int_equal(w->saga.steps[0].status, SAGA_STEP_COMPENSATING);
    assert_string_equal(cmd_str(find_fx(w, SAGA_FX_COMMAND, 0), "kind"), "compensation");
    assert_true(has_event(w, "step.unknown"));
    assert_int_equal(undeliverable(w, 0, SAGA_KIND_COMPENSATION, 1), 0); /* and its compensation refused too */
    n = keep_history(w, rows, n);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATION_FAILED);
    /* the history rebuilds the saga exactly (GET /v1/sagas/{id}?at=) */
    saga_t back;
    char err[256] = "", diff[256] = "";
    assert_int_equal(saga_replay(w->saga.def, w->saga.id, (const json_t *const *)rows, n, INT64_MAX, &back, err,
                                 sizeof err), 0);
    assert_true(saga_equal(&w->saga, &back, diff, sizeof diff));
    saga_clear(&back);
    for (int i = 0; i < n; i++) json_decref(rows[i]);
    world_free(w);
}

/* Events of the last apply: how many, and how many published. */
static void count_events(const world_t *w, int *all, int *published) {
    *all = *published = 0;
    for (int i = 0; i < w->fx.count; i++) {
        if (w->fx.items[i].kind != SAGA_FX_EVENT) continue;
        (*all)++;
        if (!w->fx.items[i].unpublished) (*published)++;
    }
}

static void test_events_level(void **state) {
    (void)state;
    for (int level = SAGA_EVENTS_ALL; level <= SAGA_EVENTS_TERMINAL; level++) {
        world_t *w = world_new(make_def(2, 0));
        w->cfg.events_level = (saga_events_level_t)level;
        int all = 0, pub = 0, a, p;
        assert_int_equal(start(w), 0);
        count_events(w, &a, &p);
        all += a, pub += p;
        /* saga.started is published at levels all and saga, step.started only at all */
        assert_int_equal(p, level == SAGA_EVENTS_ALL ? a : level == SAGA_EVENTS_SAGA ? 1 : 0);
        assert_int_equal(ok(w, 0), 0);
        count_events(w, &a, &p);
        all += a, pub += p;
        assert_int_equal(ok(w, 1), 0);
        count_events(w, &a, &p);
        all += a, pub += p;
        assert_int_equal(w->saga.status, SAGA_STATUS_COMPLETED);
        const saga_effect_t *done = find_event(w, "saga.completed");
        assert_non_null(done);
        assert_false(done->unpublished); /* every level publishes the terminal event */
        if (level == SAGA_EVENTS_ALL) assert_int_equal(pub, all);
        if (level == SAGA_EVENTS_SAGA) assert_int_equal(pub, 2); /* saga.started, saga.completed */
        if (level == SAGA_EVENTS_TERMINAL) assert_int_equal(pub, 1);
        assert_true(all >= 6); /* the history has every event at every level */
        world_free(w);
    }
    /* a compensated saga: saga.compensated is terminal, saga.compensating is not */
    world_t *w = world_new(make_def(2, 0));
    w->cfg.events_level = SAGA_EVENTS_TERMINAL;
    start(w);
    ok(w, 0);
    assert_int_equal(reply(w, 1, SAGA_KIND_ACTION, 1, SAGA_REPLY_FAILURE), 0);
    assert_true(find_event(w, "saga.compensating")->unpublished);
    assert_int_equal(reply(w, 0, SAGA_KIND_COMPENSATION, 1, SAGA_REPLY_SUCCESS), 0);
    assert_int_equal(w->saga.status, SAGA_STATUS_COMPENSATED);
    assert_false(find_event(w, "saga.compensated")->unpublished);
    world_free(w);
    assert_int_equal(saga_events_level_parse("terminal"), SAGA_EVENTS_TERMINAL);
    assert_int_equal(saga_events_level_parse("saga"), SAGA_EVENTS_SAGA);
    assert_int_equal(saga_events_level_parse("all"), SAGA_EVENTS_ALL);
    assert_int_equal(saga_events_level_parse("verbose"), -1);
    assert_int_equal(saga_events_level_parse(NULL), -1);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oversized_command_fails_its_step_at_once),
        cmocka_unit_test(test_no_limit_no_check),
        cmocka_unit_test(test_oversized_compensation_and_event),
        cmocka_unit_test(test_undeliverable_command_fails_the_step),
        cmocka_unit_test(test_undeliverable_retry_after_timeout_is_compensated),
        cmocka_unit_test(test_events_level),
    };
    int failed = cmocka_run_group_tests_name("engine_limits", tests, NULL, NULL);
    release_def();
    return failed;
}

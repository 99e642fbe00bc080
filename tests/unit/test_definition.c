/* Saga definition loader: typed values, defaults, every error class with
 * its JSON pointer and message (hash, registry, directory loading and
 * allocation failure: test_definition_registry.c). Fixtures come from
 * $SAGA_SOURCE_DIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_definition_fixture.h"
#include "test_filter.h"

#include "definition.h"
#include "saga_alloc.h"
#include "saga_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers (more in test_definition_fixture.c) ---- */

static saga_definition_t *parse_fixture(const char *rel, saga_def_errors_t *errs) {
    size_t len = 0;
    char *text = read_fixture(rel, &len);
    memset(errs, 0, sizeof *errs);
    saga_definition_t *def = saga_definition_parse(text, len, errs);
    saga_free(text);
    return def;
}

static void dump_errors(const saga_def_errors_t *errs) {
    for (int i = 0; i < errs->count && i < 32; i++)
        fprintf(stderr, "  [%d] %s: %s\n", i, errs->items[i].pointer, errs->items[i].message);
}

/* Asserts one error with exactly this pointer and message. */
static void expect_error(const saga_def_errors_t *errs, const char *pointer, const char *message) {
    for (int i = 0; i < errs->count && i < 32; i++)
        if (strcmp(errs->items[i].pointer, pointer) == 0 && strcmp(errs->items[i].message, message) == 0)
            return;
    dump_errors(errs);
    fail_msg("no error '%s: %s'", pointer, message);
}

/* A one-step definition with `step_extra` spliced into the step object
 * and `saga_extra` into the saga object. */
static saga_definition_t *one_step(const char *saga_extra, const char *step_extra, saga_def_errors_t *errs) {
    char text[4096];
    snprintf(text, sizeof text,
             "{\"name\":\"s\",\"version\":1%s%s,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"%s%s}]}",
             *saga_extra ? "," : "", saga_extra, *step_extra ? "," : "", step_extra);
    return parse_str(text, errs);
}

/* Expects the one-step definition to fail with exactly one error. */
static void expect_only_error(const char *saga_extra, const char *step_extra, const char *pointer,
                              const char *message) {
    saga_def_errors_t errs;
    saga_definition_t *def = one_step(saga_extra, step_extra, &errs);
    if (def) saga_definition_free(&def);
    if (errs.count != 1) dump_errors(&errs);
    assert_int_equal(errs.count, 1);
    assert_null(def);
    expect_error(&errs, pointer, message);
}
/* ---- the example ---- */

static void test_example_loads(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("sagas/order_fulfillment.json", &errs);
    if (!def) dump_errors(&errs);
    assert_non_null(def);
    assert_string_equal(def->name, "order_fulfillment");
    assert_int_equal(def->version, 1);
    assert_int_equal(def->timeout_ms, 5 * 60 * 1000);
    assert_true(strlen(def->description) > 0);
    assert_int_equal(def->step_count, 4);
    assert_string_equal(def->steps[0].name, "create_order");
    assert_string_equal(def->steps[0].topic, "order.commands");
    assert_string_equal(def->steps[0].action, "order.create");
    assert_string_equal(def->steps[0].compensation, "order.cancel");
    assert_string_equal(def->steps[3].compensation, "");
    assert_int_equal(saga_definition_step_index(def, "charge_payment"), 2);
    assert_int_equal(saga_definition_step_index(def, "nope"), -1);
    assert_int_equal(strlen(def->hash), 64);
    assert_non_null(def->source);
    saga_definition_free(&def);
    assert_null(def);
}

static void test_example_defaults_and_merge(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("sagas/order_fulfillment.json", &errs);
    assert_non_null(def);
    /* defaults.retry applies to every step ... */
    const saga_retry_policy_t *r0 = &def->steps[0].retry;
    assert_int_equal(r0->max_attempts, 5);
    assert_int_equal(r0->initial_backoff_ms, 100);
    assert_true(r0->multiplier == 2.0);
    assert_int_equal(r0->max_backoff_ms, 10000);
    assert_int_equal(r0->jitter, SAGA_JITTER_FULL);
    /* ... and a partial step retry merges over it */
    const saga_retry_policy_t *r2 = &def->steps[2].retry;
    assert_int_equal(r2->max_attempts, 3);
    assert_int_equal(r2->initial_backoff_ms, 100);
    assert_int_equal(r2->max_backoff_ms, 10000);
    /* compensation retry: built-in defaults */
    const saga_retry_policy_t *c = &def->steps[1].compensation_retry;
    assert_int_equal(c->max_attempts, 10);
    assert_int_equal(c->initial_backoff_ms, 200);
    assert_true(c->multiplier == 2.0);
    assert_int_equal(c->max_backoff_ms, 30000);
    assert_int_equal(c->jitter, SAGA_JITTER_FULL);
    for (int i = 0; i < 4; i++) assert_int_equal(def->steps[i].timeout_ms, 10000);
    saga_definition_free(&def);
}

static void test_example_after_defaults_to_previous(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("sagas/order_fulfillment.json", &errs);
    assert_non_null(def);
    assert_int_equal(def->steps[0].after_count, 0);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(def->steps[i].after_count, 1);
        assert_int_equal(def->steps[i].after[0], i - 1);
    }
    saga_definition_free(&def);
}

static void test_example_payloads(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("sagas/order_fulfillment.json", &errs);
    assert_non_null(def);
    assert_true(json_is_object(def->steps[0].payload));
    assert_string_equal(json_string_value(json_object_get(def->steps[0].payload, "order_id")),
                        "${input.order_id}");
    assert_null(def->steps[0].compensation_payload);
    saga_definition_free(&def);
}

static void test_builtin_defaults(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("tests/fixtures/definitions/good/minimal.json", &errs);
    assert_non_null(def);
    const saga_step_def_t *s = &def->steps[0];
    assert_int_equal(def->timeout_ms, 0);
    assert_string_equal(def->description, "");
    assert_int_equal(s->timeout_ms, 10000);
    assert_int_equal(s->retry.max_attempts, 3);
    assert_int_equal(s->retry.initial_backoff_ms, 100);
    assert_true(s->retry.multiplier == 2.0);
    assert_int_equal(s->retry.max_backoff_ms, 10000);
    assert_int_equal(s->retry.jitter, SAGA_JITTER_FULL);
    assert_int_equal(s->compensation_retry.max_attempts, 10);
    assert_int_equal(s->compensation_retry.max_backoff_ms, 30000);
    assert_true(json_is_object(s->payload));
    assert_int_equal(json_object_size(s->payload), 0);
    assert_null(s->compensation_payload);
    assert_string_equal(s->compensation, "");
    saga_definition_free(&def);
}

static void test_parallel_steps(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("tests/fixtures/definitions/good/parallel.json", &errs);
    if (!def) dump_errors(&errs);
    assert_non_null(def);
    assert_string_equal(def->name, "travel.booking");
    assert_int_equal(def->version, 2);
    assert_int_equal(def->timeout_ms, 30 * 60 * 1000);
    assert_int_equal(def->steps[1].after_count, 0); /* explicit [] */
    assert_int_equal(def->steps[2].after_count, 2);
    assert_int_equal(def->steps[2].after[0], 0);
    assert_int_equal(def->steps[2].after[1], 1);
    assert_int_equal(def->steps[0].timeout_ms, 20000);
    assert_int_equal(def->steps[1].timeout_ms, 60000);
    /* defaults.retry {max_attempts 4} merges over the built-in policy */
    assert_int_equal(def->steps[0].retry.max_attempts, 4);
    assert_int_equal(def->steps[0].retry.initial_backoff_ms, 100);
    /* step retry merges over that */
    assert_int_equal(def->steps[1].retry.max_attempts, 4);
    assert_int_equal(def->steps[1].retry.initial_backoff_ms, 1000);
    assert_int_equal(def->steps[1].retry.max_backoff_ms, 60000);
    assert_true(def->steps[1].retry.multiplier == 1.5);
    assert_int_equal(def->steps[1].retry.jitter, SAGA_JITTER_NONE);
    assert_int_equal(def->steps[2].compensation_retry.jitter, SAGA_JITTER_NONE);
    assert_int_equal(def->steps[2].compensation_retry.max_attempts, 10);
    assert_non_null(def->steps[0].compensation_payload);
    saga_definition_free(&def);
}

/* sagas/trip_booking.json: two steps in parallel, a third after both. */
static void test_trip_booking_example(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("sagas/trip_booking.json", &errs);
    if (!def) dump_errors(&errs);
    assert_non_null(def);
    assert_string_equal(def->name, "trip_booking");
    assert_int_equal(def->version, 2); /* 2: the compensation payloads' defaults (issue 13.5) */
    assert_int_equal(def->timeout_ms, 10 * 60 * 1000);
    assert_int_equal(def->step_count, 3);
    assert_string_equal(def->steps[0].name, "reserve_flight");
    assert_string_equal(def->steps[0].topic, "flight.commands");
    assert_string_equal(def->steps[1].topic, "hotel.commands");
    assert_string_equal(def->steps[2].topic, "payment.commands");
    /* reserve_flight and reserve_hotel start with the saga */
    assert_int_equal(def->steps[0].after_count, 0);
    assert_int_equal(def->steps[1].after_count, 0);
    assert_int_equal(def->steps[2].after_count, 2);
    assert_int_equal(def->steps[2].after[0], 0);
    assert_int_equal(def->steps[2].after[1], 1);
    for (int i = 0; i < 3; i++) assert_true(strlen(def->steps[i].compensation) > 0);
    assert_non_null(def->steps[0].compensation_payload);
    assert_non_null(def->steps[1].compensation_payload);
    assert_null(def->steps[2].compensation_payload);
    /* timeouts and merged retry policies */
    assert_int_equal(def->steps[0].timeout_ms, 15000);
    assert_int_equal(def->steps[1].timeout_ms, 30000);
    assert_int_equal(def->steps[0].retry.max_attempts, 4);
    assert_int_equal(def->steps[2].retry.max_attempts, 3);
    assert_int_equal(def->steps[2].retry.initial_backoff_ms, 200);
    assert_int_equal(def->steps[2].retry.max_backoff_ms, 5000);
    assert_int_equal(def->steps[2].compensation_retry.max_attempts, 20);
    assert_int_equal(def->steps[2].compensation_retry.initial_backoff_ms, 200);
    assert_int_equal(def->steps[2].compensation_retry.max_backoff_ms, 60000);
    saga_definition_free(&def);
}

/* ---- error classes ---- */

static void test_err_unknown_fields_all_levels(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("tests/fixtures/definitions/bad/unknown_fields.json", &errs);
    assert_null(def);
    assert_int_equal(errs.count, 3);
    expect_error(&errs, "/timout", "unknown field 'timout'");
    expect_error(&errs, "/defaults/retry/retyr", "unknown field 'retyr'");
    expect_error(&errs, "/steps/0/payloads", "unknown field 'payloads'");
}

static void test_err_types_all_reported(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("tests/fixtures/definitions/bad/types.json", &errs);
    assert_null(def);
    expect_error(&errs, "/name", "may contain only lowercase letters, digits, '_', '.' and '-'");
    expect_error(&errs, "/version", "must be an integer, not a string");
    expect_error(&errs, "/steps/0/topic", "must be a string, not an integer");
    expect_error(&errs, "/steps/0/payload", "must be an object, not an array");
    expect_error(&errs, "/steps/0/timeout",
                 "must be a duration string like \"250ms\", \"10s\", \"5m\" or \"1h\", not an integer");
    expect_error(&errs, "/steps/0/retry/max_attempts", "must be at least 1");
    expect_error(&errs, "/steps/0/retry/multiplier", "must be at least 1");
    expect_error(&errs, "/steps/0/retry/jitter", "must be one of \"full\", \"none\"");
    expect_error(&errs, "/steps/0/retry/max_backoff", "must be at least initial_backoff (5s)");
    assert_int_equal(errs.count, 9);
}

static void test_err_not_an_object(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("[1,2]", &errs));
    assert_int_equal(errs.count, 1);
    expect_error(&errs, "", "must be an object, not an array");
}

static void test_err_missing_required(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("{\"steps\":[{}]}", &errs));
    expect_error(&errs, "", "missing required field 'name'");
    expect_error(&errs, "", "missing required field 'version'");
    expect_error(&errs, "/steps/0", "missing required field 'name'");
    expect_error(&errs, "/steps/0", "missing required field 'topic'");
    expect_error(&errs, "/steps/0", "missing required field 'action'");
    assert_int_equal(errs.count, 5);
    assert_null(parse_str("{\"name\":\"x\",\"version\":1}", &errs));
    assert_int_equal(errs.count, 1);
    expect_error(&errs, "", "missing required field 'steps'");
}

static void test_err_version(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("{\"name\":\"x\",\"version\":0,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"}]}",
                          &errs));
    assert_int_equal(errs.count, 1);
    expect_error(&errs, "/version", "must be at least 1");
    assert_null(parse_str("{\"name\":\"x\",\"version\":1.5,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"}]}",
                          &errs));
    expect_error(&errs, "/version", "must be an integer, not a number");
}

static void test_err_name_length(void **state) {
    (void)state;
    char name[200];
    memset(name, 'a', 128);
    name[128] = '\0';
    char extra[300];
    snprintf(extra, sizeof extra, "\"description\":\"d\"");
    char text[1024];
    saga_def_errors_t errs;
    snprintf(text, sizeof text,
             "{\"name\":\"%s\",\"version\":1,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"}]}", name);
    assert_null(parse_str(text, &errs));
    expect_error(&errs, "/name", "must be at most 127 characters");
    name[127] = '\0'; /* 127 is fine */
    snprintf(text, sizeof text,
             "{\"name\":\"%s\",\"version\":1,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"}]}", name);
    saga_definition_t *def = parse_str(text, &errs);
    assert_non_null(def);
    assert_int_equal(strlen(def->name), 127);
    saga_definition_free(&def);
}

static void test_err_steps_count(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("{\"name\":\"x\",\"version\":1,\"steps\":[]}", &errs));
    assert_int_equal(errs.count, 1);
    expect_error(&errs, "/steps", "must have at least 1 step");

    char *text = malloc(65 * 64 + 100);
    assert_non_null(text);
    strcpy(text, "{\"name\":\"x\",\"version\":1,\"steps\":[");
    for (int i = 0; i < 65; i++)
        sprintf(text + strlen(text), "%s{\"name\":\"s%d\",\"topic\":\"t\",\"action\":\"x\"}", i ? "," : "", i);
    strcat(text, "]}");
    assert_null(parse_str(text, &errs));
    expect_error(&errs, "/steps", "must have at most 64 steps");
    /* 64 steps are fine: cut after the 64th */
    char *cut = strstr(text, ",{\"name\":\"s64\"");
    assert_non_null(cut);
    strcpy(cut, "]}");
    saga_definition_t *def = parse_str(text, &errs);
    if (!def) dump_errors(&errs);
    assert_non_null(def);
    assert_int_equal(def->step_count, 64);
    assert_int_equal(def->steps[63].after[0], 62);
    saga_definition_free(&def);
    free(text);
}

static void test_err_durations(void **state) {
    (void)state;
    expect_only_error("", "\"timeout\":\"10\"", "/steps/0/timeout",
                      "must be a duration like \"250ms\", \"10s\", \"5m\" or \"1h\" (got \"10\")");
    expect_only_error("", "\"timeout\":\"1e3s\"", "/steps/0/timeout",
                      "must be a duration like \"250ms\", \"10s\", \"5m\" or \"1h\" (got \"1e3s\")");
    expect_only_error("", "\"timeout\":\"0s\"", "/steps/0/timeout", "must be greater than 0");
    expect_only_error("", "\"timeout\":\"25h\"", "/steps/0/timeout", "must be at most 24h");
    expect_only_error("\"timeout\":\"721h\"", "", "/timeout", "must be at most 720h");
    expect_only_error("\"defaults\":{\"timeout\":\"0ms\"}", "", "/defaults/timeout", "must be greater than 0");
}

static void test_durations_accepted(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = one_step("\"timeout\":\"0s\"", "\"timeout\":\"1.5s\"", &errs);
    assert_non_null(def);
    assert_int_equal(def->timeout_ms, 0); /* "0s": no deadline */
    assert_int_equal(def->steps[0].timeout_ms, 1500);
    saga_definition_free(&def);
    def = one_step("\"timeout\":\"720h\"", "\"timeout\":\"24h\"", &errs);
    assert_non_null(def);
    assert_int_equal(def->timeout_ms, 720LL * 3600 * 1000);
    assert_int_equal(def->steps[0].timeout_ms, 24LL * 3600 * 1000);
    saga_definition_free(&def);
}

static void test_err_retry_inherited_backoff(void **state) {
    (void)state;
    /* initial_backoff above the inherited max_backoff (10s) */
    expect_only_error("", "\"retry\":{\"initial_backoff\":\"20s\"}", "/steps/0/retry/initial_backoff",
                      "must be at most max_backoff (10s, inherited)");
    expect_only_error("", "\"compensation_retry\":{\"max_backoff\":\"100ms\"}",
                      "/steps/0/compensation_retry/max_backoff", "must be at least initial_backoff (200ms, inherited)");
    expect_only_error("", "\"retry\":{\"max_attempts\":1.0}", "/steps/0/retry/max_attempts",
                      "must be an integer, not a number");
    /* no attempt a reply could not carry (saga.reply's attempt is at most 1000000) */
    expect_only_error("", "\"compensation_retry\":{\"max_attempts\":1000001}",
                      "/steps/0/compensation_retry/max_attempts", "must be at most 1000000");
    expect_only_error("", "\"retry\":5", "/steps/0/retry", "must be an object, not an integer");
}

static void test_err_duplicate_step_names(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("{\"name\":\"x\",\"version\":1,\"steps\":["
                          "{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"},"
                          "{\"name\":\"b\",\"topic\":\"t\",\"action\":\"x\"},"
                          "{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"}]}",
                          &errs));
    assert_int_equal(errs.count, 1);
    expect_error(&errs, "/steps/2/name", "duplicate step name 'a' (also /steps/0)");
}

static void test_err_graph(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("tests/fixtures/definitions/bad/graph.json", &errs);
    assert_null(def);
    expect_error(&errs, "/steps/3/name", "duplicate step name 'a' (also /steps/0)");
    expect_error(&errs, "/steps/1/after/0", "a step cannot run after itself");
    expect_error(&errs, "/steps/1/after/1", "unknown step 'nope'");
    expect_error(&errs, "/steps/2/after", "dependency cycle: a -> c -> a");
    assert_int_equal(errs.count, 4);
}

static void test_err_after_shape(void **state) {
    (void)state;
    expect_only_error("", "\"after\":\"x\"", "/steps/0/after", "must be an array of step names, not a string");
    expect_only_error("", "\"after\":[1]", "/steps/0/after/0", "must be a string, not an integer");
    saga_def_errors_t errs;
    assert_null(parse_str("{\"name\":\"x\",\"version\":1,\"steps\":["
                          "{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"},"
                          "{\"name\":\"b\",\"topic\":\"t\",\"action\":\"x\",\"after\":[\"a\",\"a\"]}]}",
                          &errs));
    assert_int_equal(errs.count, 1);
    expect_error(&errs, "/steps/1/after/1", "duplicate entry 'a' (also /steps/1/after/0)");
}

static void test_after_forward_reference(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_str("{\"name\":\"x\",\"version\":1,\"steps\":["
                                       "{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\",\"after\":[\"b\"],"
                                       " \"payload\":{\"v\":\"${steps.b.output.v}\"}},"
                                       "{\"name\":\"b\",\"topic\":\"t\",\"action\":\"x\",\"after\":[]}]}",
                                       &errs);
    if (!def) dump_errors(&errs);
    assert_non_null(def);
    assert_int_equal(def->steps[0].after_count, 1);
    assert_int_equal(def->steps[0].after[0], 1);
    saga_definition_free(&def);
}

static void test_err_templates(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("tests/fixtures/definitions/bad/templates.json", &errs);
    assert_null(def);
    expect_error(&errs, "/steps/0/payload/x", "${inptu.a}: unknown root 'inptu' (expected input, steps or saga)");
    expect_error(&errs, "/steps/0/payload/y",
                 "${steps.b.output}: step 'b' does not run before 'a' (it must be reached through 'after')");
    expect_error(&errs, "/steps/0/payload/z", "${saga.name}: saga has only 'id' and 'definition'");
    expect_error(&errs, "/steps/0/payload/w/1",
                 "${steps.a.result}: must be ${steps.NAME.output} or ${steps.NAME.output.PATH}");
    expect_error(&errs, "/steps/0/payload/v", "${input.a: unterminated '${'");
    expect_error(&errs, "/steps/1/payload/q",
                 "${steps.a.output.id}: step 'a' does not run before 'b' (it must be reached through 'after')");
    expect_error(&errs, "/steps/1/payload/r", "${steps.zz.output}: unknown step 'zz'");
    /* compensation_payload may use its own step, with a default only */
    expect_error(&errs, "/steps/0/compensation_payload/mine",
                 "compensation reads its own step's output without a default "
                 "(${steps.a.output.id} has no value after a timeout: write ${steps.a.output.id:-null})");
    assert_int_equal(errs.count, 8);
}

/* Issue 13.5: a compensation reading its own step's output must give a
 * default, or it could never run after a timeout (the output is absent). */
static void test_compensation_own_output_needs_default(void **state) {
    (void)state;
    expect_only_error("", "\"compensation\":\"undo\",\"compensation_payload\":{\"ref\":\"${steps.a.output.ref}\"}",
                      "/steps/0/compensation_payload/ref",
                      "compensation reads its own step's output without a default "
                      "(${steps.a.output.ref} has no value after a timeout: write ${steps.a.output.ref:-null})");
    expect_only_error("", "\"compensation\":\"undo\",\"compensation_payload\":{\"all\":[\"x ${steps.a.output}\"]}",
                      "/steps/0/compensation_payload/all/0",
                      "compensation reads its own step's output without a default "
                      "(${steps.a.output} has no value after a timeout: write ${steps.a.output:-null})");
    expect_only_error("", "\"compensation\":\"undo\",\"compensation_payload\":{\"ref\":\"${steps.a.output.ref:-nul}\"}",
                      "/steps/0/compensation_payload/ref",
                      "${steps.a.output.ref:-nul}: the default is not a JSON value (null, true, 0, \"text\", [], {})");
    const char *ok[] = {
        "\"compensation\":\"undo\",\"compensation_payload\":{\"ref\":\"${steps.a.output.ref:-null}\"}",
        "\"compensation\":\"undo\",\"compensation_payload\":{\"r\":\"id ${steps.a.output.ref:-\\\"?\\\"}\",\"o\":\"${steps.a.output:-{}}\"}",
        "\"compensation\":\"undo\",\"compensation_payload\":{\"i\":\"${input.x}\"}",
        "\"payload\":{\"i\":\"${input.x:-0}\"}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        saga_def_errors_t errs;
        saga_definition_t *def = one_step("", ok[i], &errs);
        if (!def) dump_errors(&errs);
        assert_non_null(def);
        saga_definition_free(&def);
    }
    /* A definition stored by an earlier sagad (sagas may run on it) still
     * loads from the database as it did then. */
    const char *old = "{\"name\":\"s\",\"version\":1,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\","
                      "\"compensation\":\"undo\",\"compensation_payload\":{\"ref\":\"${steps.a.output.ref}\"}}]}";
    saga_def_errors_t errs;
    memset(&errs, 0, sizeof errs);
    assert_null(saga_definition_parse(old, strlen(old), &errs));
    memset(&errs, 0, sizeof errs);
    errs.stored = true;
    saga_definition_t *def = saga_definition_parse(old, strlen(old), &errs);
    assert_non_null(def);
    saga_definition_free(&def);
}

static void test_err_template_self_in_payload(void **state) {
    (void)state;
    expect_only_error("", "\"payload\":{\"me\":\"${steps.a.output}\"}", "/steps/0/payload/me",
                      "${steps.a.output}: step 'a' does not run before 'a' (it must be reached through 'after')");
    expect_only_error("", "\"payload\":{\"e\":\"${input..x}\"}", "/steps/0/payload/e",
                      "${input..x}: empty path segment");
}

static void test_template_transitive_ancestor_ok(void **state) {
    (void)state;
    saga_def_errors_t errs;
    saga_definition_t *def = parse_str("{\"name\":\"x\",\"version\":1,\"steps\":["
                                       "{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"},"
                                       "{\"name\":\"b\",\"topic\":\"t\",\"action\":\"x\"},"
                                       "{\"name\":\"c\",\"topic\":\"t\",\"action\":\"x\","
                                       " \"payload\":{\"v\":[\"${steps.a.output.v}\"],\"k\":{\"a\":\"$${x}\"}}}]}",
                                       &errs);
    if (!def) dump_errors(&errs);
    assert_non_null(def);
    saga_definition_free(&def);
}

static void test_err_compensation_payload_without_compensation(void **state) {
    (void)state;
    expect_only_error("", "\"compensation_payload\":{}", "/steps/0/compensation_payload",
                      "given but the step has no 'compensation'");
}

static void test_err_pointer_escaping(void **state) {
    (void)state;
    expect_only_error("", "\"a/b~c\":1", "/steps/0/a~1b~0c", "unknown field 'a/b~c'");
}

static void test_err_step_names_and_topic(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("{\"name\":\"x\",\"version\":1,\"steps\":["
                          "{\"name\":\"a.b\",\"topic\":\"bad topic\",\"action\":\"\"}]}",
                          &errs));
    expect_error(&errs, "/steps/0/name", "may contain only lowercase letters, digits, '_' and '-'");
    expect_error(&errs, "/steps/0/topic", "may contain only letters, digits, '_', '.' and '-'");
    expect_error(&errs, "/steps/0/action", "must not be empty");
    assert_int_equal(errs.count, 3);
}

static void test_err_many_errors_counted(void **state) {
    (void)state;
    /* 40 unknown fields: all counted, the first 32 kept */
    char text[4096] = "{\"name\":\"x\",\"version\":1,\"steps\":[{\"name\":\"a\",\"topic\":\"t\",\"action\":\"x\"}]";
    for (int i = 0; i < 40; i++) sprintf(text + strlen(text), ",\"f%02d\":1", i);
    strcat(text, "}");
    saga_def_errors_t errs;
    assert_null(parse_str(text, &errs));
    assert_int_equal(errs.count, 40);
    assert_string_equal(errs.items[31].pointer, "/f31");
}

static void test_syntax_error_line_column(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_fixture("tests/fixtures/definitions/mixed/c_syntax.json", &errs));
    assert_int_equal(errs.count, 1);
    assert_int_equal(errs.items[0].line, 3);
    assert_int_equal(errs.items[0].column, 13); /* the "}" */
    assert_string_equal(errs.items[0].pointer, "");
    assert_true(strlen(errs.items[0].message) > 0);
}

static void test_syntax_duplicate_keys(void **state) {
    (void)state;
    saga_def_errors_t errs;
    assert_null(parse_str("{\"name\":\"x\",\n\"name\":\"y\"}", &errs));
    assert_int_equal(errs.count, 1);
    assert_int_equal(errs.items[0].line, 2);
    assert_non_null(strstr(errs.items[0].message, "duplicate"));
}

/* ---- search attributes ---- */

static void test_search_attributes(void **state) {
    saga_def_errors_t errs;
    saga_definition_t *def = parse_fixture("tests/fixtures/definitions/good/searchable.json", &errs);
    if (!def) dump_errors(&errs);
    assert_non_null(def);
    assert_int_equal(def->search_count, 4);
    assert_string_equal(def->search[0].name, "order_id");
    json_t *input = json_pack("{s:s, s:i, s:{s:s}, s:s}", "order_id", "o-17", "amount", 1999, "customer", "name",
                              "Ada", "note", "caf\xc3\xa9");
    json_t *attrs = saga_search_render(def, "saga-1", input);
    assert_non_null(attrs);
    /* strings as they are, other values as compact JSON, the saga's own fields */
    assert_string_equal(json_string_value(json_object_get(attrs, "order_id")), "o-17");
    assert_string_equal(json_string_value(json_object_get(attrs, "amount")), "1999");
    assert_string_equal(json_string_value(json_object_get(attrs, "customer")), "{\"name\":\"Ada\"}");
    assert_string_equal(json_string_value(json_object_get(attrs, "key")), "searchable/saga-1");
    assert_int_equal(json_object_size(attrs), 4);
    json_decref(attrs);
    /* a template without a value leaves its attribute out; a long value is cut on a character boundary */
    char long_id[600];
    memset(long_id, 'x', sizeof long_id - 3);
    memcpy(long_id + 254, "\xc3\xa9", 2); /* bytes 254-255: a 2-byte character that must not be split */
    long_id[sizeof long_id - 3] = '\0';
    json_decref(input);
    input = json_pack("{s:s, s:n}", "order_id", long_id, "amount");
    attrs = saga_search_render(def, "saga-2", input);
    assert_null(json_object_get(attrs, "amount"));
    assert_null(json_object_get(attrs, "customer"));
    const char *cut = json_string_value(json_object_get(attrs, "order_id"));
    assert_non_null(cut);
    assert_int_equal(strlen(cut), SAGA_SEARCH_VALUE_MAX);
    json_decref(attrs);
    json_decref(input);
    saga_definition_free(&def);
    /* a definition without search attributes renders none */
    def = parse_fixture("tests/fixtures/definitions/good/minimal.json", &errs);
    assert_null(saga_search_render(def, "x", NULL));
    saga_definition_free(&def);
    /* names */
    assert_true(saga_search_name_ok("a", 1));
    assert_true(saga_search_name_ok("Order_ID_2", 10));
    assert_false(saga_search_name_ok("", 0));
    assert_false(saga_search_name_ok("_a", 2));
    assert_false(saga_search_name_ok("a.b", 3));
    char name[SAGA_SEARCH_NAME_MAX + 2];
    memset(name, 'n', sizeof name);
    assert_true(saga_search_name_ok(name, SAGA_SEARCH_NAME_MAX));
    assert_false(saga_search_name_ok(name, SAGA_SEARCH_NAME_MAX + 1));
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_example_defaults_and_merge),
        cmocka_unit_test(test_example_after_defaults_to_previous),
        cmocka_unit_test(test_example_payloads),
        cmocka_unit_test(test_builtin_defaults),
        cmocka_unit_test(test_parallel_steps),
        cmocka_unit_test(test_trip_booking_example),
        cmocka_unit_test(test_err_unknown_fields_all_levels),
        cmocka_unit_test(test_err_types_all_reported),
        cmocka_unit_test(test_err_not_an_object),
        cmocka_unit_test(test_err_missing_required),
        cmocka_unit_test(test_err_version),
        cmocka_unit_test(test_err_name_length),
        cmocka_unit_test(test_err_steps_count),
        cmocka_unit_test(test_err_durations),
        cmocka_unit_test(test_durations_accepted),
        cmocka_unit_test(test_err_retry_inherited_backoff),
        cmocka_unit_test(test_err_duplicate_step_names),
        cmocka_unit_test(test_err_graph),
        cmocka_unit_test(test_err_after_shape),
        cmocka_unit_test(test_after_forward_reference),
        cmocka_unit_test(test_err_templates),
        cmocka_unit_test(test_err_template_self_in_payload),
        cmocka_unit_test(test_compensation_own_output_needs_default),
        cmocka_unit_test(test_template_transitive_ancestor_ok),
        cmocka_unit_test(test_err_compensation_payload_without_compensation),
        cmocka_unit_test(test_err_pointer_escaping),
        cmocka_unit_test(test_err_step_names_and_topic),
        cmocka_unit_test(test_err_many_errors_counted),
        cmocka_unit_test(test_syntax_error_line_column),
        cmocka_unit_test(test_syntax_duplicate_keys),
        cmocka_unit_test(test_search_attributes),
    };
    return cmocka_run_group_tests_name("definition", tests, definition_setup, NULL);
}

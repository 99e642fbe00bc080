/* Regression tests for what fuzz_messages and fuzz_admin (tests/fuzz,
 * docs/FUZZING.md) found. Each test names the finding; the inputs are also
 * in the seed corpora (regress-*). The common thread: text cut to a fixed
 * length, or holding "\u0000", that could no longer go into (or come out
 * of) JSON. A dead letter whose reason is not UTF-8 fails the loop's
 * transaction, so one such record stopped sagad again after every restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include "admin_route.h"
#include "messages.h"
#include "replay.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "test_admin_fixture.h"

#include <stdio.h>
#include <string.h>

/* A string is UTF-8 exactly when jansson takes it as a JSON string. */
static void assert_utf8(const char *s) {
    json_t *j = json_string(s);
    if (!j) fail_msg("not UTF-8: %s", s);
    json_decref(j);
}

/* prefix followed by n times 'é' (two bytes each). */
static void repeat_e(char *buf, size_t cap, const char *prefix, int n) {
    size_t o = (size_t)snprintf(buf, cap, "%s", prefix);
    for (int i = 0; i < n && o + 3 <= cap; i++, o += 2) memcpy(buf + o, "\xc3\xa9", 3);
}

/* ---- the message parsers (fuzz_messages) ---- */

/* jansson quotes the input near a syntax error and may cut it inside a
 * character ("invalid escape near '"\<0xC3>'"): the loop's dead letter
 * then failed. The reason is now ASCII. */
static void test_json_parse_error_is_ascii(void **state) {
    (void)state;
    static const char text[] = "{\"type\":\"saga.start\",\"message_id\":\"m-1\",\"definition\":\"\\\xc3\xa9\"}";
    char err[256] = "";
    assert_null(saga_json_parse(text, sizeof text - 1, err, sizeof err));
    assert_non_null(strstr(err, "invalid escape"));
    for (const char *p = err; *p; p++) assert_true((unsigned char)*p < 0x80);
}

/* "unexpected type '%.64s'" cut a long non-ASCII type inside a character. */
static void test_unexpected_type_cut_at_character(void **state) {
    (void)state;
    for (int odd = 0; odd < 2; odd++) {
        char type[200], text[400];
        repeat_e(type, sizeof type, odd ? "saga." : "saga", 40);
        snprintf(text, sizeof text, "{\"type\":\"%s\",\"message_id\":\"m-1\",\"definition\":\"d\"}", type);
        json_t *root = json_loads(text, 0, NULL);
        assert_non_null(root);
        saga_start_msg_t start;
        saga_reply_msg_t reply;
        char err[256] = "";
        assert_int_equal(saga_parse_start(root, &start, err, sizeof err), SAGA_EPARSE);
        assert_non_null(strstr(err, "unexpected type"));
        assert_utf8(err);
        assert_int_equal(saga_parse_reply(root, &reply, err, sizeof err), SAGA_EPARSE);
        assert_utf8(err);
        json_decref(root);
    }
}

/* The loop quotes an unknown definition ('%.100s'), saga ('%.128s') or
 * step ('%.128s') in the dead letter's reason: a non-ASCII name cut there.
 * Names and ids are ASCII (as the schemas say for definition and saga_id),
 * so such a message is now refused by the parser, with a reason naming the
 * field (it went to the dead letters before too, as unknown). */
static void test_names_and_ids_are_ascii(void **state) {
    (void)state;
    char name[300];
    repeat_e(name, sizeof name, "a", 100);
    static const struct {
        const char *fmt, *field;
        int reply;
    } cases[] = {
        {"{\"type\":\"saga.start\",\"message_id\":\"m\",\"definition\":\"%s\"}", "'definition'", 0},
        {"{\"type\":\"saga.reply\",\"message_id\":\"r\",\"saga_id\":\"%s\",\"step\":\"x\",\"kind\":\"action\","
         "\"attempt\":1,\"status\":\"success\"}", "'saga_id'", 1},
        {"{\"type\":\"saga.reply\",\"message_id\":\"r\",\"saga_id\":\"s-1\",\"step\":\"%s\",\"kind\":\"action\","
         "\"attempt\":1,\"status\":\"success\"}", "'step'", 1},
    };
    const char *values[] = {name, "", "a b", "a/b"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
            char text[1024], err[256] = "";
            snprintf(text, sizeof text, cases[i].fmt, values[v]);
            json_t *root = json_loads(text, 0, NULL);
            assert_non_null(root);
            saga_start_msg_t start;
            saga_reply_msg_t reply;
            int rc = cases[i].reply ? saga_parse_reply(root, &reply, err, sizeof err)
                                    : saga_parse_start(root, &start, err, sizeof err);
            if (rc != SAGA_EPARSE || !strstr(err, cases[i].field))
                fail_msg("case %zu, value %zu: rc %d, '%s'", i, v, rc, err);
            json_decref(root);
        }
    }
}

/* ---- the engine and replay (fuzz_messages) ---- */

static const char DEF[] =
    "{\"name\": \"t\", \"version\": 1, \"steps\": ["
    " {\"name\": \"a\", \"topic\": \"a.commands\", \"action\": \"a.do\", \"compensation\": \"a.undo\","
    "  \"compensation_retry\": {\"max_attempts\": 1}},"
    " {\"name\": \"b\", \"topic\": \"b.commands\", \"action\": \"b.do\"}]}";

typedef struct {
    saga_definition_t *def;
    saga_t s;
    json_t *events; /* every saga.event so far */
    json_t *last;   /* the last saga.* event */
    json_t *alert;  /* the last alert's body */
    uint64_t rng;
} run_t;

static void apply(run_t *r, const saga_event_t *ev) {
    static const saga_engine_config_t cfg = {.replies_topic = "saga.replies"};
    saga_effects_t fx;
    char why[256] = "";
    saga_effects_init(&fx);
    int rc = saga_engine_apply(&cfg, &r->s, ev, 1700000000000LL, &r->rng, &fx, why, sizeof why);
    if (rc) fail_msg("apply: %s", why);
    for (int i = 0; i < fx.count; i++) {
        json_t *m = fx.items[i].message;
        if (fx.items[i].kind == SAGA_FX_EVENT) {
            json_array_append(r->events, m);
            if (fx.items[i].slot < 0) r->last = m;
        } else if (fx.items[i].kind == SAGA_FX_ALERT) {
            json_decref(r->alert);
            r->alert = json_incref(m);
        }
    }
    saga_effects_free(&fx);
}

static void reply(run_t *r, int step, saga_command_kind_t kind, saga_reply_status_t status, const char *message) {
    saga_event_t ev = {.kind = SAGA_EV_REPLY, .step = step, .command_kind = kind, .attempt = 1, .reply_status = status,
                       .error_code = status == SAGA_REPLY_SUCCESS ? NULL : "E", .error_message = message};
    apply(r, &ev);
}

static void start(run_t *r) {
    saga_def_errors_t errs;
    memset(&errs, 0, sizeof errs);
    memset(r, 0, sizeof *r);
    r->def = saga_definition_parse(DEF, strlen(DEF), &errs);
    assert_non_null(r->def);
    r->events = json_array();
    json_t *input = json_object();
    saga_init(&r->s, "s-1", r->def, input, "", 1700000000000LL);
    json_decref(input);
    saga_event_t ev = {.kind = SAGA_EV_START};
    apply(r, &ev);
}

/* What GET /v1/sagas/{id}?at= rebuilds is the saga itself. */
static void assert_replays(run_t *r) {
    size_t n = json_array_size(r->events);
    const json_t *events[64];
    assert_true(n <= 64);
    for (size_t i = 0; i < n; i++) events[i] = json_array_get(r->events, i);
    saga_t back;
    char err[256] = "", diff[256] = "";
    if (saga_replay(r->def, "s-1", events, (int)n, INT64_MAX, &back, err, sizeof err)) fail_msg("replay: %s", err);
    if (!saga_equal(&r->s, &back, diff, sizeof diff)) fail_msg("replay differs: %s", diff);
    saga_clear(&back);
}

static void finish(run_t *r) {
    json_decref(r->events);
    json_decref(r->alert);
    saga_clear(&r->s);
    saga_definition_free(&r->def);
}

/* A failure reply with a long non-ASCII message: the saga's error message
 * (256 bytes) was cut inside a character, json_pack refused it, and
 * saga.compensating went out without its code and message; replaying the
 * history then failed (GET ?at= answered 500 for that saga). */
static void test_long_error_message_keeps_compensating_detail(void **state) {
    (void)state;
    for (int odd = 0; odd < 2; odd++) {
        char message[700];
        repeat_e(message, sizeof message, odd ? "x" : "", 300);
        run_t r;
        start(&r);
        reply(&r, 0, SAGA_KIND_ACTION, SAGA_REPLY_FAILURE, message);
        assert_int_equal(r.s.status, SAGA_STATUS_COMPENSATED);
        json_t *ev = json_array_get(r.events, 3);
        assert_string_equal(json_string_value(json_object_get(ev, "event")), "saga.compensating");
        json_t *detail = json_object_get(ev, "detail");
        assert_string_equal(json_string_value(json_object_get(detail, "code")), "E");
        assert_string_equal(json_string_value(json_object_get(detail, "message")), r.s.error_message);
        assert_true(strlen(r.s.error_message) >= 250);
        assert_utf8(r.s.error_message);
        assert_replays(&r);
        finish(&r);
    }
}

/* The same with the reason of saga.compensation_failed (400 bytes): the
 * event lost step, code and reason, and the alert had no body. */
static void test_long_error_message_keeps_alert(void **state) {
    (void)state;
    for (int odd = 0; odd < 2; odd++) {
        char message[900];
        repeat_e(message, sizeof message, odd ? "x" : "", 400);
        run_t r;
        start(&r);
        reply(&r, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS, NULL);
        reply(&r, 1, SAGA_KIND_ACTION, SAGA_REPLY_FAILURE, "no");
        reply(&r, 0, SAGA_KIND_COMPENSATION, SAGA_REPLY_FAILURE, message);
        assert_int_equal(r.s.status, SAGA_STATUS_COMPENSATION_FAILED);
        assert_string_equal(json_string_value(json_object_get(r.last, "event")), "saga.compensation_failed");
        json_t *detail = json_object_get(r.last, "detail");
        assert_string_equal(json_string_value(json_object_get(detail, "step")), "a");
        const char *why = json_string_value(json_object_get(detail, "reason"));
        assert_non_null(why);
        assert_true(strlen(why) >= 390);
        assert_non_null(r.alert);
        assert_string_equal(json_string_value(json_object_get(r.alert, "reason")), why);
        assert_replays(&r);
        finish(&r);
    }
}

/* The loop takes "\u0000" inside strings (saga_json_parse allows it), so a
 * saga's input can hold one; its history rows did not load back
 * (saga_history_row_event): no replay, GET ?at= answered 500. */
static void test_history_row_with_nul(void **state) {
    (void)state;
    char err[256] = "";
    json_t *ev = saga_history_row_event("s-1", 1, 1700000000000LL, "saga.started", NULL, "running",
                                        "{\"input\":{\"a\":\"x\\u0000y\"},\"deadline_at\":0}", err, sizeof err);
    if (!ev) fail_msg("%s", err);
    json_t *a = json_object_get(json_object_get(json_object_get(ev, "detail"), "input"), "a");
    assert_int_equal(json_string_length(a), 3);
    json_decref(ev);
}

/* ---- the admin API (fuzz_admin) ---- */

static json_t *get(fixture_db_t *fx, const char *path) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(fx->db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    admin_ctx_t ctx = {.db = db};
    admin_request_t req = {.method = "GET", .path = path};
    admin_response_t res;
    assert_int_equal(admin_route(&ctx, &req, &res), 0);
    if (res.status != 200) fail_msg("GET %s: %u %s", path, res.status, res.body);
    json_t *doc = json_loads(res.body, JSON_ALLOW_NUL, NULL);
    assert_non_null(doc);
    saga_free(res.body);
    sqlite3_close(db);
    return doc;
}

/* The same "\u0000" made GET /v1/sagas/{id} show the input and history
 * details as strings (the fallback for text that is not JSON), and GET
 * /v1/definitions/... a definition with one in a payload (the loader takes
 * it) as a string with "steps": null. */
static void test_admin_shows_json_with_nul(void **state) {
    (void)state;
    fixture_db_t fx;
    assert_int_equal(fixture_db_create(&fx, 1), 0);
    assert_int_equal(fixture_db_exec(&fx,
        "INSERT INTO sagas (id, definition, version, status, input, created_at, updated_at) VALUES"
        " ('s-nul', 'nul', 1, 'completed', '{\"a\":\"x\\u0000y\"}', 1700000000000, 1700000000000);"
        "INSERT INTO history (saga_id, seq, at, event, step, status, detail) VALUES"
        " ('s-nul', 1, 1700000000000, 'saga.started', NULL, 'running', '{\"input\":{\"a\":\"x\\u0000y\"}}');"
        "INSERT INTO definitions (name, version, hash, json, loaded_at) VALUES"
        " ('nul', 1, 'h', '{\"name\":\"nul\",\"steps\":[{\"payload\":{\"n\":\"a\\u0000b\"}}]}', 1700000000000);"), 0);
    json_t *doc = get(&fx, "/v1/sagas/s-nul");
    assert_true(json_is_object(json_object_get(doc, "input")));
    json_t *h = json_array_get(json_object_get(doc, "history"), 0);
    assert_true(json_is_object(json_object_get(h, "detail")));
    json_decref(doc);
    doc = get(&fx, "/v1/definitions/nul/1");
    assert_int_equal(json_integer_value(json_object_get(doc, "steps")), 1);
    assert_true(json_is_object(json_object_get(doc, "definition")));
    json_decref(doc);
    fixture_db_destroy(&fx);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_parse_error_is_ascii),
        cmocka_unit_test(test_unexpected_type_cut_at_character),
        cmocka_unit_test(test_names_and_ids_are_ascii),
        cmocka_unit_test(test_long_error_message_keeps_compensating_detail),
        cmocka_unit_test(test_long_error_message_keeps_alert),
        cmocka_unit_test(test_history_row_with_nul),
        cmocka_unit_test(test_admin_shows_json_with_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

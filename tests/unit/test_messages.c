/* Decoding of saga.start and saga.reply: every field error is named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <string.h>

#include "messages.h"
#include "saga_error.h"

static int parse_start(const char *text, saga_start_msg_t *out, char *err, json_t **root) {
    *root = json_loads(text, 0, NULL);
    assert_non_null(*root);
    return saga_parse_start(*root, out, err, 256);
}

static int parse_reply(const char *text, saga_reply_msg_t *out, char *err, json_t **root) {
    *root = json_loads(text, 0, NULL);
    assert_non_null(*root);
    return saga_parse_reply(*root, out, err, 256);
}

static void test_start_full(void **state) {
    saga_start_msg_t m;
    char err[256];
    json_t *root;
    assert_int_equal(parse_start("{\"type\":\"saga.start\",\"message_id\":\"m-1\",\"definition\":\"order\","
                                 "\"saga_id\":\"s-9\",\"version\":2,\"input\":{\"a\":1}}", &m, err, &root), 0);
    assert_string_equal(m.message_id, "m-1");
    assert_string_equal(m.definition, "order");
    assert_string_equal(m.saga_id, "s-9");
    assert_int_equal(m.version, 2);
    assert_int_equal(json_integer_value(json_object_get(m.input, "a")), 1);
    json_decref(root);
    /* every version a definition may have (1..2147483647) can be started by number */
    assert_int_equal(parse_start("{\"type\":\"saga.start\",\"message_id\":\"m-2\",\"definition\":\"order\","
                                 "\"version\":2147483647}", &m, err, &root), 0);
    assert_int_equal(m.version, 2147483647);
    json_decref(root);
    assert_int_equal(parse_start("{\"type\":\"saga.start\",\"message_id\":\"m-3\",\"definition\":\"order\","
                                 "\"version\":2147483648}", &m, err, &root), SAGA_EPARSE);
    assert_non_null(strstr(err, "'version' must be an integer from 1 to 2147483647"));
    json_decref(root);
}

static void test_start_minimal_has_no_saga_id(void **state) {
    saga_start_msg_t m;
    char err[256];
    json_t *root;
    assert_int_equal(parse_start("{\"type\":\"saga.start\",\"message_id\":\"m-1\",\"definition\":\"order\"}", &m, err, &root), 0);
    assert_null(m.saga_id);
    assert_null(m.input);
    assert_int_equal(m.version, 0);
    json_decref(root);
}

static void test_start_errors_name_the_field(void **state) {
    static const struct { const char *json, *needle; } cases[] = {
        {"{\"type\":\"saga.reply\",\"message_id\":\"m\",\"definition\":\"d\"}", "unexpected type"},
        {"{\"message_id\":\"m\",\"definition\":\"d\"}", "missing 'type'"},
        {"{\"type\":\"saga.start\",\"definition\":\"d\"}", "missing 'message_id'"},
        {"{\"type\":\"saga.start\",\"message_id\":\"m\"}", "missing 'definition'"},
        {"{\"type\":\"saga.start\",\"message_id\":\"m\",\"definition\":7}", "'definition' must be a string"},
        {"{\"type\":\"saga.start\",\"message_id\":\"m\",\"definition\":\"d\",\"input\":[1]}", "'input' must be an object"},
        {"{\"type\":\"saga.start\",\"message_id\":\"m\",\"definition\":\"d\",\"saga_id\":\"a/b\"}", "'saga_id'"},
        {"{\"type\":\"saga.start\",\"message_id\":\"m\",\"definition\":\"d\",\"saga_id\":\"\"}", "'saga_id'"},
        {"{\"type\":\"saga.start\",\"message_id\":\"m\",\"definition\":\"d\",\"version\":0}", "'version'"},
        {"[1,2]", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        saga_start_msg_t m;
        char err[256] = "";
        json_t *root = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(root);
        assert_int_equal(saga_parse_start(root, &m, err, sizeof err), SAGA_EPARSE);
        if (!strstr(err, cases[i].needle)) fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].needle);
        json_decref(root);
    }
}

static void test_reply_full(void **state) {
    saga_reply_msg_t m;
    char err[256];
    json_t *root;
    assert_int_equal(parse_reply("{\"type\":\"saga.reply\",\"message_id\":\"r-1\",\"in_reply_to\":\"s/x/action/2\","
                                 "\"saga_id\":\"s\",\"step\":\"x\",\"kind\":\"compensation\",\"attempt\":2,"
                                 "\"status\":\"failure\",\"error\":{\"code\":\"E\",\"message\":\"why\"}}",
                                 &m, err, &root), 0);
    assert_int_equal(m.kind, SAGA_KIND_COMPENSATION);
    assert_int_equal(m.attempt, 2);
    assert_int_equal(m.status, SAGA_REPLY_FAILURE);
    assert_string_equal(m.error_code, "E");
    assert_string_equal(m.error_message, "why");
    assert_null(m.output);
    json_decref(root);
}

static void test_reply_errors_name_the_field(void **state) {
    static const struct { const char *json, *needle; } cases[] = {
        {"{\"type\":\"saga.reply\",\"message_id\":\"r\",\"saga_id\":\"s\",\"step\":\"x\",\"kind\":\"undo\",\"attempt\":1,\"status\":\"success\"}", "'kind'"},
        {"{\"type\":\"saga.reply\",\"message_id\":\"r\",\"saga_id\":\"s\",\"step\":\"x\",\"kind\":\"action\",\"attempt\":1,\"status\":\"ok\"}", "'status'"},
        {"{\"type\":\"saga.reply\",\"message_id\":\"r\",\"saga_id\":\"s\",\"step\":\"x\",\"kind\":\"action\",\"attempt\":0,\"status\":\"success\"}", "'attempt'"},
        {"{\"type\":\"saga.reply\",\"message_id\":\"r\",\"saga_id\":\"s\",\"step\":\"x\",\"kind\":\"action\",\"attempt\":\"1\",\"status\":\"success\"}", "'attempt'"},
        /* above the highest attempt a definition can give (max_attempts <= 1000000), with the range said */
        {"{\"type\":\"saga.reply\",\"message_id\":\"r\",\"saga_id\":\"s\",\"step\":\"x\",\"kind\":\"action\",\"attempt\":1000001,\"status\":\"success\"}", "'attempt' must be an integer from 1 to 1000000"},
        {"{\"type\":\"saga.reply\",\"message_id\":\"r\",\"saga_id\":\"s\",\"kind\":\"action\",\"attempt\":1,\"status\":\"success\"}", "missing 'step'"},
        {"{\"type\":\"saga.reply\",\"message_id\":\"r\",\"saga_id\":\"s\",\"step\":\"x\",\"kind\":\"action\",\"attempt\":1,\"status\":\"failure\",\"error\":\"bad\"}", "'error'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        saga_reply_msg_t m;
        char err[256] = "";
        json_t *root = json_loads(cases[i].json, 0, NULL);
        assert_non_null(root);
        assert_int_equal(saga_parse_reply(root, &m, err, sizeof err), SAGA_EPARSE);
        if (!strstr(err, cases[i].needle)) fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].needle);
        json_decref(root);
    }
}

static void test_valid_ids(void **state) {
    assert_true(saga_valid_id("s-1", 0));
    assert_false(saga_valid_id("s 1", 0));
    assert_false(saga_valid_id("a/b", 0));
    assert_true(saga_valid_id("a/b", 1));
    /* saga ids: up to 127 bytes; message ids: up to SAGA_MESSAGE_ID_MAX */
    char long_id[SAGA_MESSAGE_ID_MAX + 2];
    memset(long_id, 'x', sizeof long_id);
    long_id[127] = '\0';
    assert_true(saga_valid_id(long_id, 0));
    long_id[127] = 'x';
    long_id[128] = '\0';
    assert_false(saga_valid_id(long_id, 0));
    assert_true(saga_valid_id(long_id, 1));
    long_id[128] = 'x';
    long_id[SAGA_MESSAGE_ID_MAX] = '\0';
    assert_true(saga_valid_id(long_id, 1));
    long_id[SAGA_MESSAGE_ID_MAX] = 'x';
    long_id[SAGA_MESSAGE_ID_MAX + 1] = '\0';
    assert_false(saga_valid_id(long_id, 1));
}

/* Issue 13.12: with a saga id and a step name of the maximum length (127
 * bytes each), the longest reply id the participant library derives,
 * r-<saga>/<step>/compensation/<attempt>/t-<16 hex>, is a valid reply:
 * before, replies of long saga ids were dead-lettered (message id > 127). */
static void test_reply_ids_of_longest_saga_fit(void **state) {
    char saga[128], step[128], key[400], mid[420], in_reply_to[420];
    memset(saga, 's', 127);
    saga[127] = '\0';
    memset(step, 'p', 127);
    step[127] = '\0';
    snprintf(key, sizeof key, "%s/%s/compensation", saga, step);
    snprintf(in_reply_to, sizeof in_reply_to, "%s/1000000", key);
    assert_int_equal(strlen(in_reply_to), 276);
    snprintf(mid, sizeof mid, "r-%s/1000000/t-0123456789abcdef", key);
    assert_int_equal(strlen(mid), 297);
    assert_true(strlen(mid) <= SAGA_MESSAGE_ID_MAX);
    json_t *root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "type", "saga.reply", "message_id", mid,
                             "in_reply_to", in_reply_to, "saga_id", saga, "step", step, "kind", "compensation",
                             "attempt", 1000000, "status", "success");
    saga_reply_msg_t m;
    char err[256] = "";
    if (saga_parse_reply(root, &m, err, sizeof err)) fail_msg("refused: %s", err);
    assert_string_equal(m.message_id, mid);
    json_decref(root);
    /* a start with a 127-byte saga id and a 400-byte message id is valid too */
    char start_mid[SAGA_MESSAGE_ID_MAX + 1];
    memset(start_mid, 'm', SAGA_MESSAGE_ID_MAX);
    start_mid[SAGA_MESSAGE_ID_MAX] = '\0';
    root = json_pack("{s:s, s:s, s:s, s:s}", "type", "saga.start", "message_id", start_mid, "definition", "d",
                     "saga_id", saga);
    saga_start_msg_t st;
    if (saga_parse_start(root, &st, err, sizeof err)) fail_msg("refused: %s", err);
    json_decref(root);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_full),
        cmocka_unit_test(test_start_minimal_has_no_saga_id),
        cmocka_unit_test(test_start_errors_name_the_field),
        cmocka_unit_test(test_reply_full),
        cmocka_unit_test(test_reply_errors_name_the_field),
        cmocka_unit_test(test_valid_ids),
        cmocka_unit_test(test_reply_ids_of_longest_saga_fit),
    };
    return cmocka_run_group_tests_name("messages", tests, NULL, NULL);
}

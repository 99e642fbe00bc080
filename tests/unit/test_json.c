/* saga_json_dump against jansson's json_dumps (it must write the same
 * bytes, but for reals: their shortest round-trip form), number
 * formatting, and the flat header reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_json_parse.h"

static int has_real(const json_t *v) {
    const char *k;
    json_t *m;
    size_t i;
    if (json_is_real(v)) return 1;
    if (json_is_object(v)) json_object_foreach((json_t *)v, k, m) if (has_real(m)) return 1;
    if (json_is_array(v)) json_array_foreach(v, i, m) if (has_real(m)) return 1;
    return 0;
}

/* Byte for byte what jansson writes, except reals (shortest round trip
 * instead of %.17g): then the text reads back as the same value. */
static void assert_same_as_jansson(const json_t *v) {
    char *ours = saga_json_dump(v);
    char *theirs = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    assert_non_null(theirs);
    assert_non_null(ours);
    if (!has_real(v)) {
        assert_string_equal(ours, theirs);
    } else {
        assert_true(strlen(ours) <= strlen(theirs));
        json_t *back = json_loads(ours, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        assert_non_null(back);
        assert_true(json_equal(back, v));
        json_decref(back);
    }
    saga_free(ours);
    free(theirs);
}

static void assert_real_text(double v, const char *want) {
    char buf[40];
    int n = saga_json_format_real(v, buf, sizeof buf);
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(buf, want);
    json_t *r = json_real(v);
    char *dump = saga_json_dump(r);
    assert_string_equal(dump, want);
    saga_free(dump);
    json_decref(r);
    json_t *back = json_loads(want, JSON_DECODE_ANY, NULL);
    assert_true(json_is_real(back));
    double got = json_real_value(back);
    assert_memory_equal(&got, &v, sizeof v); /* the same bits: -0.0 stays negative */
    json_decref(back);
}

/* Reals keep their shortest round-trip form (issue 13: a start of 0.1s grew
 * five times as 0.10000000000000001). */
static void test_reals_shortest_round_trip(void **state) {
    (void)state;
    assert_real_text(0.1, "0.1");
    assert_real_text(19.99, "19.99");
    assert_real_text(1.0, "1.0");
    assert_real_text(-0.0, "-0.0");
    assert_real_text(0.0, "0.0");
    assert_real_text(100.0, "100.0");
    assert_real_text(1e300, "1e300");
    assert_real_text(-1e-300, "-1e-300");
    assert_real_text(1e-7, "1e-7");
    assert_real_text(1e21, "1e21");
    assert_real_text(123456789012345.0, "123456789012345.0");
    assert_real_text(9007199254740993.0, "9007199254740992.0"); /* 2^53 + 1 is not a double */
    assert_real_text(0.30000000000000004, "0.30000000000000004"); /* 0.1 + 0.2 needs 17 digits */
    assert_real_text(3.141592653589793, "3.141592653589793");
    assert_real_text(2.2250738585072014e-308, "2.2250738585072014e-308");
    assert_real_text(5e-324, "5e-324");
    /* 16 digits need an exponent, 17 do not: the shorter text, as jansson (fuzz_template) */
    assert_real_text(77777777777777776.0, "77777777777777776.0");
    assert_real_text(1.7976931348623157e308, "1.7976931348623157e308");
    char buf[40];
    assert_int_equal(saga_json_format_real(__builtin_nan(""), buf, sizeof buf), -1);
    assert_int_equal(saga_json_format_real(__builtin_inf(), buf, sizeof buf), -1);
    assert_int_equal(saga_json_format_real(1.0, buf, 8), -1); /* too small a buffer */
    /* Integers stay integers; reals in a tree; a round trip through the parser. */
    json_t *v = json_loads("{\"i\":7,\"r\":0.1,\"a\":[0.2,1e300,-0.0,42]}", 0, NULL);
    char *text = saga_json_dump(v);
    assert_string_equal(text, "{\"i\":7,\"r\":0.1,\"a\":[0.2,1e300,-0.0,42]}");
    saga_free(text);
    json_decref(v);
    /* 240 KB of 0.1s: the re-encoded text is no larger than the input. */
    json_t *arr = json_array();
    for (int i = 0; i < 60000; i++) json_array_append_new(arr, json_real(0.1));
    text = saga_json_dump(arr);
    assert_int_equal(strlen(text), 60000 * 4 + 1);
    saga_free(text);
    json_decref(arr);
}

static void test_dump_writes_valid_utf8_and_refuses_invalid(void **state) {
    (void)state;
    json_t *v = json_pack("{s:s, s:s}", "city", "\xe6\x9d\xb1\xe4\xba\xac", "emoji", "\xf0\x9f\x98\x80 0.1");
    char *text = saga_json_dump(v);
    assert_string_equal(text, "{\"city\":\"\xe6\x9d\xb1\xe4\xba\xac\",\"emoji\":\"\xf0\x9f\x98\x80 0.1\"}");
    saga_free(text);
    json_decref(v);
    const char *bad[] = {"\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe6\x9d", "\x80", "\xff"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *s = json_stringn_nocheck(bad[i], strlen(bad[i]));
        assert_null(saga_json_dump(s)); /* as json_dumps */
        json_decref(s);
    }
}

static void test_dump_matches_jansson_on_fixed_values(void **state) {
    (void)state;
    const char *texts[] = {
        "{}", "[]", "\"\"", "0", "-9223372036854775808", "9223372036854775807", "true", "false", "null",
        "{\"a\":1,\"b\":[1,2,{\"c\":null}],\"d\":\"x\\\"y\\\\z\\/w\"}",
        "\"tab\\t nl\\n cr\\r bs\\b ff\\f nul\\u0000 us\\u001f del\\u007f\"",
        "{\"k\\u0001\":\"v\"}",
        "{\"amount\":19.99,\"pi\":3.141592653589793,\"big\":1e300,\"neg\":-0.5}", /* reals: shortest form */
        "{\"name\":\"Zoë\",\"city\":\"東京\",\"emoji\":\"\\ud83d\\ude00\"}",          /* non-ASCII */
        "[[[[[[[[[[[]]]]]]]]]]]",
        "{\"z\":1,\"a\":2,\"m\":{\"y\":true,\"b\":false}}", /* insertion order, not sorted */
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_error_t e;
        json_t *v = json_loads(texts[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        assert_non_null(v);
        assert_same_as_jansson(v);
        json_decref(v);
    }
    char nul_key_free[] = "a\0b";
    json_t *s = json_stringn(nul_key_free, 3);
    assert_same_as_jansson(s);
    json_decref(s);
}

/* Random trees of every ASCII byte, integers, booleans and nulls. */
static json_t *random_value(unsigned *seed, int depth) {
    int kind = depth > 4 ? 2 + rand_r(seed) % 4 : rand_r(seed) % 6;
    switch (kind) {
    case 0: {
        json_t *o = json_object();
        for (int i = rand_r(seed) % 5; i > 0; i--) {
            char key[8];
            snprintf(key, sizeof key, "%c%d", 'a' + rand_r(seed) % 26, rand_r(seed) % 100);
            json_object_set_new(o, key, random_value(seed, depth + 1));
        }
        return o;
    }
    case 1: {
        json_t *a = json_array();
        for (int i = rand_r(seed) % 5; i > 0; i--) json_array_append_new(a, random_value(seed, depth + 1));
        return a;
    }
    case 2: {
        char buf[40];
        size_t n = (size_t)(rand_r(seed) % 40);
        for (size_t i = 0; i < n; i++) buf[i] = (char)(rand_r(seed) % 128);
        return json_stringn(buf, n);
    }
    case 3: return json_integer((json_int_t)rand_r(seed) * (rand_r(seed) % 2 ? -1 : 1) * 4099);
    case 4: return json_boolean(rand_r(seed) % 2);
    default: return json_null();
    }
}

static void test_dump_matches_jansson_on_random_values(void **state) {
    (void)state;
    unsigned seed = 20261125;
    for (int i = 0; i < 5000; i++) {
        json_t *v = random_value(&seed, 0);
        assert_same_as_jansson(v);
        json_decref(v);
    }
}

static void test_dump_reports_allocation_failure(void **state) {
    (void)state;
    json_t *v = json_pack("{s:s, s:[i, i]}", "saga_id", "s-1", "n", 1, 2);
    saga_alloc_fail_after(0);
    assert_null(saga_json_dump(v));
    saga_alloc_fail_after(-1);
    json_decref(v);
}

static void test_flat_object_reads_compact_headers(void **state) {
    (void)state;
    saga_json_pair_t p[4];
    assert_int_equal(saga_json_flat_object("{\"saga_id\":\"s-1\",\"traceparent\":\"00-ab-cd-01\"}", p, 4), 2);
    assert_int_equal(p[0].key_len, 7);
    assert_memory_equal(p[0].key, "saga_id", 7);
    assert_int_equal(p[0].value_len, 3);
    assert_memory_equal(p[0].value, "s-1", 3);
    assert_memory_equal(p[1].value, "00-ab-cd-01", 11);
    assert_int_equal(saga_json_flat_object("{}", p, 4), 0);
    assert_int_equal(saga_json_flat_object("{\"k\":\"\"}", p, 4), 1);
    assert_int_equal(p[0].value_len, 0);
    /* Anything else is left to jansson. */
    const char *other[] = {NULL, "", "{", "{}x", "[]", "{\"a\":1}", "{\"a\":\"b\\\"c\"}", "{ \"a\":\"b\"}",
                           "{\"a\":\"b\",}", "{\"a\":\"b\"", "{\"a\"\"b\"}", "{\"a\":\"x\ty\"}",
                           "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\",\"e\":\"5\"}"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        assert_int_equal(saga_json_flat_object(other[i], p, 4), -1);
}

/* The fast parser gives jansson's value for what it accepts, and leaves the
 * rest (errors included) to jansson. */
static void assert_parses_like_jansson(const char *text, size_t len, int expect_fast) {
    json_error_t e;
    json_t *theirs = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    json_t *fast = saga_json_parse_fast(text, len);
    if (expect_fast >= 0) assert_int_equal(fast != NULL, expect_fast);
    if (fast) {
        assert_non_null(theirs);
        assert_true(json_equal(fast, theirs));
        char *a = saga_json_dump(fast), *b = saga_json_dump(theirs); /* same key order too */
        assert_string_equal(a, b);
        saga_free(a);
        saga_free(b);
    }
    json_t *ours = saga_json_parse(text, len, NULL, 0);
    assert_int_equal(ours != NULL, theirs != NULL);
    if (ours) assert_true(json_equal(ours, theirs));
    json_decref(fast);
    json_decref(ours);
    json_decref(theirs);
}

static void test_parse_fast_path_matches_jansson(void **state) {
    (void)state;
    const char *accepted[] = {
        "{}", " [ ] ", "\"\"", "0", "-0", "-123456789012345678", "true", "false", "null",
        "{\"type\":\"saga.reply\",\"message_id\":\"m-1\",\"attempt\":1,\"output\":{\"a\":[1,2,{}]}}",
        " {\n\t\"a\" : \"x\\\"y\\\\z\\/\\b\\f\\n\\r\\t\\u0041\\u0000\\u007f\" ,\r\"\":null } ",
    };
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
        assert_parses_like_jansson(accepted[i], strlen(accepted[i]), 1);
    const char *left_to_jansson[] = {
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":1,\"a\":2}", "01", "-", "1.5", "1e3",
        "-1E3", "1234567890123456789", "\"caf\u00e9\"", "\"\\u00e9\"", "\"\\ud83d\\ude00\"", "\"a\tb\"",
        "{\"a\\u0000b\":1}", "tru", "nulll", "[] []", "{\"a\":1} x", "\"\\x\"", "\"\\u12\"", "'a'",
        "[1 2]", "{1:2}", "\"unterminated",
    };
    for (size_t i = 0; i < sizeof left_to_jansson / sizeof left_to_jansson[0]; i++)
        assert_parses_like_jansson(left_to_jansson[i], strlen(left_to_jansson[i]), 0);
    char deep[2 * 1100 + 1];
    memset(deep, '[', 1100);
    memset(deep + 1100, ']', 1100);
    assert_parses_like_jansson(deep, 2200, 0);
    const char nul_inside[] = "[\"a\", 1]\0";
    assert_parses_like_jansson(nul_inside, sizeof nul_inside - 1, 0);
}

static void test_parse_fast_path_round_trips_random_values(void **state) {
    (void)state;
    unsigned seed = 7;
    for (int i = 0; i < 3000; i++) {
        json_t *v = random_value(&seed, 0);
        char *text = json_dumps(v, JSON_ENCODE_ANY | (i % 2 ? JSON_INDENT(2) : JSON_COMPACT));
        assert_parses_like_jansson(text, strlen(text), -1);
        json_t *fast = saga_json_parse_fast(text, strlen(text));
        assert_non_null(fast); /* random_value makes ASCII, integers, no duplicate keys */
        assert_true(json_equal(fast, v));
        json_decref(fast);
        free(text);
        json_decref(v);
    }
}

/* saga_json_valid agrees with jansson on syntax (duplicate keys, lone
 * surrogate escapes and out-of-range numbers aside: syntax only). */
static void test_valid_agrees_with_jansson(void **state) {
    (void)state;
    const char *cases[] = {
        "{}", " [ ] ", "\"\"", "0", "-0", "-12.5e+3", "1E-7", "true", "false", "null", "\"caf\u00e9 \xf0\x9f\x98\x80\"",
        " {\n\t\"a\" : \"x\\\"y\\\\z\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u0000\" ,\r\"\":[1,{\"b\":[]}] } ",
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "01", "-", "1.", ".5", "1e", "+1", "tru", "nulll",
        "[] []", "{\"a\":1} x", "\"\\x\"", "\"\\u12\"", "'a'", "[1 2]", "{1:2}", "\"unterminated", "\"a\tb\"",
        "\"\xff\"", "\"\xc3\"", "\"\xed\xa0\x80\"", "[1,,2]", "{,}", "[,]", "{\"a\":}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *v = json_loadb(cases[i], strlen(cases[i]), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (saga_json_valid(cases[i], strlen(cases[i])) != (v != NULL)) fail_msg("saga_json_valid differs from jansson on %s", cases[i]);
        json_decref(v);
    }
    const char nul_inside[] = "[1]\0";
    assert_false(saga_json_valid(nul_inside, sizeof nul_inside - 1));
    char deep[2 * 2100 + 1];
    memset(deep, '[', 2100);
    memset(deep + 2100, ']', 2100);
    assert_false(saga_json_valid(deep, 4200)); /* deeper than 2048 */
    assert_true(saga_json_valid(deep + 100, 4000));
    unsigned seed = 11;
    for (int i = 0; i < 2000; i++) {
        json_t *v = random_value(&seed, 0);
        char *text = json_dumps(v, JSON_ENCODE_ANY | (i % 2 ? JSON_INDENT(2) : JSON_COMPACT));
        assert_true(saga_json_valid(text, strlen(text)));
        assert_false(saga_json_valid(text, strlen(text) - 1) && strlen(text) > 1 && (text[0] == '{' || text[0] == '[' || text[0] == '"'));
        free(text);
        json_decref(v);
    }
}

/* The text writer writes what saga_json_dump writes for the same value,
 * and its errors are sticky. */
static void test_text_writer(void **state) {
    (void)state;
    const char s[] = "q\"b\\n\n\x01\x1f\0 caf\u00e9 \xf0\x9f\x98\x80";
    long long ints[] = {0, -1, 7, 1234567890123LL, -9223372036854775807LL - 1, 9223372036854775807LL};
    saga_json_buf_t b = {0};
    json_t *want = json_array();
    saga_json_buf_raw(&b, "[", 1);
    saga_json_buf_string(&b, s, sizeof s - 1);
    json_array_append_new(want, json_stringn(s, sizeof s - 1));
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        saga_json_buf_raw(&b, ",", 1);
        saga_json_buf_int(&b, ints[i]);
        json_array_append_new(want, json_integer(ints[i]));
    }
    saga_json_buf_raw(&b, ",", 1);
    assert_int_equal(saga_json_buf_json(&b, "{\"a\":[1,0.1]}", 13), 0);
    json_array_append_new(want, json_pack("{s:[i,f]}", "a", 1, 0.1));
    saga_json_buf_raw(&b, "]", 1);
    assert_int_equal(saga_json_buf_error(&b), 0);
    size_t len = 0;
    char *got = saga_json_buf_finish(&b, &len), *dump = saga_json_dump(want);
    assert_string_equal(got, dump);
    assert_int_equal(len, strlen(dump));
    assert_null(b.buf);
    saga_free(got);
    saga_free(dump);
    json_decref(want);
    /* integers as "%lld": every width, both signs, the extremes */
    unsigned long long x = 88172645463325252ULL;
    for (int i = 0; i < 3000; i++) {
        long long v = i - 500;
        if (i >= 1000 && i < 1038) { /* +-10^k and +-10^k - 1, k <= 18 */
            long long p10 = 1;
            for (int k = 0; k < (i - 1000) / 2; k++) p10 *= 10;
            v = (i % 2 ? -p10 : p10) + (i % 4 < 2 ? -1 : 0);
        } else if (i >= 1038) { /* random, every magnitude */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            v = (long long)(x >> (1 + i % 63)); /* non-negative: -v is defined */
            if (i % 2) v = -v;
        }
        char text[32];
        snprintf(text, sizeof text, "%lld", v);
        saga_json_buf_int(&b, v);
        got = saga_json_buf_finish(&b, &len);
        assert_string_equal(got, text);
        saga_free(got);
    }
    saga_json_buf_int(&b, -9223372036854775807LL - 1);
    got = saga_json_buf_finish(&b, &len);
    assert_string_equal(got, "-9223372036854775808");
    saga_free(got);
    /* invalid UTF-8 and invalid embedded JSON: SAGA_EPARSE, sticky */
    saga_json_buf_string(&b, "\xff", 1);
    assert_int_equal(saga_json_buf_error(&b), SAGA_EPARSE);
    saga_json_buf_raw(&b, "x", 1);
    assert_null(saga_json_buf_finish(&b, &len));
    assert_int_equal(saga_json_buf_json(&b, "{\"a\":", 5), SAGA_EPARSE);
    assert_int_equal(saga_json_buf_error(&b), SAGA_EPARSE);
    saga_json_buf_free(&b);
    assert_int_equal(saga_json_buf_error(&b), 0);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    saga_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dump_matches_jansson_on_fixed_values),
        cmocka_unit_test(test_dump_matches_jansson_on_random_values),
        cmocka_unit_test(test_dump_reports_allocation_failure),
        cmocka_unit_test(test_reals_shortest_round_trip),
        cmocka_unit_test(test_dump_writes_valid_utf8_and_refuses_invalid),
        cmocka_unit_test(test_flat_object_reads_compact_headers),
        cmocka_unit_test(test_parse_fast_path_matches_jansson),
        cmocka_unit_test(test_parse_fast_path_round_trips_random_values),
        cmocka_unit_test(test_valid_agrees_with_jansson),
        cmocka_unit_test(test_text_writer),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}

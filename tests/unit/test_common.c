/* The common library: durations, times, config table, allocation failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <stdlib.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_config.h"
#include "saga_error.h"
#include "saga_histogram.h"
#include "saga_partition.h"
#include "saga_utf8.h"

static void test_durations(void **state) {
    int64_t ms;
    assert_int_equal(saga_parse_duration("250ms", &ms), 0); assert_int_equal(ms, 250);
    assert_int_equal(saga_parse_duration("10s", &ms), 0); assert_int_equal(ms, 10000);
    assert_int_equal(saga_parse_duration("5m", &ms), 0); assert_int_equal(ms, 300000);
    assert_int_equal(saga_parse_duration("1h", &ms), 0); assert_int_equal(ms, 3600000);
    assert_int_equal(saga_parse_duration("1.5s", &ms), 0); assert_int_equal(ms, 1500);
    const char *bad[] = {"", "10", "s", "-1s", " 1s", "1d", "infs", "1e400s", "10 s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (saga_parse_duration(bad[i], &ms) != SAGA_EPARSE) fail_msg("'%s' accepted", bad[i]);
}

static void test_time_format_round_trip(void **state) {
    char buf[40];
    int64_t ms;
    assert_string_equal(saga_format_time(1795387144123, buf, sizeof buf), "2026-11-22T22:39:04.123Z");
    assert_int_equal(saga_parse_time(buf, &ms), 0);
    assert_int_equal(ms, 1795387144123);
    assert_int_equal(saga_parse_time("2026-11-22T22:39:04Z", &ms), 0);
    assert_int_equal(ms, 1795387144000);
    assert_int_equal(saga_parse_time("2026-13-24T22:39:04Z", &ms), SAGA_EPARSE);
    assert_int_equal(saga_parse_time("yesterday", &ms), SAGA_EPARSE);
}

/* The formatter keeps the date part of two seconds: interleaved seconds, a
 * third one, a time before 1970 and a buffer too small must all come out
 * as gmtime would write them. */
static void test_time_format_cache(void **state) {
    (void)state;
    char buf[40];
    const int64_t times[] = {1795387144123, 1795387174000, 1795387144999, 1795387174007, 1795390000001,
                             1795387144005, 0, -1, -1500};
    const char *want[] = {"2026-11-22T22:39:04.123Z", "2026-11-22T22:39:34.000Z", "2026-11-22T22:39:04.999Z",
                          "2026-11-22T22:39:34.007Z", "2026-11-22T23:26:40.001Z", "2026-11-22T22:39:04.005Z",
                          "1970-01-01T00:00:00.000Z", "1969-12-31T23:59:59.999Z", "1969-12-31T23:59:58.500Z"};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++)
        assert_string_equal(saga_format_time(times[i], buf, sizeof buf), want[i]);
    char small[24]; /* one byte short of "....Z" and its NUL */
    assert_string_equal(saga_format_time(1795387144123, small, sizeof small), "");
    char exact[25];
    assert_string_equal(saga_format_time(1795387144123, exact, sizeof exact), "2026-11-22T22:39:04.123Z");
}

static void test_config_precedence_and_errors(void **state) {
    const char *name = NULL;
    long long port = 0;
    bool flag = false;
    saga_config_option_t table[] = {
        {"name", SAGA_CFG_STRING, "dflt", "a name", &name},
        {"port", SAGA_CFG_INT, "80", "a port", &port},
        {"flag", SAGA_CFG_BOOL, "false", "a flag", &flag},
        {0},
    };
    char err[256];
    saga_kv_list_t props;
    setenv("TESTP_PORT", "81", 1);
    char *argv1[] = {"prog", NULL};
    assert_int_equal(saga_config_parse(table, "TESTP", "prog", "", 1, argv1, &props, err, sizeof err), 0);
    assert_string_equal(name, "dflt");
    assert_int_equal(port, 81); /* env over default */
    char a1[] = "--port=82", a2[] = "--flag", a3[] = "-X", a4[] = "linger.ms=3", a5[] = "--name", a6[] = "x";
    char *argv2[] = {"prog", a1, a2, a3, a4, a5, a6, NULL};
    assert_int_equal(saga_config_parse(table, "TESTP", "prog", "", 7, argv2, &props, err, sizeof err), 0);
    assert_int_equal(port, 82); /* flag over env */
    assert_true(flag);
    assert_string_equal(name, "x");
    assert_int_equal(props.count, 1);
    assert_string_equal(props.keys[0], "linger.ms");
    assert_string_equal(props.values[0], "3");
    char b1[] = "--port", b2[] = "eighty";
    char *argv3[] = {"prog", b1, b2, NULL};
    assert_int_equal(saga_config_parse(table, "TESTP", "prog", "", 3, argv3, &props, err, sizeof err), SAGA_ECONFIG);
    assert_non_null(strstr(err, "--port"));
    assert_non_null(strstr(err, "eighty"));
    char c1[] = "--prot";
    char *argv4[] = {"prog", c1, NULL};
    assert_int_equal(saga_config_parse(table, "TESTP", "prog", "", 2, argv4, &props, err, sizeof err), SAGA_ECONFIG);
    assert_non_null(strstr(err, "unknown option '--prot'"));
    unsetenv("TESTP_PORT");
}

static void test_alloc_failure_injection(void **state) {
    saga_alloc_fail_after(1);
    void *a = saga_malloc(8);
    void *b = saga_malloc(8);
    void *c = saga_malloc(8);
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c);
    saga_free(a);
    saga_free(c);
    assert_null(saga_strdup(NULL));
}

/* Issue 13.9: cuts on character boundaries (1- to 4-byte characters). */
/* One sequence checker for the project: the JSON writer, the admin API and
 * the definition loader all judge UTF-8 with it. */
static void test_utf8_seq_and_repair(void **state) {
    (void)state;
    const unsigned char *u = (const unsigned char *)"a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    assert_int_equal(saga_utf8_seq(u, 10), 1);
    assert_int_equal(saga_utf8_seq(u + 1, 9), 2);
    assert_int_equal(saga_utf8_seq(u + 3, 7), 3);
    assert_int_equal(saga_utf8_seq(u + 6, 4), 4);
    assert_int_equal(saga_utf8_seq(u + 6, 3), 0);                               /* cut short */
    assert_int_equal(saga_utf8_seq((const unsigned char *)"\xc0\xaf", 2), 0);     /* overlong */
    assert_int_equal(saga_utf8_seq((const unsigned char *)"\xed\xa0\x80", 3), 0); /* surrogate */
    assert_int_equal(saga_utf8_seq((const unsigned char *)"\xf4\x90\x80\x80", 4), 0); /* > U+10FFFF */
    assert_int_equal(saga_utf8_seq((const unsigned char *)"\x80", 1), 0);
    char text[] = "ok \xc3\xa9 \xe2\x82 \xff end\xf0\x9f";
    saga_utf8_repair(text);
    assert_string_equal(text, "ok \xc3\xa9 ?? ? end??");
}

static void test_utf8_cuts(void **state) {
    (void)state;
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"; /* a é € 😀 z: 1+2+3+4+1 bytes */
    size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11, 11};
    for (size_t max = 0; max <= 12; max++) {
        assert_int_equal(saga_utf8_prefix_n(s, 11, max), want[max]);
        assert_int_equal(saga_utf8_prefix(s, max), (int)want[max]);
    }
    assert_int_equal(saga_utf8_prefix(NULL, 5), 0);
    char buf[8];
    assert_string_equal(saga_utf8_copy(buf, 8, s), "a\xc3\xa9\xe2\x82\xac"); /* 7 bytes fit: 😀 does not */
    assert_string_equal(saga_utf8_copy(buf, 3, s), "a");
    assert_string_equal(saga_utf8_copy(buf, 1, s), "");
    assert_string_equal(saga_utf8_copy(buf, 8, NULL), "");
    assert_string_equal(saga_utf8_copy(buf, 8, "abc"), "abc");
    /* snprintf cuts anywhere; trim_cut drops the incomplete character */
    char cut[16];
    snprintf(cut, 9, "%s", s); /* 8 bytes: "a é €" and 2 of 😀's 4 */
    saga_utf8_trim_cut(cut);
    assert_string_equal(cut, "a\xc3\xa9\xe2\x82\xac");
    snprintf(cut, 6, "%s", s); /* "a é" and 2 of €'s 3 */
    saga_utf8_trim_cut(cut);
    assert_string_equal(cut, "a\xc3\xa9");
    strcpy(cut, "a\xc3\xa9");
    saga_utf8_trim_cut(cut); /* whole: unchanged */
    assert_string_equal(cut, "a\xc3\xa9");
    strcpy(cut, "\xc3");
    saga_utf8_trim_cut(cut);
    assert_string_equal(cut, "");
    /* "%.*s" with the prefix never splits a character */
    char msg[64];
    snprintf(msg, sizeof msg, "'%.*s'", saga_utf8_prefix(s, 5), s);
    assert_string_equal(msg, "'a\xc3\xa9'");
    /* not UTF-8 at the cut (stray continuation bytes): cut where asked */
    const char *junk = "\x80\x80\x80\x80\x80\x80";
    assert_int_equal(saga_utf8_prefix_n(junk, 6, 5), 5);
}

/* Vectors computed with Apache Kafka 3.9.1's own Utils.murmur2 and
 * Utils.toPositive (kafka-clients jar), so a Java producer's default
 * partitioner and sagad agree on every saga's partition. */
static void test_partition_matches_java(void **state) {
    (void)state;
    static const struct { const char *key; int32_t murmur2; int p8, p3; } v[] = {
        {"", 275646681, 1, 0},
        {"a", -1563381124, 4, 1},
        {"s-1", -1298194753, 7, 1},
        {"order-17", 1568318961, 1, 0},
        {"21", -973932308, 4, 0},
        {"foobar", -790332482, 6, 0},
        {"s-0123456789abcdef", 1366633294, 6, 1},
        {"\xc3\xa9t\xc3\xa9-42", 1947413865, 1, 0},
        {"saga/with/slashes/and-a-longer-id-0001", -1384684941, 3, 2},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        assert_int_equal(saga_murmur2(v[i].key, strlen(v[i].key)), v[i].murmur2);
        assert_int_equal(saga_partition_of(v[i].key, 8), v[i].p8);
        assert_int_equal(saga_partition_of(v[i].key, 3), v[i].p3);
        assert_int_equal(saga_partition_of(v[i].key, 1), 0);
    }
}

static void test_error_names(void **state) {
    assert_string_equal(saga_strerror(SAGA_ENOTFOUND), "not found");
    assert_string_equal(saga_errname(SAGA_ESTALE), "STALE");
    assert_string_equal(saga_strerror(-999), "unknown error");
}

static void test_histogram_buckets_and_text(void **state) {
    (void)state;
    saga_histogram_t h = {.bounds = saga_hist_fast_bounds};
    saga_histogram_add(&h, 0.0005); /* on a bound: that bucket (le) */
    saga_histogram_add(&h, 0.003);
    saga_histogram_add(&h, 100);    /* past the last bound: +Inf */
    assert_int_equal(h.count, 3);
    assert_int_equal(h.counts[0], 1);
    assert_int_equal(h.counts[3], 1);
    assert_int_equal(h.counts[SAGA_HIST_BUCKETS - 1], 1);
    char buf[4096] = "";
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    assert_non_null(f);
    saga_histogram_write(f, "x_seconds", "help", &h);
    fclose(f);
    assert_non_null(strstr(buf, "# TYPE x_seconds histogram\n"));
    assert_non_null(strstr(buf, "x_seconds_bucket{le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(buf, "x_seconds_bucket{le=\"0.005\"} 2\n")); /* cumulative */
    assert_non_null(strstr(buf, "x_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(buf, "x_seconds_count 3\n"));
    assert_non_null(strstr(buf, "x_seconds_sum 100.003500\n"));
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_partition_matches_java),
        cmocka_unit_test(test_time_format_round_trip),
        cmocka_unit_test(test_time_format_cache),
        cmocka_unit_test(test_config_precedence_and_errors),
        cmocka_unit_test(test_alloc_failure_injection),
        cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_utf8_cuts),
        cmocka_unit_test(test_utf8_seq_and_repair),
        cmocka_unit_test(test_histogram_buckets_and_text),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}

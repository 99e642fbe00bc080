/* sagabench's figures: percentiles and the deltas of a measured window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include "bench.h"

static void test_percentile_nearest_rank(void **state) {
    (void)state;
    double v[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    assert_true(bench_percentile(v, 10, 50) == 5);
    assert_true(bench_percentile(v, 10, 95) == 10);
    assert_true(bench_percentile(v, 10, 99) == 10);
    assert_true(bench_percentile(v, 10, 10) == 1);
    assert_true(bench_percentile(v, 10, 0) == 1);
    assert_true(bench_percentile(v, 1, 99) == 1);
    assert_true(bench_percentile(v, 0, 50) == 0);
    double h[1000];
    for (int i = 0; i < 1000; i++) h[i] = i + 1;
    assert_true(bench_percentile(h, 1000, 99) == 990);
    assert_true(bench_percentile(h, 1000, 99.9) == 999);
}

static void test_window_deltas(void **state) {
    (void)state;
    bench_window_t w0 = {.at_us = 1000000, .cpu_us = 500000, .rss_kb = 1000, .hwm_kb = 1200,
                         .commits = 100, .messages = 1000, .produced = 3000};
    bench_window_t w1 = {.at_us = 3000000, .cpu_us = 700000, .rss_kb = 1100, .hwm_kb = 1300,
                         .commits = 500, .messages = 2000, .produced = 5000};
    double lat[] = {30, 10, 20, 40}; /* unsorted: fill sorts */
    bench_result_t r = {0};
    bench_result_fill(&r, &w0, &w1, lat, 4);
    assert_true(r.seconds == 2.0);
    assert_true(r.sagas_per_s == 2.0);
    assert_true(r.p50_ms == 20 && r.max_ms == 40);
    assert_true(r.cpu_us_per_saga == 50000.0);
    assert_true(r.commits_per_s == 200.0);
    assert_true(r.kafka_records_per_s == 1500.0);
    assert_int_equal(r.rss_start_kb, 1000);
    assert_int_equal(r.rss_end_kb, 1100);
    bench_window_t unknown = w1;
    unknown.cpu_us = -1;
    unknown.commits = -1;
    bench_result_fill(&r, &w0, &unknown, lat, 4);
    assert_true(r.cpu_us_per_saga < 0);
    assert_true(r.commits_per_s < 0 && r.kafka_records_per_s < 0);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentile_nearest_rank),
        cmocka_unit_test(test_window_deltas),
    };
    return cmocka_run_group_tests_name("bench", tests, NULL, NULL);
}

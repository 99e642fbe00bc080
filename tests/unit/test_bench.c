/* sagabench's figures: percentiles and the deltas of a measured window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <math.h>

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

/* Per-saga figures of the whole stack: every process's CPU, records and
 * statements per saga, and the stage means over the window. */
static void test_processes_and_stages(void **state) {
    (void)state;
    bench_procs_t procs = {.count = 2, .name = {"sagad", "order-worker"}, .pid = {1, 2}};
    bench_window_t w0 = {.at_us = 0, .cpu_us = 0, .commits = 0, .messages = 0, .produced = 0, .statements = 1000,
                         .proc_cpu_us = {100, 50}};
    bench_window_t w1 = {.at_us = 1000000, .cpu_us = 0, .commits = 10, .messages = 40, .produced = 60,
                         .statements = 1800, .proc_cpu_us = {1100, 250}};
    bench_stages_parse(&w0.stages, "sagad", "sagad_consume_lag_seconds_sum 1.5\nsagad_consume_lag_seconds_count 100\n"
                                            "sagad_unknown_seconds_sum 9\n");
    bench_stages_parse(&w1.stages, "sagad", "# HELP x\nsagad_consume_lag_seconds_bucket{le=\"+Inf\"} 300\n"
                                            "sagad_consume_lag_seconds_sum 2.5\nsagad_consume_lag_seconds_count 300\n");
    bench_stages_parse(&w1.stages, "order-worker", "participant_reply_duration_seconds_sum 0.2\n"
                                                   "participant_reply_duration_seconds_count 50\n");
    assert_int_equal(w0.stages.count, 1); /* a metric it does not know is left out */
    double lat[10] = {0};
    bench_result_t r = {.procs = &procs};
    bench_result_fill(&r, &w0, &w1, lat, 10);
    assert_true(r.proc_cpu_us_per_saga[0] == 100.0);
    assert_true(r.proc_cpu_us_per_saga[1] == 20.0);
    assert_true(r.records_per_saga == 10.0);    /* (40 + 60) / 10 sagas */
    assert_true(r.statements_per_saga == 80.0); /* (1800 - 1000) / 10 */
    assert_int_equal(r.stage_means.count, 2);
    assert_string_equal(r.stage_means.name[0], "sagad sagad_consume_lag_seconds");
    assert_true(r.stage_means.n[0] == 200.0);
    assert_true(fabs(r.stage_means.sum[0] - 0.005) < 1e-12); /* (2.5 - 1.5) / 200 */
    assert_string_equal(r.stage_means.name[1], "order-worker participant_reply_duration_seconds");
    assert_true(fabs(r.stage_means.sum[1] - 0.004) < 1e-12); /* new in w1: from zero */
}

/* A stack directory's pid files, in name order, sagabench last; other files
 * and pid files without a pid are left out. */
static void test_procs_of_a_stack_directory(void **state) {
    (void)state;
    char dir[] = "/tmp/test-bench-procs-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *files[][2] = {{"order-worker.pid", "222"}, {"sagad.pid", "111"}, {"order.pid", "333"},
                              {"empty.pid", ""}, {"sagad.log", "9"}};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, files[k][0]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(files[k][1], f);
        fclose(f);
    }
    bench_procs_t p;
    bench_procs_find(&p, dir);
    assert_int_equal(p.count, 4);
    assert_string_equal(p.name[0], "order");
    assert_int_equal(p.pid[0], 333);
    assert_string_equal(p.name[1], "order-worker");
    assert_int_equal(p.pid[1], 222);
    assert_string_equal(p.name[2], "sagad");
    assert_int_equal(p.pid[2], 111);
    assert_string_equal(p.name[3], "sagabench");
    assert_int_equal(p.pid[3], getpid());
    bench_procs_find(&p, NULL);
    assert_int_equal(p.count, 1);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentile_nearest_rank),
        cmocka_unit_test(test_window_deltas),
        cmocka_unit_test(test_processes_and_stages),
        cmocka_unit_test(test_procs_of_a_stack_directory),
    };
    return cmocka_run_group_tests_name("bench", tests, NULL, NULL);
}

/* GET /metrics (Prometheus text) and GET /readyz, from the database and a
 * runtime snapshot like the one sagad's loop publishes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "admin_route.h"
#include "runtime.h"
#include "saga_alloc.h"
#include "test_admin_fixture.h"

typedef struct {
    fixture_db_t fx;
    sqlite3 *ro;
    sagad_runtime_t *rt;
    admin_ctx_t ctx;
} world_t;

static int setup(void **state) {
    world_t *w = calloc(1, sizeof *w);
    if (fixture_db_create(&w->fx, 1)) return -1;
    if (sqlite3_open_v2(w->fx.db_path, &w->ro, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return -1;
    w->rt = sagad_runtime_new();
    saga_histogram_t h = {.bounds = saga_hist_fast_bounds};
    saga_histogram_add(&h, 0.003);
    saga_histogram_add(&h, 7.0);
    sagad_runtime_publish(w->rt, json_pack("{s:b, s:i, s:{s:i}, s:{s:i}, s:[{s:s, s:i, s:i, s:s, s:i}], s:{s:o}, s:{s:i}}",
                                           "kafka_ready", 1, "outbox_in_flight", 3,
                                           "counters", "sagas_started", 42,
                                           "ignored_events", "other_attempt", 5,
                                           "topics", "topic", "pay\"ment", "in_flight", 7, "waiting", 2,
                                           "circuit", "open", "consecutive_failures", 9,
                                           "histograms", "commit_seconds", saga_histogram_json(&h),
                                           "consumer_lag", "saga.replies", 12));
    w->ctx = (admin_ctx_t){.db = w->ro, .stats_runtime = sagad_runtime_fill, .stats_runtime_arg = w->rt};
    *state = w;
    return 0;
}

static int teardown(void **state) {
    world_t *w = *state;
    sagad_runtime_free(&w->rt);
    sqlite3_close(w->ro);
    fixture_db_destroy(&w->fx);
    free(w);
    return 0;
}

static char *get(world_t *w, const char *path, unsigned *status, const char **ctype) {
    admin_request_t req = {.method = "GET", .path = path};
    admin_response_t res;
    assert_int_equal(admin_route(&w->ctx, &req, &res), 0);
    *status = res.status;
    if (ctype) *ctype = res.content_type;
    return res.body;
}

static void test_metrics_text_format(void **state) {
    world_t *w = *state;
    unsigned st;
    const char *ct;
    char *body = get(w, "/metrics", &st, &ct);
    assert_int_equal(st, 200);
    assert_non_null(strstr(ct, "text/plain; version=0.0.4"));
    assert_non_null(strstr(body, "saga_sagas{status=\"running\"} 1\n"));
    assert_non_null(strstr(body, "# TYPE saga_sagas gauge\n"));
    assert_non_null(strstr(body, "saga_outbox_backlog 0\n"));
    assert_non_null(strstr(body, "sagad_sagas_started_total 42\n"));
    assert_non_null(strstr(body, "sagad_ignored_events_total{reason=\"other_attempt\"} 5\n"));
    assert_non_null(strstr(body, "sagad_topic_in_flight{topic=\"pay\\\"ment\"} 7\n")); /* escaped label */
    assert_non_null(strstr(body, "sagad_circuit_state{topic=\"pay\\\"ment\",state=\"open\"} 1\n"));
    assert_non_null(strstr(body, "sagad_circuit_state{topic=\"pay\\\"ment\",state=\"closed\"} 0\n"));
    assert_non_null(strstr(body, "sagad_commit_duration_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(body, "sagad_commit_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(body, "sagad_commit_duration_seconds_count 2\n"));
    assert_non_null(strstr(body, "sagad_kafka_ready 1\n"));
    assert_non_null(strstr(body, "sagad_consumer_lag{topic=\"saga.replies\"} 12\n"));
    saga_free(body);
}

/* The start-up restore's figures (restore.c's "restore" array), per shard. */
static void test_metrics_restore(void **state) {
    world_t *w = *state;
    sagad_runtime_publish(w->rt, json_pack("{s:b, s:[{s:i, s:s, s:b, s:i, s:i, s:f, s:i}, {s:i, s:s, s:b, s:i, s:i, s:f, s:i}]}",
                                           "kafka_ready", 1, "restore",
                                           "shard", 0, "kind", "none", "in_progress", 0, "records", 0, "sagas", 0, "seconds", 0.0,
                                           "lost_before", 0,
                                           "shard", 1, "kind", "rebuilt", "in_progress", 0, "records", 1234, "sagas", 1200,
                                           "seconds", 1.5, "lost_before", 4321));
    unsigned st;
    char *body = get(w, "/metrics", &st, NULL);
    assert_int_equal(st, 200);
    assert_non_null(strstr(body, "# TYPE sagad_restore_records_total counter\n"));
    assert_non_null(strstr(body, "sagad_restore_records_total{shard=\"1\"} 1234\n"));
    assert_non_null(strstr(body, "sagad_restore_sagas_total{shard=\"1\"} 1200\n"));
    assert_non_null(strstr(body, "sagad_restore_seconds{shard=\"1\"} 1.500\n"));
    assert_non_null(strstr(body, "sagad_restore_rebuilt{shard=\"1\"} 1\n"));
    assert_non_null(strstr(body, "sagad_restore_rebuilt{shard=\"0\"} 0\n"));
    assert_non_null(strstr(body, "sagad_restore_in_progress{shard=\"0\"} 0\n"));
    assert_non_null(strstr(body, "sagad_restore_changelog_truncated{shard=\"1\"} 1\n"));
    assert_non_null(strstr(body, "sagad_restore_changelog_truncated{shard=\"0\"} 0\n"));
    saga_free(body);
}

static void test_metrics_without_runtime_has_db_figures(void **state) {
    world_t *w = *state;
    w->ctx.stats_runtime = NULL;
    unsigned st;
    char *body = get(w, "/metrics", &st, NULL);
    assert_int_equal(st, 200);
    assert_non_null(strstr(body, "saga_sagas{status="));
    assert_null(strstr(body, "sagad_"));
    saga_free(body);
}

static void test_readyz(void **state) {
    world_t *w = *state;
    unsigned st;
    const char *ct;
    char *body = get(w, "/readyz", &st, &ct);
    assert_int_equal(st, 200);
    assert_null(ct); /* JSON */
    assert_non_null(strstr(body, "\"status\":\"ready\""));
    saga_free(body);
    sagad_runtime_publish(w->rt, json_pack("{s:b}", "kafka_ready", 0));
    body = get(w, "/readyz", &st, NULL);
    assert_int_equal(st, 503);
    assert_non_null(strstr(body, "\"kafka\":false"));
    saga_free(body);
    w->ctx.stats_runtime = NULL; /* no loop: not ready */
    body = get(w, "/readyz", &st, NULL);
    assert_int_equal(st, 503);
    saga_free(body);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_text_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_without_runtime_has_db_figures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readyz, setup, teardown),
    };
    return cmocka_run_group_tests_name("admin_metrics", tests, NULL, NULL);
}

/* The bulk commands POST /v1/sagas/retry and /v1/sagas/abort: the body's
 * checks (each bad member a 400 naming it), the selection (dry run counts,
 * paging past one list page, max), and what is handed on: the command
 * queue, or a publisher in batches of at most 100 with unique message ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_route.h"
#include "commands.h"
#include "saga_alloc.h"
#include "test_admin_fixture.h"

#define N_FAILED 1200 /* more than two list pages of 500 */

typedef struct {
    fixture_db_t fx;
    sqlite3 *ro;
    saga_command_queue_t *q;
    admin_ctx_t ctx;
    /* the fake publisher */
    int calls, batch_calls, max_batch, fail_from; /* fail_from: the message count from which it fails (0: never) */
    json_t *seen;                                 /* message_id -> saga id */
} world_t;

static int setup(void **state) {
    world_t *w = calloc(1, sizeof *w);
    if (fixture_db_create(&w->fx, 1)) return -1;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
             " INSERT INTO sagas (id, definition, version, status, input, created_at, updated_at, error_code, search)"
             " SELECT printf('cf-%%04d', i), CASE WHEN i %% 4 = 0 THEN 'other' ELSE 'payments' END, 1,"
             " 'compensation_failed', '{}', 1700000100000 + i, 1700000100000 + i,"
             " CASE WHEN i %% 2 = 0 THEN 'REFUND_DOWN' ELSE 'X' END,"
             " CASE WHEN i <= 30 THEN json_object('region', 'eu') END FROM n",
             N_FAILED);
    if (fixture_db_exec(&w->fx, sql)) return -1;
    /* a delayed start, not begun yet: abort acts on it too */
    if (fixture_db_exec(&w->fx, "INSERT INTO sagas (id, definition, version, status, input, created_at, updated_at)"
                                " VALUES ('s-sched-1', 'order_fulfillment', 1, 'scheduled', '{}', 1700000000500,"
                                " 1700000000500)"))
        return -1;
    if (sqlite3_open_v2(w->fx.db_path, &w->ro, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return -1;
    w->q = saga_command_queue_new(4096);
    w->ctx = (admin_ctx_t){.db = w->ro, .commands = w->q, .token = "s3cret"};
    w->seen = json_object();
    *state = w;
    return 0;
}

static int teardown(void **state) {
    world_t *w = *state;
    saga_command_t c[64];
    int n;
    while ((n = saga_command_take(w->q, c, 64)) > 0)
        for (int i = 0; i < n; i++) saga_command_clear(&c[i]);
    saga_command_queue_free(&w->q);
    sqlite3_close(w->ro);
    fixture_db_destroy(&w->fx);
    json_decref(w->seen);
    free(w);
    return 0;
}

static unsigned post_q(world_t *w, const char *path, const char *query, const char *body, json_t **doc) {
    admin_request_t req = {.method = "POST", .path = path, .query = query, .body = body,
                           .body_len = body ? strlen(body) : 0, .authorization = "Bearer s3cret",
                           .content_type = "application/json"};
    admin_response_t res;
    assert_int_equal(admin_route(&w->ctx, &req, &res), 0);
    json_t *d = json_loads(res.body, 0, NULL);
    assert_non_null(d); /* every answer is one JSON document */
    if (doc) *doc = d;
    else json_decref(d);
    saga_free(res.body);
    return res.status;
}

static unsigned post(world_t *w, const char *path, const char *body, json_t **doc) {
    return post_q(w, path, NULL, body, doc);
}

static const char *err_member(json_t *doc, const char *m) {
    return json_string_value(json_object_get(json_object_get(doc, "error"), m));
}

/* The body answers 400 naming `member` (the error's "parameter"). */
static void bad(world_t *w, const char *path, const char *body, const char *member) {
    json_t *doc = NULL;
    unsigned status = post(w, path, body, &doc);
    if (status != 400 || !err_member(doc, "parameter") || strcmp(err_member(doc, "parameter"), member) != 0)
        fail_msg("%s %s: %u %s (wanted 400 naming '%s')", path, body, status, json_dumps(doc, JSON_COMPACT), member);
    assert_non_null(strstr(err_member(doc, "message"), member));
    json_decref(doc);
    assert_int_equal(saga_command_pending(w->q), 0);
}

static void test_bad_members_are_named(void **state) {
    world_t *w = *state;
    const char *R = "/v1/sagas/retry", *A = "/v1/sagas/abort";
    bad(w, R, "{\"stauts\":\"compensation_failed\"}", "stauts");
    bad(w, R, "{\"status\":5}", "status");
    bad(w, R, "{\"status\":[]}", "status");
    bad(w, R, "{\"status\":[\"compensation_failed\", 3]}", "status");
    bad(w, R, "{\"status\":\"running\"}", "status"); /* retry acts on compensation_failed only */
    bad(w, R, "{\"status\":[\"compensation_failed\",\"compensating\"]}", "status");
    bad(w, A, "{\"status\":\"compensation_failed\"}", "status"); /* abort: running */
    bad(w, A, "{\"status\":\"bogus\"}", "status");
    bad(w, R, "{\"status\":\"scheduled\"}", "status"); /* retry: compensation_failed only */
    bad(w, R, "{\"definition\":1}", "definition");
    bad(w, R, "{\"definition\":\"\"}", "definition");
    bad(w, R, "{\"step\":[\"a\"]}", "step");
    bad(w, R, "{\"error_code\":null}", "error_code");
    bad(w, R, "{\"step_status\":\"bogus\"}", "step_status"); /* the list's own check */
    bad(w, R, "{\"created_after\":\"yesterday\"}", "created_after");
    bad(w, R, "{\"created_before\":\"2023-11-14 22:13:20\"}", "created_before");
    bad(w, R, "{\"updated_after\":1700000000}", "updated_after");
    bad(w, R, "{\"updated_before\":\"2023-13-01T00:00:00Z\"}", "updated_before");
    bad(w, R, "{\"search\":\"order=1\"}", "search");
    bad(w, R, "{\"search\":{\"order\":1}}", "search");
    bad(w, R, "{\"search\":{\"1st\":\"x\"}}", "search.1st"); /* the list's own check of the name */
    bad(w, R, "{\"dry_run\":\"yes\"}", "dry_run");
    bad(w, R, "{\"dry_run\":1}", "dry_run");
    bad(w, R, "{\"reason\":7}", "reason");
    bad(w, R, "{\"max\":0}", "max");
    bad(w, R, "{\"max\":10001}", "max");
    bad(w, R, "{\"max\":\"5\"}", "max");
    bad(w, R, "{\"max\":2.5}", "max");
    /* not an object, not JSON, filters in the query instead of the body */
    json_t *doc = NULL;
    assert_int_equal(post(w, R, "[]", NULL), 400);
    assert_int_equal(post(w, R, "{", NULL), 400);
    assert_int_equal(post_q(w, R, "status=compensation_failed", "{}", &doc), 400);
    assert_string_equal(err_member(doc, "parameter"), "status");
    json_decref(doc);
    assert_int_equal(saga_command_pending(w->q), 0);
}

static void test_guarded_like_other_posts(void **state) {
    world_t *w = *state;
    admin_request_t req = {.method = "POST", .path = "/v1/sagas/retry", .body = "{}", .body_len = 2,
                           .content_type = "application/json"};
    admin_response_t res;
    assert_int_equal(admin_route(&w->ctx, &req, &res), 0);
    assert_int_equal(res.status, 401);
    saga_free(res.body);
    req.authorization = "Bearer nope";
    assert_int_equal(admin_route(&w->ctx, &req, &res), 0);
    assert_int_equal(res.status, 403);
    saga_free(res.body);
    req.authorization = "Bearer s3cret";
    req.content_type = "text/plain";
    assert_int_equal(admin_route(&w->ctx, &req, &res), 0);
    assert_int_equal(res.status, 415);
    saga_free(res.body);
    req.method = "GET"; /* GET /v1/sagas/retry is the saga named "retry" */
    req.authorization = NULL;
    assert_int_equal(admin_route(&w->ctx, &req, &res), 0);
    assert_int_equal(res.status, 404);
    saga_free(res.body);
    assert_int_equal(saga_command_pending(w->q), 0);
}

static void test_dry_run_counts(void **state) {
    world_t *w = *state;
    json_t *doc = NULL;
    /* every compensation_failed saga: three list pages */
    assert_int_equal(post(w, "/v1/sagas/retry", "{\"dry_run\":true}", &doc), 200);
    assert_true(json_is_true(json_object_get(doc, "dry_run")));
    assert_int_equal(json_integer_value(json_object_get(doc, "matched")), N_FAILED);
    assert_true(json_is_false(json_object_get(doc, "more")));
    json_t *first = json_object_get(doc, "first_ids");
    assert_int_equal(json_array_size(first), 20);
    assert_string_equal(json_string_value(json_array_get(first, 0)), "cf-1200"); /* newest first */
    json_decref(doc);
    /* filters narrow it: 3 of 4 are payments, half of those REFUND_DOWN */
    assert_int_equal(post(w, "/v1/sagas/retry",
                          "{\"dry_run\":true, \"status\":[\"compensation_failed\"], \"definition\":\"payments\","
                          " \"error_code\":\"REFUND_DOWN\", \"created_after\":\"2023-11-14T22:15:00.101Z\"}",
                          &doc),
                     200);
    /* i >= 101, even, not a multiple of 4: 102, 106, ..., 1198 */
    assert_int_equal(json_integer_value(json_object_get(doc, "matched")), 275);
    json_decref(doc);
    /* max: counted up to it, "more" says there were more */
    assert_int_equal(post(w, "/v1/sagas/retry", "{\"dry_run\":true, \"max\":501}", &doc), 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "matched")), 501);
    assert_true(json_is_true(json_object_get(doc, "more")));
    json_decref(doc);
    assert_int_equal(post(w, "/v1/sagas/retry", "{\"dry_run\":true, \"max\":1200}", &doc), 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "matched")), 1200);
    assert_true(json_is_false(json_object_get(doc, "more")));
    json_decref(doc);
    /* search: passed to the list as search.NAME=VALUE */
    assert_int_equal(post(w, "/v1/sagas/retry", "{\"dry_run\":true, \"search\":{\"region\":\"eu\"}}", &doc), 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "matched")), 30);
    json_decref(doc);
    assert_int_equal(post(w, "/v1/sagas/retry",
                          "{\"dry_run\":true, \"definition\":\"other\", \"search\":{\"region\":\"eu\"}}", &doc),
                     200);
    assert_int_equal(json_integer_value(json_object_get(doc, "matched")), 7); /* 4, 8, ..., 28 */
    json_decref(doc);
    assert_int_equal(post(w, "/v1/sagas/retry", "{\"dry_run\":true, \"search\":{\"region\":\"us\"}}", &doc), 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "matched")), 0);
    json_decref(doc);
    /* abort: the running and the scheduled saga */
    assert_int_equal(post(w, "/v1/sagas/abort", "{\"dry_run\":true}", &doc), 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "matched")), 2);
    json_decref(doc);
    assert_int_equal(post(w, "/v1/sagas/abort", "{\"dry_run\":true, \"status\":\"running\"}", &doc), 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "matched")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "first_ids"), 0)), FX_SAGA_RUNNING);
    json_decref(doc);
    assert_int_equal(post(w, "/v1/sagas/abort", "{\"dry_run\":true, \"status\":[\"scheduled\"]}", &doc), 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "matched")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "first_ids"), 0)), "s-sched-1");
    json_decref(doc);
    assert_int_equal(post(w, "/v1/sagas/abort", "{\"dry_run\":true, \"definition\":\"nope\"}", &doc), 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "matched")), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "first_ids")), 0);
    json_decref(doc);
    assert_int_equal(saga_command_pending(w->q), 0); /* a dry run queues nothing */
}

static void test_real_run_queues_each_once(void **state) {
    world_t *w = *state;
    json_t *doc = NULL;
    assert_int_equal(post(w, "/v1/sagas/retry", "{\"definition\":\"other\", \"reason\":\"refunds are back\"}", &doc),
                     202);
    assert_true(json_is_false(json_object_get(doc, "dry_run")));
    assert_int_equal(json_integer_value(json_object_get(doc, "matched")), 300);
    assert_int_equal(json_integer_value(json_object_get(doc, "queued")), 300);
    assert_non_null(json_string_value(json_object_get(doc, "message")));
    json_decref(doc);
    saga_command_t c[400];
    int n = saga_command_take(w->q, c, 400);
    assert_int_equal(n, 300);
    json_t *ids = json_object();
    for (int i = 0; i < n; i++) {
        assert_int_equal(c[i].kind, SAGA_CMD_RETRY);
        assert_string_equal(c[i].reason, "refunds are back");
        assert_int_equal(atoi(c[i].saga_id + 3) % 4, 0);
        json_object_set_new(ids, c[i].saga_id, json_true());
        saga_command_clear(&c[i]);
    }
    assert_int_equal(json_object_size(ids), 300); /* each saga once */
    json_decref(ids);
    /* abort of running sagas (the scheduled one stays) */
    assert_int_equal(post(w, "/v1/sagas/abort", "{\"status\":\"running\"}", &doc), 202);
    assert_int_equal(json_integer_value(json_object_get(doc, "queued")), 1);
    json_decref(doc);
    assert_int_equal(saga_command_take(w->q, c, 4), 1);
    assert_int_equal(c[0].kind, SAGA_CMD_ABORT);
    assert_string_equal(c[0].saga_id, FX_SAGA_RUNNING);
    assert_null(c[0].reason);
    saga_command_clear(&c[0]);
}

static int fake_publish(void *arg, int shard, const char *key, const char *payload, char *why, size_t whylen) {
    world_t *w = arg;
    if (w->fail_from && w->calls >= w->fail_from) {
        snprintf(why, whylen, "broker down");
        return -1;
    }
    w->calls++;
    json_t *m = json_loads(payload, 0, NULL);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "type")), "saga.control");
    assert_string_equal(json_string_value(json_object_get(m, "saga_id")), key);
    const char *mid = json_string_value(json_object_get(m, "message_id"));
    assert_non_null(mid);
    assert_null(json_object_get(w->seen, mid)); /* unique per saga per request */
    json_object_set_new(w->seen, mid, json_string(key));
    json_decref(m);
    return 0;
}

static int fake_batch(void *arg, int n, const int *shards, const char *const *keys, const char *const *payloads,
                      unsigned char *failed, char *why, size_t whylen) {
    world_t *w = arg;
    w->batch_calls++;
    if (n > w->max_batch) w->max_batch = n;
    int nfailed = 0;
    for (int i = 0; i < n; i++) {
        failed[i] = fake_publish(arg, shards[i], keys[i], payloads[i], why, whylen) != 0;
        nfailed += failed[i];
    }
    return nfailed;
}

static void test_publisher_gets_batches(void **state) {
    world_t *w = *state;
    w->ctx.publish = fake_publish;
    w->ctx.publish_batch = fake_batch;
    w->ctx.publish_arg = w;
    json_t *doc = NULL;
    assert_int_equal(post(w, "/v1/sagas/retry", "{\"max\":1050}", &doc), 202);
    assert_int_equal(json_integer_value(json_object_get(doc, "queued")), 1050);
    assert_true(json_is_true(json_object_get(doc, "more")));
    json_decref(doc);
    assert_int_equal(w->calls, 1050);
    assert_int_equal(w->batch_calls, 11);
    assert_int_equal(w->max_batch, 100);
    assert_int_equal(saga_command_pending(w->q), 0);

    /* without publish_batch: one at a time; a failure stops it with a 503 saying how far it got */
    w->ctx.publish_batch = NULL;
    w->calls = 0;
    w->fail_from = 150;
    json_object_clear(w->seen);
    assert_int_equal(post(w, "/v1/sagas/retry", "{}", &doc), 503);
    assert_string_equal(err_member(doc, "code"), "unavailable");
    assert_non_null(strstr(err_member(doc, "message"), "broker down"));
    assert_int_equal(json_integer_value(json_object_get(doc, "queued")), 150);
    assert_int_equal(json_integer_value(json_object_get(doc, "matched")), N_FAILED);
    json_decref(doc);
    assert_int_equal(w->calls, 150);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_members_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guarded_like_other_posts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dry_run_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_run_queues_each_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publisher_gets_batches, setup, teardown),
    };
    return cmocka_run_group_tests_name("admin_bulk", tests, NULL, NULL);
}

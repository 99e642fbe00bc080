/* The admin API's command endpoints (start, abort, retry): the guards
 * every request passes (Host, Origin, bearer token, JSON body), checks
 * against the read-only database, and what they queue for the loop. */
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
#include "commands.h"
#include "saga_alloc.h"
#include "test_admin_fixture.h"

typedef struct {
    fixture_db_t fx;
    sqlite3 *ro;
    saga_command_queue_t *q;
    admin_ctx_t ctx;
} world_t;

static int setup(void **state) {
    world_t *w = calloc(1, sizeof *w);
    if (fixture_db_create(&w->fx, 1)) return -1;
    if (fixture_db_exec(&w->fx, "INSERT INTO definitions VALUES ('order_fulfillment', 1, 'h', '{}', 0)")) return -1;
    if (sqlite3_open_v2(w->fx.db_path, &w->ro, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return -1;
    w->q = saga_command_queue_new(4);
    w->ctx = (admin_ctx_t){.db = w->ro, .commands = w->q, .token = "s3cret"};
    *state = w;
    return 0;
}

static int teardown(void **state) {
    world_t *w = *state;
    saga_command_queue_free(&w->q);
    sqlite3_close(w->ro);
    fixture_db_destroy(&w->fx);
    free(w);
    return 0;
}

static const char *const HOSTS[] = {"127.0.0.1", "localhost", "sagad.internal", NULL};

/* One request with the given headers (NULL: absent); returns the status. */
static unsigned request(world_t *w, const char *method, const char *path, const char *body, const char *auth,
                        const char *content_type, const char *host, const char *origin, json_t **doc) {
    w->ctx.hosts = HOSTS;
    admin_request_t req = {.method = method, .path = path, .body = body, .body_len = body ? strlen(body) : 0,
                           .authorization = auth, .content_type = content_type, .host = host, .origin = origin};
    admin_response_t res;
    assert_int_equal(admin_route(&w->ctx, &req, &res), 0);
    if (doc) *doc = json_loads(res.body, 0, NULL);
    else { /* every answer is one JSON document */
        json_t *d = json_loads(res.body, 0, NULL);
        assert_non_null(d);
        json_decref(d);
    }
    saga_free(res.body);
    return res.status;
}

static unsigned post(world_t *w, const char *path, const char *body, const char *auth, json_t **doc) {
    admin_request_t req = {.method = "POST", .path = path, .body = body, .body_len = body ? strlen(body) : 0,
                           .authorization = auth, .content_type = "application/json"};
    admin_response_t res;
    assert_int_equal(admin_route(&w->ctx, &req, &res), 0);
    if (doc) *doc = json_loads(res.body, 0, NULL);
    saga_free(res.body);
    return res.status;
}

static const char *error_code(json_t *doc) {
    return json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
}

static void test_start_needs_the_token(void **state) {
    world_t *w = *state;
    json_t *doc;
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\"}", NULL, &doc), 401);
    assert_string_equal(error_code(doc), "unauthorized");
    json_decref(doc);
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\"}", "Bearer nope", &doc), 403);
    assert_string_equal(error_code(doc), "forbidden");
    json_decref(doc);
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\"}", "Bearer s3cret0", NULL), 403);
    assert_int_equal(saga_command_pending(w->q), 0);
}

static void test_start_queues_a_start_message(void **state) {
    world_t *w = *state;
    json_t *doc;
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\",\"saga_id\":\"new-1\",\"input\":{\"a\":1}}",
                          "Bearer s3cret", &doc), 202);
    assert_string_equal(json_string_value(json_object_get(doc, "saga_id")), "new-1");
    json_decref(doc);
    saga_command_t c;
    assert_int_equal(saga_command_take(w->q, &c, 1), 1);
    assert_int_equal(c.kind, SAGA_CMD_START);
    json_t *msg = json_loads(c.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(msg, "type")), "saga.start");
    assert_string_equal(json_string_value(json_object_get(msg, "saga_id")), "new-1");
    assert_string_equal(json_string_value(json_object_get(msg, "message_id")), "http-new-1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(msg, "input"), "a")), 1);
    json_decref(msg);
    saga_command_clear(&c);
}

static void test_start_without_id_gets_one(void **state) {
    world_t *w = *state;
    json_t *doc;
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\"}", "Bearer s3cret", &doc), 202);
    const char *id = json_string_value(json_object_get(doc, "saga_id"));
    assert_non_null(id);
    assert_true(strncmp(id, "s-", 2) == 0);
    json_decref(doc);
}

static void test_start_of_existing_saga_is_idempotent(void **state) {
    world_t *w = *state;
    json_t *doc;
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\",\"saga_id\":\"" FX_SAGA_RUNNING "\"}",
                          "Bearer s3cret", &doc), 200);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "running");
    json_decref(doc);
    assert_int_equal(saga_command_pending(w->q), 0);
}

static void test_start_bad_input(void **state) {
    world_t *w = *state;
    json_t *doc;
    assert_int_equal(post(w, "/v1/sagas", "{nope", "Bearer s3cret", &doc), 400);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(doc, "error"), "message")), "not valid JSON"));
    json_decref(doc);
    assert_int_equal(post(w, "/v1/sagas", "[1]", "Bearer s3cret", NULL), 400);
    assert_int_equal(post(w, "/v1/sagas", "{}", "Bearer s3cret", &doc), 400);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(doc, "error"), "message")), "definition"));
    json_decref(doc);
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\",\"saga_id\":\"a/b\"}", "Bearer s3cret", NULL), 400);
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\",\"saga_id\":7}", "Bearer s3cret", NULL), 400);
    /* issue 13.12: a saga id over 127 bytes is refused, not cut to 127 */
    char body[400];
    snprintf(body, sizeof body, "{\"definition\":\"order_fulfillment\",\"saga_id\":\"%0128d\"}", 0);
    assert_int_equal(post(w, "/v1/sagas", body, "Bearer s3cret", &doc), 400);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(doc, "error"), "message")), "1-127"));
    json_decref(doc);
    snprintf(body, sizeof body, "{\"definition\":\"order_fulfillment\",\"saga_id\":\"%0127d\"}", 0);
    assert_int_equal(post(w, "/v1/sagas", body, "Bearer s3cret", NULL), 202);
    assert_int_equal(saga_command_pending(w->q), 1);
    saga_command_t drop;
    assert_int_equal(saga_command_take(w->q, &drop, 1), 1);
    saga_command_clear(&drop);
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\",\"input\":[]}", "Bearer s3cret", NULL), 400);
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"nope\"}", "Bearer s3cret", &doc), 422);
    assert_string_equal(error_code(doc), "unprocessable");
    json_decref(doc);
    assert_int_equal(saga_command_pending(w->q), 0);
}

static void test_start_delayed(void **state) {
    world_t *w = *state;
    json_t *doc;
    /* the start message carries the delay to the loop as given */
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\",\"saga_id\":\"later-1\",\"delay\":\"15m\"}",
                          "Bearer s3cret", NULL), 202);
    saga_command_t c;
    assert_int_equal(saga_command_take(w->q, &c, 1), 1);
    json_t *msg = json_loads(c.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(msg, "delay")), "15m");
    json_decref(msg);
    saga_command_clear(&c);
    assert_int_equal(post(w, "/v1/sagas",
                          "{\"definition\":\"order_fulfillment\",\"saga_id\":\"later-2\",\"not_before\":\"2030-01-01T00:00:00+01:00\"}",
                          "Bearer s3cret", NULL), 202);
    assert_int_equal(saga_command_take(w->q, &c, 1), 1);
    saga_command_clear(&c);
    /* bad values, or both: 400 naming the field, nothing queued */
    static const struct {
        const char *extra, *field;
    } bad[] = {{"\"delay\":\"soon\"", "'delay'"},
               {"\"delay\":\"-5s\"", "'delay'"},
               {"\"delay\":\"9000h\"", "'delay'"},
               {"\"delay\":90", "'delay'"},
               {"\"not_before\":\"tomorrow\"", "'not_before'"},
               {"\"not_before\":\"2030-02-30T00:00:00Z\"", "'not_before'"},
               {"\"not_before\":\"2030-01-01T00:00:00Z\",\"delay\":\"1s\"", "not both"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[300];
        snprintf(body, sizeof body, "{\"definition\":\"order_fulfillment\",\"saga_id\":\"bad-1\",%s}", bad[i].extra);
        assert_int_equal(post(w, "/v1/sagas", body, "Bearer s3cret", &doc), 400);
        const char *m = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
        if (!m || !strstr(m, bad[i].field)) fail_msg("%s: message '%s' lacks %s", bad[i].extra, m ? m : "", bad[i].field);
        json_decref(doc);
    }
    assert_int_equal(saga_command_pending(w->q), 0);
}

/* A saga "appr-1" running on a definition with a signal step "ok" (step 1). */
static void add_signal_saga(world_t *w, const char *id, const char *status, const char *step1) {
    static const char def[] = "{\"name\":\"appr\",\"version\":1,\"steps\":[{\"name\":\"a\",\"topic\":\"t\","
                              "\"action\":\"x\"},{\"name\":\"wait\",\"kind\":\"signal\",\"signal\":\"ok\"}]}";
    char sql[1200];
    snprintf(sql, sizeof sql,
             "INSERT OR IGNORE INTO definitions VALUES ('appr', 1, 'h2', '%s', 0);"
             "INSERT INTO sagas (id, definition, version, status, input, created_at, updated_at)"
             " VALUES ('%s', 'appr', 1, '%s', '{}', 1, 1);%s%s%s%s",
             def, id, status, step1 ? "INSERT INTO steps (saga_id, idx, name, status, signal) VALUES ('" : "",
             step1 ? id : "", step1 ? "', 1, 'wait', " : "", step1 ? step1 : "");
    if (step1) strcat(sql, ");");
    assert_int_equal(fixture_db_exec(&w->fx, sql), 0);
}

static void test_signal_endpoint(void **state) {
    world_t *w = *state;
    json_t *doc;
    add_signal_saga(w, "appr-1", "running", NULL);                       /* step not started */
    add_signal_saga(w, "appr-2", "running", "'waiting', NULL");          /* waiting */
    add_signal_saga(w, "appr-3", "running", "'pending', '{\"status\":\"success\"}'"); /* one came early */
    add_signal_saga(w, "appr-4", "completed", "'succeeded', NULL");
    add_signal_saga(w, "appr-5", "running", "'succeeded', NULL");
    /* accepted: the saga.signal message goes to the loop */
    assert_int_equal(post(w, "/v1/sagas/appr-2/signals/ok", "{\"status\":\"success\",\"output\":{\"by\":\"ann\"}}",
                          "Bearer s3cret", NULL), 202);
    saga_command_t c;
    assert_int_equal(saga_command_take(w->q, &c, 1), 1);
    assert_int_equal(c.kind, SAGA_CMD_SIGNAL);
    json_t *msg = json_loads(c.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(msg, "type")), "saga.signal");
    assert_string_equal(json_string_value(json_object_get(msg, "saga_id")), "appr-2");
    assert_string_equal(json_string_value(json_object_get(msg, "signal")), "ok");
    assert_string_equal(json_string_value(json_object_get(json_object_get(msg, "output"), "by")), "ann");
    assert_non_null(json_string_value(json_object_get(msg, "message_id")));
    json_decref(msg);
    saga_command_clear(&c);
    /* before its step starts: accepted too (the loop keeps it), with the caller's message id */
    assert_int_equal(post(w, "/v1/sagas/appr-1/signals/ok",
                          "{\"status\":\"failure\",\"error\":{\"code\":\"NO\"},\"message_id\":\"m-77\"}", "Bearer s3cret",
                          NULL), 202);
    assert_int_equal(saga_command_take(w->q, &c, 1), 1);
    msg = json_loads(c.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(msg, "message_id")), "m-77");
    json_decref(msg);
    saga_command_clear(&c);
    /* refused, nothing queued */
    static const struct {
        const char *path, *body;
        unsigned status;
        const char *says;
    } no[] = {
        {"/v1/sagas/appr-2/signals/nope", "{\"status\":\"success\"}", 404, "waits for no signal 'nope'"},
        {"/v1/sagas/ghost/signals/ok", "{\"status\":\"success\"}", 404, "no saga 'ghost'"},
        {"/v1/sagas/appr-4/signals/ok", "{\"status\":\"success\"}", 409, "is completed"},
        {"/v1/sagas/appr-5/signals/ok", "{\"status\":\"success\"}", 409, "already received"},
        {"/v1/sagas/appr-3/signals/ok", "{\"status\":\"success\"}", 409, "already received"},
        {"/v1/sagas/appr-2/signals/ok", "{}", 400, "missing 'status'"},
        {"/v1/sagas/appr-2/signals/ok", "{\"status\":\"maybe\"}", 400, "'status' must be"},
        {"/v1/sagas/appr-2/signals/ok", "{\"status\":\"failure\",\"output\":{}}", 400, "'output' goes with status success"},
        {"/v1/sagas/appr-2/signals/ok", "{\"status\":\"success\",\"extra\":1}", 400, "unknown member 'extra'"},
        {"/v1/sagas/appr-2/signals/ok", "[1]", 400, "must be a JSON object"},
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        unsigned st = post(w, no[i].path, no[i].body, "Bearer s3cret", &doc);
        const char *m = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
        if (st != no[i].status || !m || !strstr(m, no[i].says))
            fail_msg("%s %s: HTTP %u '%s', want %u '%s'", no[i].path, no[i].body, st, m ? m : "", no[i].status, no[i].says);
        json_decref(doc);
    }
    assert_int_equal(post(w, "/v1/sagas/appr-2/signals/ok", "{\"status\":\"success\"}", NULL, NULL), 401);
    assert_int_equal(saga_command_pending(w->q), 0);
}

static void test_pause_endpoint(void **state) {
    world_t *w = *state;
    json_t *doc;
    assert_int_equal(post(w, "/v1/topics/payment.commands/pause", "{\"reason\":\"provider outage\"}", "Bearer s3cret", &doc),
                     202);
    assert_true(json_is_true(json_object_get(doc, "paused")));
    assert_string_equal(json_string_value(json_object_get(doc, "topic")), "payment.commands");
    json_decref(doc);
    saga_command_t c;
    assert_int_equal(saga_command_take(w->q, &c, 1), 1);
    assert_int_equal(c.kind, SAGA_CMD_PAUSE);
    assert_string_equal(c.saga_id, "payment.commands");
    assert_string_equal(c.reason, "provider outage");
    saga_command_clear(&c);
    assert_int_equal(post(w, "/v1/topics/payment.commands/resume", NULL, "Bearer s3cret", NULL), 202);
    assert_int_equal(saga_command_take(w->q, &c, 1), 1);
    assert_int_equal(c.kind, SAGA_CMD_RESUME);
    saga_command_clear(&c);
    /* refused, nothing queued */
    assert_int_equal(post(w, "/v1/topics/bad%20topic/pause", NULL, "Bearer s3cret", &doc), 400);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(doc, "error"), "message")), "not a Kafka topic"));
    json_decref(doc);
    assert_int_equal(post(w, "/v1/topics/t/pause", "{\"why\":1}", "Bearer s3cret", &doc), 400);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(doc, "error"), "message")), "'why'"));
    json_decref(doc);
    assert_int_equal(post(w, "/v1/topics/t/pause", "{\"reason\":5}", "Bearer s3cret", NULL), 400);
    assert_int_equal(post(w, "/v1/topics/t/pause", NULL, NULL, NULL), 401);
    assert_int_equal(saga_command_pending(w->q), 0);
    /* GET /v1/stats lists what the shard holds as paused */
    assert_int_equal(fixture_db_exec(&w->fx, "INSERT INTO paused_topics VALUES ('payment.commands', 1700000000000, 'outage')"), 0);
    admin_request_t req = {.method = "GET", .path = "/v1/stats"};
    admin_response_t res;
    assert_int_equal(admin_route(&w->ctx, &req, &res), 0);
    doc = json_loads(res.body, 0, NULL);
    saga_free(res.body);
    json_t *p = json_object_get(json_object_get(doc, "paused_topics"), "payment.commands");
    assert_non_null(p);
    assert_string_equal(json_string_value(json_object_get(p, "reason")), "outage");
    assert_string_equal(json_string_value(json_object_get(p, "paused_at")), "2023-11-14T22:13:20.000Z");
    json_decref(doc);
}

static void test_abort_checks_the_status(void **state) {
    world_t *w = *state;
    json_t *doc;
    assert_int_equal(post(w, "/v1/sagas/" FX_SAGA_RUNNING "/abort", "{\"reason\":\"customer called\"}", "Bearer s3cret", NULL), 202);
    saga_command_t c;
    assert_int_equal(saga_command_take(w->q, &c, 1), 1);
    assert_int_equal(c.kind, SAGA_CMD_ABORT);
    assert_string_equal(c.saga_id, FX_SAGA_RUNNING);
    assert_string_equal(c.reason, "customer called");
    saga_command_clear(&c);
    assert_int_equal(post(w, "/v1/sagas/" FX_SAGA_DONE "/abort", NULL, "Bearer s3cret", &doc), 409);
    assert_string_equal(error_code(doc), "conflict");
    json_decref(doc);
    assert_int_equal(post(w, "/v1/sagas/nope/abort", NULL, "Bearer s3cret", NULL), 404);
    assert_int_equal(post(w, "/v1/sagas/" FX_SAGA_RUNNING "/abort", "{\"reason\":1}", "Bearer s3cret", NULL), 400);
    assert_int_equal(post(w, "/v1/sagas/" FX_SAGA_RUNNING "/abort", NULL, NULL, NULL), 401);
}

static void test_retry_only_for_compensation_failed(void **state) {
    world_t *w = *state;
    assert_int_equal(post(w, "/v1/sagas/" FX_SAGA_RUNNING "/retry", NULL, "Bearer s3cret", NULL), 409);
    assert_int_equal(fixture_db_exec(&w->fx, "UPDATE sagas SET status='compensation_failed' WHERE id='" FX_SAGA_DONE "'"), 0);
    assert_int_equal(post(w, "/v1/sagas/" FX_SAGA_DONE "/retry", NULL, "Bearer s3cret", NULL), 202);
    saga_command_t c;
    assert_int_equal(saga_command_take(w->q, &c, 1), 1);
    assert_int_equal(c.kind, SAGA_CMD_RETRY);
    assert_null(c.reason);
    saga_command_clear(&c);
}

static void test_wrong_method_and_no_queue(void **state) {
    world_t *w = *state;
    admin_request_t req = {.method = "GET", .path = "/v1/sagas/x/abort"};
    admin_response_t res;
    assert_int_equal(admin_route(&w->ctx, &req, &res), 0);
    assert_int_equal(res.status, 405);
    assert_string_equal(res.allow, "POST");
    saga_free(res.body);
    w->ctx.commands = NULL;
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\"}", "Bearer s3cret", NULL), 503);
}

static void test_full_queue_answers_503(void **state) {
    world_t *w = *state;
    for (int i = 0; i < 4; i++)
        assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\"}", "Bearer s3cret", NULL), 202);
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\"}", "Bearer s3cret", NULL), 503);
    saga_command_t c[4];
    assert_int_equal(saga_command_take(w->q, c, 4), 4);
    for (int i = 0; i < 4; i++) saga_command_clear(&c[i]);
}

/* No token, no commands: a server is never open to POSTs by default. */
static void test_no_token_configured_refuses_commands(void **state) {
    world_t *w = *state;
    w->ctx.token = NULL;
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\"}", NULL, NULL), 503);
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\"}", "Bearer ", NULL), 503);
    w->ctx.token = "";
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\"}", "Bearer ", NULL), 503);
    assert_int_equal(saga_command_pending(w->q), 0);
}

static const char START[] = "{\"definition\":\"order_fulfillment\"}";

/* The attack: a form or text/plain POST with the right token is
 * still refused, whatever the endpoint. */
static void test_post_needs_a_json_body(void **state) {
    world_t *w = *state;
    const char *bad[] = {"application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x",
                         NULL, "", "application/jsonx", "application/json; charset=latin1", "text/json"};
    const char *paths[] = {"/v1/sagas", "/v1/sagas/" FX_SAGA_RUNNING "/abort", "/v1/definitions/reload",
                           "/v1/sagas/" FX_SAGA_DONE "/retry"};
    for (size_t p = 0; p < 4; p++)
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            json_t *doc;
            assert_int_equal(request(w, "POST", paths[p], START, "Bearer s3cret", bad[i], NULL, NULL, &doc), 415);
            assert_string_equal(error_code(doc), "unsupported_media_type");
            json_decref(doc);
        }
    /* the token is checked first: no token, no hint about the body */
    assert_int_equal(request(w, "POST", "/v1/sagas", START, NULL, "text/plain", NULL, NULL, NULL), 401);
    assert_int_equal(saga_command_pending(w->q), 0);
    assert_int_equal(request(w, "POST", "/v1/sagas", START, "Bearer s3cret", "Application/JSON; charset=\"UTF-8\"",
                             NULL, NULL, NULL), 202);
    assert_int_equal(request(w, "POST", "/v1/definitions/reload", NULL, "bearer s3cret", "application/json", NULL,
                             NULL, NULL), 202);
    saga_command_t c[2];
    assert_int_equal(saga_command_take(w->q, c, 2), 2);
    saga_command_clear(&c[0]);
    saga_command_clear(&c[1]);
}

/* DNS rebinding: a Host the server does not answer to is 421 on every
 * endpoint, reads included. */
static void test_foreign_host_is_misdirected(void **state) {
    world_t *w = *state;
    const char *bad[] = {"rebind.evil.example", "rebind.evil.example:8080", "127.0.0.1.evil.example",
                         "127.evil.example", "localhost.", "", ":8080", "127.0.0.1:80:80", "127.0.0.1:http",
                         "[::1]", "user@127.0.0.1", "10.0.0.1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *doc;
        assert_int_equal(request(w, "GET", "/v1/sagas", NULL, NULL, NULL, bad[i], NULL, &doc), 421);
        assert_string_equal(error_code(doc), "misdirected_request");
        json_decref(doc);
        assert_int_equal(request(w, "POST", "/v1/sagas", START, "Bearer s3cret", "application/json", bad[i], NULL,
                                 NULL), 421);
    }
    assert_int_equal(saga_command_pending(w->q), 0);
    const char *good[] = {"127.0.0.1", "127.0.0.1:8080", "LOCALHOST:1", "sagad.internal", "Sagad.Internal:443"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(request(w, "GET", "/healthz", NULL, NULL, NULL, good[i], NULL, NULL), 200);
    /* no Host at all (HTTP/1.0): no name to rebind */
    assert_int_equal(request(w, "GET", "/healthz", NULL, NULL, NULL, NULL, NULL, NULL), 200);
    /* a wildcard listen address takes IP literals, still no names */
    w->ctx.any_ip_host = 1;
    w->ctx.hosts = HOSTS;
    admin_request_t req = {.method = "GET", .path = "/healthz", .host = "[::1]:8080"};
    admin_response_t res = {0}; /* untouched when the request may go on */
    assert_int_equal(admin_guard_request(&w->ctx, &req, &res), 0);
    assert_null(res.body);
    req.host = "10.1.2.3";
    assert_int_equal(admin_guard_request(&w->ctx, &req, &res), 0);
    assert_null(res.body);
    req.host = "rebind.evil.example";
    assert_int_equal(admin_guard_request(&w->ctx, &req, &res), 0);
    assert_int_equal(res.status, 421);
    saga_free(res.body);
}

/* A page of another origin gets 403, even with the token (a browser
 * would not have it, but a leaked one must not be usable from a page). */
static void test_foreign_origin_is_forbidden(void **state) {
    world_t *w = *state;
    const char *bad[] = {"http://evil.example", "https://evil.example", "null", "http://127.0.0.1:9999",
                         "http://localhost:8080", "file://", "http://127.0.0.1:8080/path", "127.0.0.1:8080", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *doc;
        assert_int_equal(request(w, "POST", "/v1/sagas/" FX_SAGA_RUNNING "/abort", "{}", "Bearer s3cret",
                                 "application/json", "127.0.0.1:8080", bad[i], &doc), 403);
        assert_string_equal(error_code(doc), "forbidden");
        json_decref(doc);
        assert_int_equal(request(w, "GET", "/v1/sagas", NULL, NULL, NULL, "127.0.0.1:8080", bad[i], NULL), 403);
    }
    assert_int_equal(saga_command_pending(w->q), 0);
    /* the UI's own page, same Host */
    assert_int_equal(request(w, "GET", "/v1/sagas", NULL, NULL, NULL, "127.0.0.1:8080", "http://127.0.0.1:8080",
                             NULL), 200);
    assert_int_equal(request(w, "POST", "/v1/sagas/" FX_SAGA_RUNNING "/abort", "{}", "Bearer s3cret",
                             "application/json", "localhost:8080", "http://LOCALHOST:8080", NULL), 202);
    saga_command_t c;
    assert_int_equal(saga_command_take(w->q, &c, 1), 1);
    saga_command_clear(&c);
}

static void test_token_comparison(void **state) {
    (void)state;
    assert_true(admin_token_equal("s3cret", "s3cret"));
    assert_false(admin_token_equal("s3cret", "s3cre"));
    assert_false(admin_token_equal("s3cret", "s3cret0"));
    assert_false(admin_token_equal("s3cret", ""));
    assert_false(admin_token_equal("s3cret", "S3cret"));
    assert_true(admin_token_equal("", ""));
}

/* Issue 13 item 7: a version that does not exist is 422 naming it, not a
 * 202 for a saga that never appears. */
static void test_start_of_unknown_version(void **state) {
    world_t *w = *state;
    assert_int_equal(fixture_db_exec(&w->fx, "INSERT INTO definitions VALUES ('order_fulfillment', 3, 'h3', '{}', 0)"), 0);
    json_t *doc;
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\",\"version\":2}", "Bearer s3cret", &doc),
                     422);
    assert_string_equal(error_code(doc), "unprocessable");
    const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    assert_non_null(strstr(msg, "no version 2"));
    assert_non_null(strstr(msg, "versions: 1, 3"));
    json_decref(doc);
    assert_int_equal(saga_command_pending(w->q), 0);
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\",\"version\":3}", "Bearer s3cret", NULL),
                     202);
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"order_fulfillment\",\"version\":1}", "Bearer s3cret", NULL),
                     202);
    assert_int_equal(post(w, "/v1/sagas", "{\"definition\":\"nope\",\"version\":1}", "Bearer s3cret", NULL), 422);
    saga_command_t c[2];
    assert_int_equal(saga_command_take(w->q, c, 2), 2);
    saga_command_clear(&c[0]);
    saga_command_clear(&c[1]);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_needs_the_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_queues_a_start_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_without_id_gets_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_of_existing_saga_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_delayed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signal_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_checks_the_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_only_for_compensation_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_method_and_no_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_answers_503, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_token_configured_refuses_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_needs_a_json_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_host_is_misdirected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_origin_is_forbidden, setup, teardown),
        cmocka_unit_test(test_token_comparison),
        cmocka_unit_test_setup_teardown(test_start_of_unknown_version, setup, teardown),
    };
    return cmocka_run_group_tests_name("admin_commands", tests, NULL, NULL);
}

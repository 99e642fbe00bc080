/* The admin HTTP API against a temporary database with the real schema:
 * over HTTP (libcurl) and through admin_route() directly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include "admin.h"
#include "admin_route.h"
#include "saga_alloc.h"
#include "test_admin_fixture.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fixture_db_t fx;
static saga_admin_t *admin;
static char base[64];
#ifdef FX_SHARDS /* test_admin_shards_http: the same tests over FX_SHARDS shard files */
static fixture_shards_t fs;
static admin_shard_t ro_shards[FX_SHARDS];
#define PATHS fs.paths
#define NPATHS FX_SHARDS
#define FX_DIR fs.dir
#else
#define PATHS ((const char *const[]){fx.db_path})
#define NPATHS 1
#define FX_DIR fx.dir
#endif

/* Runs sql (rows of saga id only) where sagad would: the one database, or
 * the shard of id. 0 or -1. */
static int exec_on(const char *id, const char *sql) {
#ifdef FX_SHARDS
    char *msg = NULL;
    int rc = sqlite3_exec(fixture_shard_of(&fs, id), sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) fprintf(stderr, "SQL failed: %s\n", msg ? msg : "?");
    sqlite3_free(msg);
    return rc == SQLITE_OK ? 0 : -1;
#else
    (void)id;
    return fixture_db_exec(&fx, sql);
#endif
}

/* A context reading what the server reads (without the server). */
static admin_ctx_t reader_ctx(sqlite3 **db) {
#ifdef FX_SHARDS
    *db = NULL;
    for (int p = 0; p < FX_SHARDS; p++) {
        char err[512];
        if (!ro_shards[p].db) assert_int_equal(admin_shard_open(&ro_shards[p], fs.path[p], err, sizeof err), 0);
    }
    return (admin_ctx_t){.shards = ro_shards, .shard_count = FX_SHARDS};
#else
    assert_int_equal(sqlite3_open_v2(fx.db_path, db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    return (admin_ctx_t){.db = *db};
#endif
}

static int group_setup(void **state) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
#ifdef FX_SHARDS
    if (fixture_shards_create(&fs, FX_SHARDS) != 0 || fixture_shards_spread(&fs, fixture_sample_rows) != 0) return -1;
#else
    if (fixture_db_create(&fx, 1) != 0) return -1;
#endif
    char err[256] = "";
    admin = saga_admin_start("127.0.0.1", 0, PATHS, NPATHS, err, sizeof err);
    if (!admin) {
        fprintf(stderr, "saga_admin_start: %s\n", err);
        return -1;
    }
    snprintf(base, sizeof base, "http://127.0.0.1:%d", saga_admin_port(admin));
    return 0;
}

static int group_teardown(void **state) {
    saga_admin_stop(&admin);
#ifdef FX_SHARDS
    for (int p = 0; p < FX_SHARDS; p++) admin_shard_close(&ro_shards[p]);
    fixture_shards_destroy(&fs);
#endif
    fixture_db_destroy(&fx);
    curl_global_cleanup();
    return 0;
}

/* GET (or method) base+path; asserts the transport worked and the body is JSON. */
static json_t *request(const char *method, const char *path, long *status, fx_reply_t *keep) {
    char url[1024];
    snprintf(url, sizeof url, "%s%s", base, path);
    fx_reply_t r;
    assert_int_equal(fx_http(method, url, NULL, 0, &r), 0);
    *status = r.status;
    json_t *doc = NULL;
    if (!method || strcmp(method, "HEAD") != 0) {
        assert_string_equal(r.content_type, "application/json");
        json_error_t jerr;
        doc = json_loads(r.body, 0, &jerr);
        if (!doc) fail_msg("body of %s is not JSON (%s): %s", path, jerr.text, r.body);
    }
    if (keep) *keep = r;
    else fx_reply_free(&r);
    return doc;
}

static const char *str(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) fail_msg("member '%s' is not a string", key);
    return json_string_value(v);
}

/* Checks {"error":{"code":code,"message":...}} and returns the message. */
static void assert_error(const json_t *doc, const char *code, const char *message_part) {
    json_t *e = json_object_get(doc, "error");
    assert_true(json_is_object(e));
    assert_string_equal(str(e, "code"), code);
    if (message_part && !strstr(str(e, "message"), message_part))
        fail_msg("message '%s' lacks '%s'", str(e, "message"), message_part);
}

static void test_healthz(void **state) {
    long st;
    json_t *doc = request(NULL, "/healthz", &st, NULL);
    assert_int_equal(st, 200);
    assert_string_equal(str(doc, "status"), "ok");
    json_decref(doc);
    assert_true(saga_admin_port(admin) > 0);
}

static void test_saga_fields(void **state) {
    long st;
    json_t *s = request(NULL, "/v1/sagas/" FX_SAGA_DONE, &st, NULL);
    assert_int_equal(st, 200);
    assert_string_equal(str(s, "id"), FX_SAGA_DONE);
    assert_string_equal(str(s, "definition"), "order_fulfillment");
    assert_int_equal(json_integer_value(json_object_get(s, "version")), 1);
    assert_string_equal(str(s, "status"), "compensated");
    json_t *input = json_object_get(s, "input");
    assert_true(json_is_object(input)); /* embedded JSON, not a string */
    assert_string_equal(str(input, "order_id"), "o-1");
    assert_int_equal(json_integer_value(json_object_get(input, "amount")), 42);
    assert_string_equal(str(s, "traceparent"), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert_string_equal(str(s, "created_at"), "2023-11-14T22:13:20.000Z");
    assert_string_equal(str(s, "updated_at"), "2023-11-14T22:13:20.900Z");
    assert_string_equal(str(s, "deadline_at"), "2023-11-14T22:18:20.000Z");
    json_t *err = json_object_get(s, "error");
    assert_string_equal(str(err, "code"), "PAYMENT_DECLINED");
    assert_string_equal(str(err, "message"), "card limit exceeded");
    json_decref(s);
}

static void test_saga_steps(void **state) {
    long st;
    json_t *s = request(NULL, "/v1/sagas/" FX_SAGA_DONE, &st, NULL);
    assert_int_equal(st, 200);
    json_t *steps = json_object_get(s, "steps");
    assert_int_equal(json_array_size(steps), 4);
    static const char *const names[] = {"create_order", "reserve_inventory", "charge_payment", "notify"};
    for (size_t i = 0; i < 4; i++) {
        json_t *x = json_array_get(steps, i);
        assert_string_equal(str(x, "name"), names[i]);
        assert_int_equal(json_integer_value(json_object_get(x, "index")), (long long)i);
    }
    json_t *s0 = json_array_get(steps, 0), *s1 = json_array_get(steps, 1);
    json_t *s2 = json_array_get(steps, 2), *s3 = json_array_get(steps, 3);
    assert_string_equal(str(s0, "status"), "compensated");
    assert_int_equal(json_integer_value(json_object_get(s0, "attempt")), 1);
    assert_int_equal(json_integer_value(json_object_get(s0, "compensation_attempt")), 1);
    assert_string_equal(str(json_object_get(s0, "output"), "order_ref"), "R-1");
    assert_true(json_is_false(json_object_get(s0, "outcome_unknown")));
    assert_true(json_is_null(json_object_get(s0, "error")));
    assert_string_equal(str(s0, "started_at"), "2023-11-14T22:13:20.010Z");
    assert_string_equal(str(s0, "finished_at"), "2023-11-14T22:13:20.050Z");
    assert_true(json_is_true(json_object_get(s1, "outcome_unknown")));
    assert_int_equal(json_integer_value(json_object_get(s1, "attempt")), 2);
    assert_true(json_is_null(json_object_get(s1, "output")));
    assert_string_equal(str(s2, "status"), "failed");
    assert_string_equal(str(json_object_get(s2, "error"), "code"), "PAYMENT_DECLINED");
    assert_string_equal(str(s3, "status"), "cancelled");
    assert_true(json_is_null(json_object_get(s3, "started_at")));
    assert_true(json_is_null(json_object_get(s3, "finished_at")));
    json_decref(s);
}

static void test_saga_history(void **state) {
    long st;
    json_t *s = request(NULL, "/v1/sagas/" FX_SAGA_DONE, &st, NULL);
    assert_int_equal(st, 200);
    json_t *h = json_object_get(s, "history");
    assert_int_equal(json_array_size(h), 6);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(h, i), "seq")), (long long)i + 1);
    json_t *h0 = json_array_get(h, 0), *h3 = json_array_get(h, 3);
    assert_string_equal(str(h0, "event"), "saga.started");
    assert_string_equal(str(h0, "at"), "2023-11-14T22:13:20.000Z");
    assert_true(json_is_null(json_object_get(h0, "step")));
    assert_string_equal(str(h0, "status"), "running");
    assert_true(json_is_object(json_object_get(h0, "detail")));
    assert_string_equal(str(h3, "event"), "step.failed");
    assert_string_equal(str(h3, "step"), "charge_payment");
    assert_string_equal(str(json_object_get(json_object_get(h3, "detail"), "error"), "code"),
                        "PAYMENT_DECLINED");
    json_decref(s);
}

static void test_running_saga_nulls(void **state) {
    long st;
    json_t *s = request(NULL, "/v1/sagas/" FX_SAGA_RUNNING, &st, NULL);
    assert_int_equal(st, 200);
    assert_string_equal(str(s, "status"), "running");
    assert_int_equal(json_integer_value(json_object_get(s, "version")), 2);
    assert_true(json_is_array(json_object_get(s, "input")));
    assert_true(json_is_null(json_object_get(s, "error")));
    assert_true(json_is_null(json_object_get(s, "deadline_at")));
    assert_string_equal(str(s, "traceparent"), "");
    json_t *s0 = json_array_get(json_object_get(s, "steps"), 0);
    assert_string_equal(str(s0, "status"), "running");
    assert_true(json_is_null(json_object_get(s0, "finished_at")));
    assert_int_equal(json_array_size(json_object_get(s, "history")), 1);
    json_decref(s);
}

static void test_unknown_saga_404(void **state) {
    long st;
    json_t *doc = request(NULL, "/v1/sagas/nope", &st, NULL);
    assert_int_equal(st, 404);
    assert_error(doc, "not_found", "no saga 'nope'");
    /* it may have been removed after the retention period: say so */
    assert_error(doc, "not_found", "finished sagas are removed after the retention period");
    json_decref(doc);
}

static void test_id_length_limit(void **state) {
    char path[400];
    long st;
    /* 127 bytes: a valid id that does not exist */
    snprintf(path, sizeof path, "/v1/sagas/%0127d", 7);
    json_t *doc = request(NULL, path, &st, NULL);
    assert_int_equal(st, 404);
    assert_error(doc, "not_found", "no saga");
    json_decref(doc);
    /* 128 bytes: refused */
    snprintf(path, sizeof path, "/v1/sagas/%0128d", 7);
    doc = request(NULL, path, &st, NULL);
    assert_int_equal(st, 400);
    assert_error(doc, "invalid_id", "128 bytes");
    json_decref(doc);
    /* the limit counts decoded bytes: 43 x "%41" = 129 raw chars, 43 bytes */
    char *p = path + sprintf(path, "/v1/sagas/");
    for (int i = 0; i < 43; i++) p += sprintf(p, "%%41");
    doc = request(NULL, path, &st, NULL);
    assert_int_equal(st, 404);
    json_decref(doc);
}

static void test_unknown_path_404(void **state) {
    /* /v1/sagas exists (GET lists, POST starts): see test_admin_list.c. */
    static const char *const paths[] = {"/", "/nope", "/v1", "/v1/saga", "/v1/sagas/",
                                        "/v1/sagas/x/y", "/healthz/", "/v2/sagas/x", "//healthz"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        long st;
        json_t *doc = request(NULL, paths[i], &st, NULL);
        if (st != 404) fail_msg("%s: HTTP %ld", paths[i], st);
        assert_error(doc, "not_found", "no endpoint");
        json_decref(doc);
    }
}

static void test_wrong_method_405(void **state) {
    static const char *const cases[][3] = {{"POST", "/v1/sagas/" FX_SAGA_DONE, "GET, HEAD"},
                                           {"DELETE", "/v1/sagas/x", "GET, HEAD"},
                                           {"PUT", "/healthz", "GET, HEAD"},
                                           {"PUT", "/v1/sagas", "GET, HEAD, POST"},
                                           {"GET", "/v1/sagas/x/retry", "POST"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long st;
        fx_reply_t r;
        json_t *doc = request(cases[i][0], cases[i][1], &st, &r);
        assert_int_equal(st, 405);
        assert_error(doc, "method_not_allowed", cases[i][0]);
        assert_string_equal(r.allow, cases[i][2]);
        fx_reply_free(&r);
        json_decref(doc);
    }
    /* an unknown method on an unknown path is a 404 */
    long st;
    json_t *doc = request("POST", "/v1/nothing", &st, NULL);
    assert_int_equal(st, 404);
    json_decref(doc);
}

static void test_head(void **state) {
    long st;
    fx_reply_t r;
    request("HEAD", "/healthz", &st, &r);
    assert_int_equal(st, 200);
    assert_int_equal(r.len, 0);
    fx_reply_free(&r);
    request("HEAD", "/v1/sagas/nope", &st, NULL);
    assert_int_equal(st, 404);
}

static void test_percent_encoded_id(void **state) {
    CURL *c = curl_easy_init();
    char *esc = curl_easy_escape(c, FX_SAGA_ODD, 0);
    char path[256];
    snprintf(path, sizeof path, "/v1/sagas/%s", esc);
    assert_non_null(strstr(path, "%2F")); /* the '/' travels encoded */
    curl_free(esc);
    curl_easy_cleanup(c);
    long st;
    json_t *s = request(NULL, path, &st, NULL);
    assert_int_equal(st, 200);
    assert_string_equal(str(s, "id"), FX_SAGA_ODD);
    assert_string_equal(str(s, "definition"), "odd");
    assert_int_equal(json_array_size(json_object_get(s, "steps")), 0);
    json_decref(s);
    /* the same id with a raw '/' is another path: no such endpoint */
    s = request(NULL, "/v1/sagas/tenant/a%20b%C3%A9", &st, NULL);
    assert_int_equal(st, 404);
    json_decref(s);
}

static void test_bad_ids_400(void **state) {
    static const char *const paths[] = {"/v1/sagas/%zz", "/v1/sagas/%4", "/v1/sagas/a%00b",
                                        "/v1/sagas/%0Aid", "/v1/sagas/%FF%FE"};
    static const char *const codes[] = {"bad_request", "bad_request", "bad_request", "invalid_id",
                                        "invalid_id"};
    for (size_t i = 0; i < 5; i++) {
        long st;
        json_t *doc = request(NULL, paths[i], &st, NULL);
        if (st != 400) fail_msg("%s: HTTP %ld", paths[i], st);
        assert_error(doc, codes[i], NULL);
        json_decref(doc);
    }
}

static void test_sees_new_commits(void **state) {
    long st;
    json_t *doc = request(NULL, "/v1/sagas/late-1", &st, NULL);
    assert_int_equal(st, 404);
    json_decref(doc);
    assert_int_equal(exec_on("late-1",
                                     "INSERT INTO sagas (id, definition, version, status, input,"
                                     " created_at, updated_at) VALUES ('late-1', 'd', 1, 'running',"
                                     " '{}', 1, 2)"),
                     0);
    doc = request(NULL, "/v1/sagas/late-1", &st, NULL);
    assert_int_equal(st, 200);
    assert_string_equal(str(doc, "created_at"), "1970-01-01T00:00:00.001Z");
    json_decref(doc);
    /* a write transaction held open does not block readers (WAL) */
    assert_int_equal(exec_on("late-1", "BEGIN IMMEDIATE; UPDATE sagas SET status='completed'"
                                          " WHERE id='late-1'"), 0);
    doc = request(NULL, "/v1/sagas/late-1", &st, NULL);
    assert_int_equal(st, 200);
    assert_string_equal(str(doc, "status"), "running");
    json_decref(doc);
    assert_int_equal(exec_on("late-1", "COMMIT"), 0);
    doc = request(NULL, "/v1/sagas/late-1", &st, NULL);
    assert_string_equal(str(doc, "status"), "completed");
    json_decref(doc);
}

/* Rows sagad should never write still give a valid JSON answer. */
static void test_corrupt_columns(void **state) {
    assert_int_equal(exec_on("bad-1",
                                     "INSERT INTO sagas (id, definition, version, status, input,"
                                     " created_at, updated_at, error_code) VALUES ('bad-1',"
                                     " CAST(X'6F6BFF6F6B' AS TEXT), 1, 'running', '{not json', 1, 2,"
                                     " 'E'); INSERT INTO history (saga_id, seq, at, event, step,"
                                     " status, detail) VALUES ('bad-1', 1, 1, 'e', NULL, 's', '')"),
                     0);
    long st;
    json_t *s = request(NULL, "/v1/sagas/bad-1", &st, NULL);
    assert_int_equal(st, 200);
    assert_string_equal(str(s, "definition"), "ok?ok");  /* invalid UTF-8 replaced */
    assert_string_equal(str(s, "input"), "{not json"); /* kept, as a string */
    assert_string_equal(str(json_object_get(s, "error"), "message"), "");
    json_t *h0 = json_array_get(json_object_get(s, "history"), 0);
    assert_string_equal(str(h0, "detail"), "");
    json_decref(s);
}

static void test_body_too_large(void **state) {
    size_t n = ADMIN_MAX_BODY + 10;
    char *body = calloc(1, n);
    assert_non_null(body);
    memset(body, 'x', n);
    char url[128];
    snprintf(url, sizeof url, "%s/v1/sagas/x", base);
    fx_reply_t r;
    assert_int_equal(fx_http("POST", url, body, n, &r), 0);
    assert_int_equal(r.status, 413);
    json_t *doc = json_loads(r.body, 0, NULL);
    assert_error(doc, "payload_too_large", NULL);
    json_decref(doc);
    fx_reply_free(&r);
    free(body);
}

static void test_unmigrated_db_unhealthy(void **state) {
    fixture_db_t empty;
    assert_int_equal(fixture_db_create(&empty, 0), 0);
    char err[256];
    saga_admin_t *a = saga_admin_start("127.0.0.1", 0, (const char *const[]){empty.db_path}, 1, err, sizeof err);
    assert_non_null(a);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", saga_admin_port(a));
    fx_reply_t r;
    assert_int_equal(fx_http(NULL, url, NULL, 0, &r), 0);
    assert_int_equal(r.status, 503);
    json_t *doc = json_loads(r.body, 0, NULL);
    assert_string_equal(str(doc, "status"), "unavailable");
    assert_error(doc, "unavailable", "user_version 0");
    json_decref(doc);
    fx_reply_free(&r);
    /* a saga lookup is a JSON 500 (no such table), not a crash */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/sagas/x", saga_admin_port(a));
    assert_int_equal(fx_http(NULL, url, NULL, 0, &r), 0);
    assert_int_equal(r.status, 500);
    doc = json_loads(r.body, 0, NULL);
    assert_error(doc, "internal", "no such table");
    json_decref(doc);
    fx_reply_free(&r);
    saga_admin_stop(&a);
    assert_null(a);
    saga_admin_stop(&a); /* no-op */
    fixture_db_destroy(&empty);
}

static void test_start_errors(void **state) {
    char err[256] = "";
    char missing[400];
    snprintf(missing, sizeof missing, "%s/does-not-exist.db", FX_DIR);
    assert_null(saga_admin_start("127.0.0.1", 0, (const char *const[]){missing}, 1, err, sizeof err));
    assert_non_null(strstr(err, "does-not-exist.db"));
    err[0] = '\0';
    /* an address of no local interface (TEST-NET-1; no DNS lookup involved) */
    assert_null(saga_admin_start("192.0.2.1", 0, PATHS, NPATHS, err, sizeof err));
    assert_non_null(strstr(err, "192.0.2.1"));
    err[0] = '\0';
    /* the port is taken */
    assert_null(saga_admin_start("127.0.0.1", saga_admin_port(admin), PATHS, NPATHS, err, sizeof err));
    assert_non_null(strstr(err, "cannot listen"));
    assert_null(saga_admin_start("127.0.0.1", 70000, PATHS, NPATHS, err, sizeof err));
    assert_null(saga_admin_start(NULL, 0, PATHS, NPATHS, NULL, 0));
    /* not a database */
    char junk[400];
    snprintf(junk, sizeof junk, "%s/junk.db", FX_DIR);
    FILE *f = fopen(junk, "w");
    assert_non_null(f);
    fputs("this is not an SQLite database, not even close to one.........................", f);
    fclose(f);
    assert_null(saga_admin_start("127.0.0.1", 0, (const char *const[]){junk}, 1, err, sizeof err));
    assert_non_null(strstr(err, "junk.db"));
    remove(junk);
}

static void test_ipv6_loopback(void **state) {
    char err[256] = "";
    saga_admin_t *a = saga_admin_start("::1", 0, PATHS, NPATHS, err, sizeof err);
    if (!a) skip(); /* no IPv6 in this sandbox */
    char url[128];
    snprintf(url, sizeof url, "http://[::1]:%d/healthz", saga_admin_port(a));
    fx_reply_t r;
    assert_int_equal(fx_http(NULL, url, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    fx_reply_free(&r);
    saga_admin_stop(&a);
}

/* admin_route() without HTTP: every answer to a garbage request is one JSON
 * document, and errors have the {"error":{code,message}} shape. */
static void test_route_garbage(void **state) {
    sqlite3 *db;
    admin_ctx_t ctx = reader_ctx(&db);
    static const char alphabet[] = "/%%%0123456789abcdefABCDEFsv1agzh\xC3\xA9\xFF\x80 ?-_.";
    static const char *const methods[] = {"GET", "HEAD", "POST", "", "get", "DELETE"};
    static const char *const seeds[] = {"/v1/sagas/", "/healthz", "/", "", "v1", "/v1/sagas/%"};
    unsigned seed = 12345;
    for (int i = 0; i < 3000; i++) {
        char path[96];
        size_t n = 0;
        seed = seed * 1103515245u + 12345u;
        const char *prefix = seeds[(seed >> 16) % 6];
        n = (size_t)snprintf(path, sizeof path, "%s", prefix);
        size_t extra = (seed >> 8) % 40;
        for (size_t k = 0; k < extra && n + 1 < sizeof path; k++) {
            seed = seed * 1103515245u + 12345u;
            path[n++] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        path[n] = '\0';
        admin_request_t req = {.method = methods[(seed >> 20) % 6], .path = path};
        admin_response_t res;
        assert_int_equal(admin_route(&ctx, &req, &res), 0);
        assert_non_null(res.body);
        assert_int_equal(strlen(res.body), res.body_len);
        json_error_t jerr;
        json_t *doc = json_loads(res.body, 0, &jerr);
        if (!doc) fail_msg("%s %s -> invalid JSON %s", req.method, path, res.body);
        if (res.status >= 400) {
            json_t *e = json_object_get(doc, "error");
            assert_true(json_is_string(json_object_get(e, "code")));
            assert_true(json_is_string(json_object_get(e, "message")));
        }
        assert_true(res.status == 200 || res.status == 400 || res.status == 404 || res.status == 405);
        json_decref(doc);
        saga_free(res.body);
    }
    /* NULL path and method are handled too */
    admin_request_t req = {0};
    admin_response_t res;
    assert_int_equal(admin_route(&ctx, &req, &res), 0);
    assert_int_equal(res.status, 404);
    saga_free(res.body);
    sqlite3_close(db);
}

static void test_percent_decode(void **state) {
    char out[32];
    assert_int_equal(admin_percent_decode("a%2Fb+c", 7, out), 5);
    assert_string_equal(out, "a/b+c");
    assert_int_equal(admin_percent_decode("%e2%82%ac", 9, out), 3);
    assert_string_equal(out, "\xE2\x82\xAC");
    assert_int_equal(admin_percent_decode("%", 1, out), -1);
    assert_int_equal(admin_percent_decode("%4", 2, out), -1);
    assert_int_equal(admin_percent_decode("%G0", 3, out), -1);
    assert_int_equal(admin_percent_decode("%00", 3, out), -1);
    assert_int_equal(admin_percent_decode("", 0, out), 0);
    assert_true(admin_text_ok("s-1 caf\xC3\xA9", 9));
    assert_false(admin_text_ok("\xC0\xAF", 2));     /* overlong '/' */
    assert_false(admin_text_ok("\xED\xA0\x80", 3)); /* surrogate */
    assert_false(admin_text_ok("a\tb", 3));
}

static void test_alloc_failures(void **state) {
    /* Every allocation failing in turn while answering a saga lookup: the
     * answer is either complete or an error code, never a crash or leak. */
    sqlite3 *db;
    admin_ctx_t ctx = reader_ctx(&db);
    saga_alloc_install_jansson();
    int completed = 0;
    for (long n = 0; n < 400 && !completed; n++) {
        admin_request_t req = {.method = "GET", .path = "/v1/sagas/" FX_SAGA_DONE};
        admin_response_t res;
        saga_alloc_fail_after(n);
        int rc = admin_route(&ctx, &req, &res);
        saga_alloc_fail_after(-1);
        if (rc == 0) {
            assert_non_null(res.body);
            if (res.status == 200) completed = 1;
            saga_free(res.body);
        } else {
            assert_null(res.body);
        }
    }
    assert_true(completed);
    json_set_alloc_funcs(malloc, free);
    sqlite3_close(db);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_saga_fields),
        cmocka_unit_test(test_saga_steps),
        cmocka_unit_test(test_saga_history),
        cmocka_unit_test(test_running_saga_nulls),
        cmocka_unit_test(test_unknown_saga_404),
        cmocka_unit_test(test_id_length_limit),
        cmocka_unit_test(test_unknown_path_404),
        cmocka_unit_test(test_wrong_method_405),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_percent_encoded_id),
        cmocka_unit_test(test_bad_ids_400),
        cmocka_unit_test(test_sees_new_commits),
        cmocka_unit_test(test_corrupt_columns),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_unmigrated_db_unhealthy),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_ipv6_loopback),
        cmocka_unit_test(test_route_garbage),
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

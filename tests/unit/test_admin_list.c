/* GET /v1/sagas (filters, cursors), /v1/definitions[/{name}[/{version}]]
 * and /v1/stats: through admin_route() directly, and over HTTP where the
 * MHD glue matters (the raw query string, HEAD, 405). Built twice: on one
 * database file, and (test_admin_list_shards, FX_SHARDS) on FX_SHARDS
 * shard files with the same rows spread by the hash: the same answers. */
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
static sqlite3 *ro;
#ifdef FX_SHARDS
static fixture_shards_t fs;
static admin_shard_t ro_shards[FX_SHARDS];
#define READER .shards = ro_shards, .shard_count = FX_SHARDS
#else
#define READER .db = ro
#endif

/* The rows go to the one database, or are spread over the shards. */
static int exec_rows(const char *sql) {
#ifdef FX_SHARDS
    return fixture_shards_spread(&fs, sql);
#else
    return fixture_db_exec(&fx, sql);
#endif
}

#define BULK 120 /* sagas of definition 'bulk' for paging */

static const char ORDER_V1[] = "{\"name\":\"order_fulfillment\",\"version\":1,\"steps\":["
                               "{\"name\":\"a\",\"action\":\"x.a\"},{\"name\":\"b\",\"action\":\"x.b\"}]}";
static const char ORDER_V2[] = "{\"name\":\"order_fulfillment\",\"version\":2,\"steps\":["
                               "{\"name\":\"a\",\"action\":\"x.a\"},{\"name\":\"b\",\"action\":\"x.b\"},"
                               "{\"name\":\"c\",\"action\":\"x.c\"}]}";

/* Search attributes of bulk saga i (the triggers of schema.h index them):
 * order_id o-(i % 7) and customer c-(i % 2), except every fourth saga,
 * which has none. */
static const char *search_of(int i) {
    static char buf[128];
    if (i % 4 == 3) return "NULL";
    snprintf(buf, sizeof buf, "'{\"order_id\":\"o-%d\",\"customer\":\"c-%d\"}'", i % 7, i % 2);
    return buf;
}

/* How many bulk sagas have order_id o-(order) (and customer c-(customer)
 * when >= 0, and status compensation_failed when failed_only). */
static int search_expected(int order, int customer, int failed_only) {
    int n = 0;
    for (int i = 0; i < BULK; i++)
        if (i % 4 != 3 && i % 7 == order && (customer < 0 || i % 2 == customer) && (!failed_only || i % 3 == 0)) n++;
    return n;
}

static int add_rows(void) {
    size_t cap = 128 * 1024, o = 0;
    char *sql = malloc(cap);
    if (!sql) return -1;
    o += (size_t)snprintf(sql + o, cap - o,
                          "INSERT INTO definitions VALUES ('order_fulfillment', 1, 'aaaa1111', '%s', 1699999000000),"
                          " ('order_fulfillment', 2, 'bbbb2222', '%s', 1699999500000),"
                          " ('odd', 1, 'cccc3333', 'not json', 1699999600000);",
                          ORDER_V1, ORDER_V2);
    /* bulk sagas: updated_at repeats every 10 (ties broken by id), created 1 ms apart */
    for (int i = 0; i < BULK; i++) {
        o += (size_t)snprintf(sql + o, cap - o,
                              "INSERT INTO sagas (id, definition, version, status, input, created_at, updated_at,"
                              " error_code, error_message, search) VALUES ('p-%03d', 'bulk', 1, '%s', '{}', %lld, %lld,"
                              " '%s', '%s', %s);",
                              i, i % 3 == 0 ? "compensation_failed" : "completed", 1600000000000LL + i,
                              1600000000000LL + (i / 10) * 1000, i % 3 == 0 ? "E_BULK" : "",
                              i % 3 == 0 ? "bulk failure" : "", search_of(i));
        if (i % 3 == 0)
            o += (size_t)snprintf(sql + o, cap - o,
                                  "INSERT INTO steps (saga_id, idx, name, status) VALUES ('p-%03d', 0, 'one',"
                                  " 'compensated'), ('p-%03d', 1, 'two', 'compensation_failed');",
                                  i, i);
    }
    int rc = o < cap ? exec_rows(sql) : -1;
    free(sql);
    return rc;
}

static int group_setup(void **state) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char err[512] = "";
#ifdef FX_SHARDS
    if (fixture_shards_create(&fs, FX_SHARDS) != 0 || fixture_shards_spread(&fs, fixture_sample_rows) != 0 ||
        add_rows() != 0)
        return -1;
    admin = saga_admin_start("127.0.0.1", 0, fs.paths, FX_SHARDS, err, sizeof err);
    for (int p = 0; p < FX_SHARDS; p++)
        if (admin_shard_open(&ro_shards[p], fs.path[p], err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
#else
    if (fixture_db_create(&fx, 1) != 0 || add_rows() != 0) return -1;
    admin = saga_admin_start("127.0.0.1", 0, (const char *const[]){fx.db_path}, 1, err, sizeof err);
    if (sqlite3_open_v2(fx.db_path, &ro, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return -1;
#endif
    if (!admin) {
        fprintf(stderr, "saga_admin_start: %s\n", err);
        return -1;
    }
    snprintf(base, sizeof base, "http://127.0.0.1:%d", saga_admin_port(admin));
    return 0;
}

static int group_teardown(void **state) {
    sqlite3_close(ro);
    saga_admin_stop(&admin);
#ifdef FX_SHARDS
    for (int p = 0; p < FX_SHARDS; p++) admin_shard_close(&ro_shards[p]);
    fixture_shards_destroy(&fs);
#endif
    fixture_db_destroy(&fx);
    curl_global_cleanup();
    return 0;
}

/* admin_route() with ctx; returns the parsed body (NULL for HEAD). */
static json_t *route_ctx(admin_ctx_t *ctx, const char *method, const char *path, const char *query,
                         unsigned *status) {
    admin_request_t req = {.method = method, .path = path, .query = query};
    admin_response_t res;
    assert_int_equal(admin_route(ctx, &req, &res), 0);
    assert_non_null(res.body);
    json_error_t jerr;
    json_t *doc = json_loads(res.body, 0, &jerr);
    if (!doc) fail_msg("%s %s?%s: not JSON: %s", method, path, query ? query : "", res.body);
    *status = res.status;
    saga_free(res.body);
    return doc;
}

static json_t *get(const char *path, const char *query, unsigned *status) {
    admin_ctx_t ctx = {READER};
    return route_ctx(&ctx, "GET", path, query, status);
}

/* GET /v1/sagas?query, asserting 200. */
static json_t *list(const char *query) {
    unsigned st;
    json_t *doc = get("/v1/sagas", query, &st);
    if (st != 200) fail_msg("?%s: HTTP %u %s", query ? query : "", st, json_dumps(doc, 0));
    assert_true(json_is_array(json_object_get(doc, "sagas")));
    return doc;
}

static size_t count(const json_t *doc) { return json_array_size(json_object_get(doc, "sagas")); }

static const char *item_id(const json_t *doc, size_t i) {
    return json_string_value(json_object_get(json_array_get(json_object_get(doc, "sagas"), i), "id"));
}

static const char *str(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) fail_msg("member '%s' is not a string", key);
    return json_string_value(v);
}

/* A 400 naming param (error.parameter and the message). */
static void assert_bad_param(const char *path, const char *query, const char *param) {
    unsigned st;
    json_t *doc = get(path, query, &st);
    if (st != 400) fail_msg("?%s: HTTP %u, want 400", query, st);
    json_t *e = json_object_get(doc, "error");
    assert_string_equal(str(e, "code"), "bad_request");
    if (param) {
        const char *p = json_string_value(json_object_get(e, "parameter"));
        if (!p || strcmp(p, param) != 0) fail_msg("?%s: parameter %s, want %s", query, p ? p : "(none)", param);
        if (!strstr(str(e, "message"), param)) fail_msg("?%s: message '%s' lacks '%s'", query, str(e, "message"), param);
    }
    json_decref(doc);
}

/* ---- GET /v1/sagas ---- */

static void test_list_default_page(void **state) {
    json_t *doc = list(NULL);
    assert_int_equal(count(doc), 50);
    assert_true(json_is_string(json_object_get(doc, "next_cursor")));
    /* newest first: the odd saga (updated 1700000002000), then the running one */
    assert_string_equal(item_id(doc, 0), FX_SAGA_ODD);
    assert_string_equal(item_id(doc, 1), FX_SAGA_RUNNING);
    assert_string_equal(item_id(doc, 2), FX_SAGA_DONE);
    /* ties on updated_at: id descending */
    assert_string_equal(item_id(doc, 3), "p-119");
    assert_string_equal(item_id(doc, 4), "p-118");
    json_decref(doc);
    /* an empty query, and empty values, are the defaults */
    doc = list("");
    assert_int_equal(count(doc), 50);
    json_decref(doc);
    doc = list("status=&limit=&cursor=&definition=");
    assert_int_equal(count(doc), 50);
    json_decref(doc);
}

static void test_list_item_fields(void **state) {
    json_t *doc = list("definition=order_fulfillment");
    assert_int_equal(count(doc), 2);
    assert_true(json_is_null(json_object_get(doc, "next_cursor")));
    json_t *run = json_array_get(json_object_get(doc, "sagas"), 0);
    assert_string_equal(str(run, "id"), FX_SAGA_RUNNING);
    assert_string_equal(str(run, "definition"), "order_fulfillment");
    assert_int_equal(json_integer_value(json_object_get(run, "version")), 2);
    assert_string_equal(str(run, "status"), "running");
    assert_string_equal(str(run, "created_at"), "2023-11-14T22:13:21.000Z");
    assert_string_equal(str(run, "updated_at"), "2023-11-14T22:13:21.000Z");
    assert_true(json_is_null(json_object_get(run, "error")));
    json_t *cs = json_object_get(run, "current_step");
    assert_string_equal(str(cs, "name"), "create_order");
    assert_int_equal(json_integer_value(json_object_get(cs, "index")), 0);
    assert_string_equal(str(cs, "status"), "running");
    assert_int_equal(json_integer_value(json_object_get(cs, "attempt")), 1);
    assert_null(json_object_get(run, "input")); /* the list stays small */
    assert_null(json_object_get(run, "steps"));
    json_t *done = json_array_get(json_object_get(doc, "sagas"), 1);
    assert_string_equal(str(done, "id"), FX_SAGA_DONE);
    assert_string_equal(str(json_object_get(done, "error"), "code"), "PAYMENT_DECLINED");
    assert_string_equal(str(json_object_get(done, "error"), "message"), "card limit exceeded");
    assert_true(json_is_null(json_object_get(done, "current_step"))); /* every step is finished */
    json_decref(doc);
    /* a compensation that gave up is the current step of a parked saga */
    doc = list("status=compensation_failed&limit=1");
    cs = json_object_get(json_array_get(json_object_get(doc, "sagas"), 0), "current_step");
    assert_string_equal(str(cs, "name"), "two");
    assert_string_equal(str(cs, "status"), "compensation_failed");
    json_decref(doc);
}

static void test_list_status_filter(void **state) {
    json_t *doc = list("status=running");
    assert_int_equal(count(doc), 1);
    assert_string_equal(item_id(doc, 0), FX_SAGA_RUNNING);
    json_decref(doc);
    doc = list("status=compensation_failed&limit=500");
    assert_int_equal(count(doc), BULK / 3);
    json_decref(doc);
    /* a comma-separated list */
    doc = list("status=running,compensated");
    assert_int_equal(count(doc), 2);
    assert_string_equal(item_id(doc, 0), FX_SAGA_RUNNING);
    assert_string_equal(item_id(doc, 1), FX_SAGA_DONE);
    json_decref(doc);
    doc = list("status=compensating");
    assert_int_equal(count(doc), 0);
    assert_true(json_is_null(json_object_get(doc, "next_cursor")));
    json_decref(doc);
}

static void test_list_definition_and_error_filters(void **state) {
    json_t *doc = list("definition=odd");
    assert_int_equal(count(doc), 1);
    assert_string_equal(item_id(doc, 0), FX_SAGA_ODD);
    json_decref(doc);
    doc = list("definition=nope");
    assert_int_equal(count(doc), 0);
    json_decref(doc);
    doc = list("error_code=PAYMENT_DECLINED");
    assert_int_equal(count(doc), 1);
    assert_string_equal(item_id(doc, 0), FX_SAGA_DONE);
    json_decref(doc);
    doc = list("error_code=E_BULK&definition=bulk&status=compensation_failed&limit=500");
    assert_int_equal(count(doc), BULK / 3);
    json_decref(doc);
    /* percent-decoding and '+' as a space */
    doc = list("definition=%6F%64d");
    assert_int_equal(count(doc), 1);
    json_decref(doc);
    doc = list("error_code=card+limit");
    assert_int_equal(count(doc), 0);
    json_decref(doc);
}

static void test_list_time_filters(void **state) {
    /* created_after is inclusive, created_before exclusive */
    json_t *doc = list("created_after=2023-11-14T22:13:20Z");
    assert_int_equal(count(doc), 3);
    json_decref(doc);
    doc = list("created_after=2023-11-14T22:13:20.001Z");
    assert_int_equal(count(doc), 2);
    json_decref(doc);
    doc = list("created_after=2023-11-14T22:13:20Z&created_before=2023-11-14T22:13:21Z");
    assert_int_equal(count(doc), 1);
    assert_string_equal(item_id(doc, 0), FX_SAGA_DONE);
    json_decref(doc);
    /* offsets: 23:13:21+01:00 is 22:13:21Z ('+' written %2B) */
    doc = list("created_after=2023-11-14T23:13:21%2B01:00");
    assert_int_equal(count(doc), 2);
    json_decref(doc);
    doc = list("updated_before=2023-11-14t17:13:21.000-05:00&updated_after=2023-11-14T22:13:20.900z");
    assert_int_equal(count(doc), 1);
    assert_string_equal(item_id(doc, 0), FX_SAGA_DONE);
    json_decref(doc);
    doc = list("updated_before=2020-09-13T12:26:41Z&limit=500"); /* bulk: updated 1600000000000..1600000011000 */
    assert_int_equal(count(doc), 10);
    json_decref(doc);
}

static void test_list_step_filter(void **state) {
    json_t *doc = list("step=charge_payment&step_status=failed");
    assert_int_equal(count(doc), 1);
    assert_string_equal(item_id(doc, 0), FX_SAGA_DONE);
    json_decref(doc);
    doc = list("step=create_order");
    assert_int_equal(count(doc), 2);
    json_decref(doc);
    doc = list("step=create_order&step_status=running");
    assert_int_equal(count(doc), 1);
    assert_string_equal(item_id(doc, 0), FX_SAGA_RUNNING);
    json_decref(doc);
    /* step_status alone: any step in that status */
    doc = list("step_status=compensation_failed&limit=500");
    assert_int_equal(count(doc), BULK / 3);
    json_decref(doc);
    doc = list("step=charge_payment&step_status=succeeded");
    assert_int_equal(count(doc), 0);
    json_decref(doc);
}

/* Following next_cursor visits every matching saga once, in order. */
static void walk(const char *filter, size_t limit, size_t want_total) {
    char seen[BULK + 8][140];
    size_t total = 0, pages = 0;
    char cursor[600] = "";
    for (;;) {
        char query[800];
        snprintf(query, sizeof query, "%s&limit=%zu%s%s", filter, limit, cursor[0] ? "&cursor=" : "", cursor);
        json_t *doc = list(query);
        pages++;
        assert_true(count(doc) <= limit);
        for (size_t i = 0; i < count(doc); i++) {
            assert_true(total < BULK + 8);
            snprintf(seen[total], sizeof seen[total], "%s", item_id(doc, i));
            for (size_t k = 0; k < total; k++)
                if (strcmp(seen[k], seen[total]) == 0) fail_msg("%s seen twice", seen[total]);
            total++;
        }
        json_t *next = json_object_get(doc, "next_cursor");
        if (json_is_null(next)) {
            json_decref(doc);
            break;
        }
        assert_int_equal(count(doc), limit); /* only full pages have a next one */
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        /* the cursor is URL-safe as it is */
        assert_int_equal(strspn(cursor, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                         strlen(cursor));
        json_decref(doc);
        if (pages > 200) fail_msg("paging does not end");
    }
    assert_int_equal(total, want_total);
    /* the same order as one big page */
    char query[300];
    snprintf(query, sizeof query, "%s&limit=500", filter);
    json_t *all = list(query);
    assert_int_equal(count(all), want_total);
    for (size_t i = 0; i < want_total; i++) assert_string_equal(seen[i], item_id(all, i));
    json_decref(all);
}

static void test_list_search(void **state) {
    /* exactly the sagas with that attribute value, each carrying its attributes */
    json_t *doc = list("search.order_id=o-3&limit=500");
    assert_int_equal(count(doc), search_expected(3, -1, 0));
    for (size_t k = 0; k < count(doc); k++) {
        json_t *item = json_array_get(json_object_get(doc, "sagas"), k);
        int i = atoi(str(item, "id") + 2);
        assert_int_equal(i % 7, 3);
        assert_true(i % 4 != 3);
        assert_string_equal(str(json_object_get(item, "search"), "order_id"), "o-3");
    }
    json_decref(doc);
    /* two attributes and a status: all of them hold */
    doc = list("search.order_id=o-5&search.customer=c-1&status=compensation_failed&limit=500");
    assert_int_equal(count(doc), search_expected(5, 1, 1));
    assert_true(count(doc) > 0);
    json_decref(doc);
    /* the cursor pages through a search */
    doc = list("search.customer=c-0&limit=7");
    size_t seen = count(doc);
    while (json_is_string(json_object_get(doc, "next_cursor"))) {
        char q[600];
        snprintf(q, sizeof q, "search.customer=c-0&limit=7&cursor=%s", str(doc, "next_cursor"));
        json_decref(doc);
        doc = list(q);
        seen += count(doc);
    }
    json_decref(doc);
    int want = 0;
    for (int i = 0; i < BULK; i++) want += i % 4 != 3 && i % 2 == 0;
    assert_int_equal(seen, want);
    /* no such value, no such attribute; a saga without attributes has no member */
    doc = list("search.order_id=o-99");
    assert_int_equal(count(doc), 0);
    json_decref(doc);
    doc = list("search.nothing=o-1");
    assert_int_equal(count(doc), 0);
    json_decref(doc);
    doc = list("definition=order_fulfillment");
    assert_null(json_object_get(json_array_get(json_object_get(doc, "sagas"), 0), "search"));
    json_decref(doc);
    /* bad names and values are refused naming the parameter */
    assert_bad_param("/v1/sagas", "search.9lives=x", "search.9lives");
    assert_bad_param("/v1/sagas", "search.a-b=x", "search.a-b");
    assert_bad_param("/v1/sagas", "search.=x", NULL);
    char q[400];
    snprintf(q, sizeof q, "search.order_id=%0300d", 7);
    assert_bad_param("/v1/sagas", q, "search.order_id");
    assert_bad_param("/v1/sagas",
                     "search.a=1&search.b=1&search.c=1&search.d=1&search.e=1&search.f=1&search.g=1&search.h=1&search.i=1",
                     "search.i");
}

static void test_list_pagination(void **state) {
    walk("definition=bulk", 7, BULK);       /* page boundaries inside runs of equal updated_at */
    walk("definition=bulk", 10, BULK);      /* and on them */
    walk("status=compensation_failed", 1, BULK / 3);
    walk("definition=bulk", BULK, BULK);    /* exactly one full page: no next one */
    walk("step=create_order", 1, 2);
    walk("definition=nope", 5, 0);
}

static void test_list_bad_input(void **state) {
    static const char *const cases[][2] = {
        {"limit=0", "limit"},
        {"limit=501", "limit"},
        {"limit=abc", "limit"},
        {"limit=-1", "limit"},
        {"limit=1.5", "limit"},
        {"limit=+5", "limit"},
        {"limit=99999999999999999999", "limit"},
        {"status=done", "status"},
        {"status=running,", NULL},  /* a trailing comma is harmless: see below */
        {"status=,", "status"},
        {"status=running,nope", "status"},
        {"step_status=nope", "step_status"},
        {"created_after=yesterday", "created_after"},
        {"created_before=2023-11-14", "created_before"},
        {"updated_after=2023-11-14T22:13:20", "updated_after"},
        {"updated_before=2023-02-30T00:00:00Z", "updated_before"},
        {"created_after=2023-11-14T22:13:20+01:00", "created_after"}, /* '+' is a space */
        {"created_after=2023-11-14T25:13:20Z", "created_after"},
        {"cursor=nope!", "cursor"},
        {"cursor=AAAA", "cursor"},
        {"cursor=djF8MTIzfA", "cursor"}, /* v1|123| : no id */
        {"cursor=djF8YWJjfHg", "cursor"}, /* v1|abc|x */
        {"frobnicate=1", "frobnicate"},
        {"Status=running", "Status"},
        {"limit=5&limit=6", "limit"},
        {"definition=a%0Ab", "definition"},
        {"definition=%FF", "definition"},
        {"definition=%zz", "definition"},
        {"%zz=1", NULL},
        {"=1", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (i == 8) {
            json_t *doc = list(cases[i][0]);
            assert_int_equal(count(doc), 1);
            json_decref(doc);
            continue;
        }
        assert_bad_param("/v1/sagas", cases[i][0], cases[i][1]);
    }
    /* too long */
    char q[5000] = "definition=";
    memset(q + 11, 'd', 200);
    q[211] = '\0';
    assert_bad_param("/v1/sagas", q, "definition");
    memset(q, 'a', 4500);
    memcpy(q, "step=", 5);
    q[4500] = '\0';
    assert_bad_param("/v1/sagas", q, NULL);
    /* a cursor that decodes but was tampered with is refused, a good one works */
    json_t *doc = list("definition=bulk&limit=1");
    char cursor[600];
    snprintf(cursor, sizeof cursor, "cursor=%s", str(doc, "next_cursor"));
    json_decref(doc);
    doc = list(cursor);
    json_decref(doc);
    cursor[strlen(cursor) - 1] = '*';
    assert_bad_param("/v1/sagas", cursor, "cursor");
}

static void test_parse_time(void **state) {
    int64_t ms;
    assert_int_equal(admin_parse_time("2023-11-14T22:13:20Z", &ms), 0);
    assert_int_equal(ms, FX_T0);
    assert_int_equal(admin_parse_time("2023-11-14T22:13:20.5Z", &ms), 0);
    assert_int_equal(ms, FX_T0 + 500);
    assert_int_equal(admin_parse_time("2023-11-14T22:13:20.123456789Z", &ms), 0);
    assert_int_equal(ms, FX_T0 + 123);
    assert_int_equal(admin_parse_time("2023-11-15T00:13:20+02:00", &ms), 0);
    assert_int_equal(ms, FX_T0);
    assert_int_equal(admin_parse_time("2023-11-14T12:13:20-10:00", &ms), 0);
    assert_int_equal(ms, FX_T0);
    assert_int_equal(admin_parse_time("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(admin_parse_time("2024-02-29T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 1709164800000LL);
    static const char *const bad[] = {"", "2023-11-14", "2023-11-14T22:13:20", "2023-11-14 22:13:20Z",
                                      "2023-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2023-11-14T22:13:20.Z",
                                      "2023-11-14T22:13:20+0100", "2023-11-14T22:13:20+24:00", "+2023-11-14T22:13:20Z",
                                      "2023-11-14T22:13:20ZZ", "1969-12-31T23:59:59Z", "2023-1x-14T22:13:20Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (admin_parse_time(bad[i], &ms) == 0) fail_msg("'%s' accepted", bad[i]);
}

/* Over HTTP: MHD hands the query over raw (a '+' stays a space, %2B a '+'). */
static void test_list_over_http(void **state) {
    char url[512];
    fx_reply_t r;
    snprintf(url, sizeof url, "%s/v1/sagas?created_after=2023-11-14T23:13:21%%2B01:00&definition=order%%5Ffulfillment",
             base);
    assert_int_equal(fx_http(NULL, url, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *doc = json_loads(r.body, 0, NULL);
    assert_int_equal(count(doc), 1);
    assert_string_equal(item_id(doc, 0), FX_SAGA_RUNNING);
    json_decref(doc);
    fx_reply_free(&r);
    snprintf(url, sizeof url, "%s/v1/sagas?created_after=2023-11-14T23:13:21+01:00", base);
    assert_int_equal(fx_http(NULL, url, NULL, 0, &r), 0);
    assert_int_equal(r.status, 400);
    doc = json_loads(r.body, 0, NULL);
    assert_string_equal(str(json_object_get(doc, "error"), "parameter"), "created_after");
    assert_non_null(strstr(str(json_object_get(doc, "error"), "message"), "%2B"));
    json_decref(doc);
    fx_reply_free(&r);
    /* an odd id travels through a cursor */
    snprintf(url, sizeof url, "%s/v1/sagas?limit=1", base);
    assert_int_equal(fx_http(NULL, url, NULL, 0, &r), 0);
    doc = json_loads(r.body, 0, NULL);
    assert_string_equal(item_id(doc, 0), FX_SAGA_ODD);
    snprintf(url, sizeof url, "%s/v1/sagas?limit=1&cursor=%s", base, str(doc, "next_cursor"));
    json_decref(doc);
    fx_reply_free(&r);
    assert_int_equal(fx_http(NULL, url, NULL, 0, &r), 0);
    doc = json_loads(r.body, 0, NULL);
    assert_string_equal(item_id(doc, 0), FX_SAGA_RUNNING);
    json_decref(doc);
    fx_reply_free(&r);
    /* HEAD, and the methods of /v1/sagas */
    snprintf(url, sizeof url, "%s/v1/sagas?status=running", base);
    assert_int_equal(fx_http("HEAD", url, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    fx_reply_free(&r);
    static const char *const cases[][3] = {{"PUT", "/v1/sagas", "GET, HEAD, POST"},
                                           {"DELETE", "/v1/sagas?status=running", "GET, HEAD, POST"},
                                           {"POST", "/v1/stats", "GET, HEAD"},
                                           {"POST", "/v1/definitions", "GET, HEAD"},
                                           {"PUT", "/v1/definitions/x/1", "GET, HEAD"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(url, sizeof url, "%s%s", base, cases[i][1]);
        assert_int_equal(fx_http(cases[i][0], url, NULL, 0, &r), 0);
        assert_int_equal(r.status, 405);
        assert_string_equal(r.allow, cases[i][2]);
        fx_reply_free(&r);
    }
}

/* Random query strings: always one JSON document, 200 or 400. */
static void test_list_garbage_queries(void **state) {
    admin_ctx_t ctx = {READER};
    static const char alphabet[] = "=&%%+0123456789abcdefABCDEFlimitstatuscursor_\xC3\xA9\xFF ,-:TZ";
    static const char *const seeds[] = {"limit=", "status=", "cursor=", "created_after=", "step=", ""};
    static const char *const paths[] = {"/v1/sagas", "/v1/stats", "/v1/definitions", "/v1/definitions/odd"};
    unsigned seed = 777;
    for (int i = 0; i < 3000; i++) {
        char query[96];
        seed = seed * 1103515245u + 12345u;
        size_t n = (size_t)snprintf(query, sizeof query, "%s", seeds[(seed >> 16) % 6]);
        size_t extra = (seed >> 8) % 40;
        for (size_t k = 0; k < extra && n + 1 < sizeof query; k++) {
            seed = seed * 1103515245u + 12345u;
            query[n++] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        query[n] = '\0';
        unsigned st;
        json_t *doc = route_ctx(&ctx, "GET", paths[(seed >> 20) % 4], query, &st);
        if (st != 200 && st != 400) fail_msg("?%s -> %u", query, st);
        if (st == 400) assert_true(json_is_string(json_object_get(json_object_get(doc, "error"), "message")));
        json_decref(doc);
    }
}

/* ---- definitions ---- */

static void test_definitions_list(void **state) {
    unsigned st;
    json_t *doc = get("/v1/definitions", NULL, &st);
    assert_int_equal(st, 200);
    json_t *defs = json_object_get(doc, "definitions");
    assert_int_equal(json_array_size(defs), 3);
    json_t *d0 = json_array_get(defs, 0), *d1 = json_array_get(defs, 1), *d2 = json_array_get(defs, 2);
    assert_string_equal(str(d0, "name"), "odd");
    assert_true(json_is_null(json_object_get(d0, "steps"))); /* stored text is not JSON */
    assert_string_equal(str(d1, "name"), "order_fulfillment");
    assert_int_equal(json_integer_value(json_object_get(d1, "version")), 1);
    assert_string_equal(str(d1, "hash"), "aaaa1111");
    assert_string_equal(str(d1, "loaded_at"), "2023-11-14T21:56:40.000Z");
    assert_int_equal(json_integer_value(json_object_get(d1, "steps")), 2);
    assert_int_equal(json_integer_value(json_object_get(d2, "version")), 2);
    assert_int_equal(json_integer_value(json_object_get(d2, "steps")), 3);
    assert_null(json_object_get(d1, "definition")); /* the list stays small */
    json_decref(doc);
}

static void test_definition_versions(void **state) {
    unsigned st;
    json_t *doc = get("/v1/definitions/order_fulfillment", NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(str(doc, "name"), "order_fulfillment");
    json_t *v = json_object_get(doc, "versions");
    assert_int_equal(json_array_size(v), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(v, 0), "version")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(v, 1), "version")), 2);
    assert_string_equal(str(json_array_get(v, 1), "hash"), "bbbb2222");
    json_decref(doc);
    doc = get("/v1/definitions/nope", NULL, &st);
    assert_int_equal(st, 404);
    assert_string_equal(str(json_object_get(doc, "error"), "code"), "not_found");
    assert_non_null(strstr(str(json_object_get(doc, "error"), "message"), "no definition 'nope'"));
    json_decref(doc);
}

static void test_definition_one(void **state) {
    unsigned st;
    json_t *doc = get("/v1/definitions/order_fulfillment/2", NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(str(doc, "name"), "order_fulfillment");
    assert_int_equal(json_integer_value(json_object_get(doc, "version")), 2);
    assert_int_equal(json_integer_value(json_object_get(doc, "steps")), 3);
    json_t *want = json_loads(ORDER_V2, 0, NULL);
    assert_true(json_equal(json_object_get(doc, "definition"), want));
    json_decref(want);
    json_decref(doc);
    /* not JSON in the database: returned as a string */
    doc = get("/v1/definitions/odd/1", NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(str(doc, "definition"), "not json");
    json_decref(doc);
    doc = get("/v1/definitions/order_fulfillment/3", NULL, &st);
    assert_int_equal(st, 404);
    assert_non_null(strstr(str(json_object_get(doc, "error"), "message"), "version 3"));
    json_decref(doc);
    static const char *const bad[] = {"/v1/definitions/order_fulfillment/0", "/v1/definitions/order_fulfillment/-1",
                                      "/v1/definitions/order_fulfillment/abc", "/v1/definitions/order_fulfillment/01",
                                      "/v1/definitions/order_fulfillment/1.0",
                                      "/v1/definitions/order_fulfillment/99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        doc = get(bad[i], NULL, &st);
        if (st != 400) fail_msg("%s: HTTP %u", bad[i], st);
        assert_non_null(strstr(str(json_object_get(doc, "error"), "message"), "version"));
        json_decref(doc);
    }
    doc = get("/v1/definitions/order_fulfillment/1/x", NULL, &st);
    assert_int_equal(st, 404);
    json_decref(doc);
    doc = get("/v1/definitions/%zz", NULL, &st);
    assert_int_equal(st, 400);
    json_decref(doc);
    /* the definition endpoints and stats take no parameters */
    assert_bad_param("/v1/definitions", "name=x", "name");
    assert_bad_param("/v1/definitions/odd/1", "pretty=1", "pretty");
    assert_bad_param("/v1/stats", "x", "x");
}

/* ---- stats ---- */

static int runtime_hook(void *arg, json_t *runtime) {
    (*(int *)arg)++;
    return json_object_set_new(runtime, "circuits", json_pack("{s:s}", "payment.commands", "open"));
}

static void test_stats(void **state) {
    unsigned st;
    json_t *doc = get("/v1/stats", NULL, &st);
    assert_int_equal(st, 200);
    json_t *sagas = json_object_get(doc, "sagas");
    assert_int_equal(json_integer_value(json_object_get(sagas, "total")), BULK + 3);
    json_t *bs = json_object_get(sagas, "by_status");
    assert_int_equal(json_integer_value(json_object_get(bs, "running")), 1);
    assert_int_equal(json_integer_value(json_object_get(bs, "completed")), 1 + BULK - BULK / 3);
    assert_int_equal(json_integer_value(json_object_get(bs, "compensated")), 1);
    assert_int_equal(json_integer_value(json_object_get(bs, "compensation_failed")), BULK / 3);
    assert_int_equal(json_integer_value(json_object_get(bs, "compensating")), 0); /* zeros are listed */
    json_t *bd = json_object_get(sagas, "by_definition");
    assert_int_equal(json_object_size(bd), 3);
    json_t *of = json_object_get(bd, "order_fulfillment");
    assert_int_equal(json_integer_value(json_object_get(of, "total")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(of, "by_status"), "running")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(of, "by_status"), "compensated")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(of, "by_status"), "completed")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(bd, "bulk"), "total")), BULK);
    json_t *old = json_object_get(doc, "oldest_running");
    assert_string_equal(str(old, "id"), FX_SAGA_RUNNING);
    assert_string_equal(str(old, "definition"), "order_fulfillment");
    assert_string_equal(str(old, "created_at"), "2023-11-14T22:13:21.000Z");
    assert_true(json_integer_value(json_object_get(old, "age_ms")) > 0);
    json_t *steps = json_object_get(doc, "steps");
    assert_int_equal(json_integer_value(json_object_get(steps, "total")), 5 + 2 * (BULK / 3));
    json_t *ss = json_object_get(steps, "by_status");
    assert_int_equal(json_integer_value(json_object_get(ss, "compensation_failed")), BULK / 3);
    assert_int_equal(json_integer_value(json_object_get(ss, "compensated")), 2 + BULK / 3);
    assert_int_equal(json_integer_value(json_object_get(ss, "running")), 1);
    assert_int_equal(json_integer_value(json_object_get(ss, "queued")), 0);
    assert_true(json_is_null(json_object_get(doc, "runtime")));
    assert_true(json_is_string(json_object_get(doc, "generated_at")));
    json_decref(doc);

    /* the extension point for sagad's in-memory state */
    int calls = 0;
    admin_ctx_t ctx = {READER, .stats_runtime = runtime_hook, .stats_runtime_arg = &calls};
    doc = route_ctx(&ctx, "GET", "/v1/stats", NULL, &st);
    assert_int_equal(st, 200);
    assert_int_equal(calls, 1);
    assert_string_equal(str(json_object_get(json_object_get(doc, "runtime"), "circuits"), "payment.commands"), "open");
    json_decref(doc);
}

static void test_stats_no_running(void **state) {
    fixture_db_t empty;
    assert_int_equal(fixture_db_create(&empty, 0), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(empty.db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    admin_ctx_t ctx = {.db = db};
    unsigned st;
    /* no schema: a JSON 500 naming the read, never a crash */
    static const char *const paths[] = {"/v1/sagas", "/v1/stats", "/v1/definitions", "/v1/definitions/x/1"};
    for (size_t i = 0; i < 4; i++) {
        json_t *doc = route_ctx(&ctx, "GET", paths[i], NULL, &st);
        assert_int_equal(st, 500);
        assert_non_null(strstr(str(json_object_get(doc, "error"), "message"), "no such table"));
        json_decref(doc);
    }
    sqlite3_close(db);
    fixture_db_destroy(&empty);
    /* schema, no rows */
    assert_int_equal(fixture_db_create(&empty, 1), 0);
    assert_int_equal(fixture_db_exec(&empty, "DELETE FROM sagas; DELETE FROM steps"), 0);
    assert_int_equal(sqlite3_open_v2(empty.db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ctx.db = db;
    json_t *doc = route_ctx(&ctx, "GET", "/v1/stats", NULL, &st);
    assert_int_equal(st, 200);
    assert_true(json_is_null(json_object_get(doc, "oldest_running")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "sagas"), "total")), 0);
    assert_int_equal(json_object_size(json_object_get(json_object_get(doc, "sagas"), "by_definition")), 0);
    json_decref(doc);
    doc = route_ctx(&ctx, "GET", "/v1/definitions", NULL, &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_array_size(json_object_get(doc, "definitions")), 0);
    json_decref(doc);
    doc = route_ctx(&ctx, "GET", "/v1/sagas", NULL, &st);
    assert_int_equal(st, 200);
    assert_int_equal(count(doc), 0);
    assert_true(json_is_null(json_object_get(doc, "next_cursor")));
    json_decref(doc);
    sqlite3_close(db);
    fixture_db_destroy(&empty);
}

/* Every allocation failing in turn: a complete answer or an error code,
 * never a crash or a leak (the sanitizer build checks the leaks). */
static void test_alloc_failures(void **state) {
    admin_ctx_t ctx = {READER};
    static const char *const reqs[][2] = {{"/v1/sagas", "definition=order_fulfillment&limit=1"},
                                          {"/v1/stats", NULL},
                                          {"/v1/definitions", NULL},
                                          {"/v1/definitions/order_fulfillment", NULL},
                                          {"/v1/definitions/order_fulfillment/1", NULL},
                                          {"/v1/sagas", "limit=0"}};
    saga_alloc_install_jansson();
    for (size_t k = 0; k < sizeof reqs / sizeof reqs[0]; k++) {
        int completed = 0;
        for (long n = 0; n < 2000 && !completed; n++) {
            admin_request_t req = {.method = "GET", .path = reqs[k][0], .query = reqs[k][1]};
            admin_response_t res;
            saga_alloc_fail_after(n);
            int rc = admin_route(&ctx, &req, &res);
            saga_alloc_fail_after(-1);
            if (rc == 0) {
                assert_non_null(res.body);
                if (res.status == 200 || (k == 5 && res.status == 400)) completed = 1;
                saga_free(res.body);
            } else {
                assert_null(res.body);
            }
        }
        if (!completed) fail_msg("%s never completed", reqs[k][0]);
    }
    json_set_alloc_funcs(malloc, free);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_default_page),
        cmocka_unit_test(test_list_item_fields),
        cmocka_unit_test(test_list_status_filter),
        cmocka_unit_test(test_list_definition_and_error_filters),
        cmocka_unit_test(test_list_time_filters),
        cmocka_unit_test(test_list_step_filter),
        cmocka_unit_test(test_list_search),
        cmocka_unit_test(test_list_pagination),
        cmocka_unit_test(test_list_bad_input),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_list_over_http),
        cmocka_unit_test(test_list_garbage_queries),
        cmocka_unit_test(test_definitions_list),
        cmocka_unit_test(test_definition_versions),
        cmocka_unit_test(test_definition_one),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_stats_no_running),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

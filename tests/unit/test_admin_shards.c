/* The admin API over several shard files (DIR/shard-NNN.db, sagas spread
 * by saga_partition_of): every answer equals the one the same rows give
 * in a single database (the reference), the list pages across shards
 * return every saga once and in order under each filter, and a missing or
 * unreadable shard answers 503 naming it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include "admin.h"
#include "admin_route.h"
#include "commands.h"
#include "saga_alloc.h"
#include "saga_partition.h"
#include "saga_util.h"
#include "test_admin_fixture.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define P 4
#define GENERATED 80

static fixture_shards_t fs;    /* the shards */
static fixture_db_t ref;       /* the same rows in one database */
static sqlite3 *ref_ro;        /* the reference's read-only connection */
static admin_shard_t shards[P]; /* the shards' read-only connections, with their paths */

static const char *const STATUSES[] = {"running", "completed", "compensated", "compensating", "compensation_failed"};
static const char *const DEFS[] = {"order_fulfillment", "alpha", "beta"};

/* Generated sagas g-000..: updated_at in 13 values (ties across shards),
 * statuses, definitions, error codes and steps in cycles; a saga.started
 * history row each (GET ?at= replays it). */
static char *generated_rows(void) {
    size_t cap = 256 * 1024, o = 0;
    char *sql = malloc(cap);
    assert_non_null(sql);
    for (int i = 0; i < GENERATED; i++) {
        char id[16];
        snprintf(id, sizeof id, "g-%03d", i);
        const char *def = DEFS[i % 3];
        o += (size_t)snprintf(sql + o, cap - o,
                              "INSERT INTO sagas (id, definition, version, status, input, created_at, updated_at,"
                              " error_code, error_message) VALUES ('%s', '%s', 1, '%s', '{\"n\":%d}', %lld, %lld,"
                              " '%s', '%s');"
                              "INSERT INTO steps (saga_id, idx, name, status, attempt) VALUES ('%s', 0,"
                              " 'create_order', '%s', 1);"
                              "INSERT INTO history (saga_id, seq, at, event, step, status, detail) VALUES"
                              " ('%s', 1, %lld, 'saga.started', NULL, 'running', '{\"input\":{\"n\":%d},"
                              "\"deadline_at\":0}');",
                              id, def, STATUSES[i % 5], i, FX_T0 - 1000 * i, FX_T0 + 1000LL * (i % 13),
                              i % 4 == 0 ? "E1" : "", i % 4 == 0 ? "boom" : "", id,
                              i % 2 ? "succeeded" : "running", id, FX_T0 - 1000 * i, i);
        if (i % 3 == 1)
            o += (size_t)snprintf(sql + o, cap - o,
                                  "INSERT INTO steps (saga_id, idx, name, status) VALUES ('%s', 1, 'notify', 'pending');",
                                  id);
        assert_true(o < cap);
    }
    return sql;
}

/* Definitions: order_fulfillment 1 (the real one) in every shard, alpha
 * 1 only in shard 0, alpha 2 only in shard 3, beta 1 only in shard 2. */
static void store_definitions(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/sagas/order_fulfillment.json", getenv("SAGA_SOURCE_DIR"));
    size_t len = 0;
    char *def = saga_read_file(path, &len);
    assert_non_null(def);
    /* alpha and beta: the same steps under another name */
    json_t *doc = json_loads(def, 0, NULL);
    assert_non_null(doc);
    char *as[2];
    for (int k = 0; k < 2; k++) {
        json_object_set_new(doc, "name", json_string(k ? "beta" : "alpha"));
        as[k] = json_dumps(doc, JSON_COMPACT);
    }
    json_decref(doc);
    static const struct {
        int shard;
        const char *name;
        int version;
    } only[] = {{0, "alpha", 1}, {3, "alpha", 2}, {2, "beta", 1}};
    sqlite3 *dbs[P + 1];
    for (int p = 0; p < P; p++) dbs[p] = fs.writer[p];
    dbs[P] = ref.writer;
    for (int p = 0; p <= P; p++) {
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(dbs[p], "INSERT INTO definitions VALUES (?1, ?2, ?3, ?4, ?5)", -1, &st,
                                            NULL),
                         SQLITE_OK);
        for (int k = -1; k < 3; k++) {
            if (k >= 0 && p < P && only[k].shard != p) continue;
            sqlite3_bind_text(st, 1, k < 0 ? "order_fulfillment" : only[k].name, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 2, k < 0 ? 1 : only[k].version);
            sqlite3_bind_text(st, 3, k < 0 ? "h-of" : "h", -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, k < 0 ? def : as[strcmp(only[k].name, "beta") == 0], -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, FX_T0);
            assert_int_equal(sqlite3_step(st), SQLITE_DONE);
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
    }
    saga_free(def);
    free(as[0]);
    free(as[1]);
}

static int setup(void **state) {
    (void)state;
    if (fixture_shards_create(&fs, P) != 0 || fixture_db_create(&ref, 1) != 0) return -1;
    char *gen = generated_rows();
    int rc = fixture_shards_spread(&fs, fixture_sample_rows) || fixture_shards_spread(&fs, gen) ||
             fixture_db_exec(&ref, gen);
    free(gen);
    if (rc) return -1;
    store_definitions();
    if (sqlite3_open_v2(ref.db_path, &ref_ro, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return -1;
    for (int p = 0; p < P; p++) {
        char err[512];
        if (admin_shard_open(&shards[p], fs.path[p], err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int p = 0; p < P; p++) admin_shard_close(&shards[p]);
    sqlite3_close(ref_ro);
    fixture_shards_destroy(&fs);
    fixture_db_destroy(&ref);
    return 0;
}

/* admin_route over the shards (multi) or the reference; the parsed body. */
static json_t *route(int multi, const char *method, const char *path, const char *query, unsigned *status,
                     admin_ctx_t *with) {
    admin_ctx_t ctx = {.db = ref_ro};
    if (multi) ctx = (admin_ctx_t){.shards = shards, .shard_count = P};
    if (with) {
        ctx.commands = with->commands;
        ctx.token = with->token;
    }
    admin_request_t req = {.method = method, .path = path, .query = query};
    if (with) {
        req.authorization = "Bearer t0ken";
        req.content_type = "application/json";
        req.body = "{}";
        req.body_len = 2;
    }
    admin_response_t res;
    assert_int_equal(admin_route(&ctx, &req, &res), 0);
    assert_non_null(res.body);
    json_t *doc = json_loads(res.body, JSON_ALLOW_NUL, NULL);
    if (!doc) fail_msg("%s %s?%s: not JSON: %s", method, path, query ? query : "", res.body);
    *status = res.status;
    saga_free(res.body);
    return doc;
}

static json_t *get(int multi, const char *path, const char *query, unsigned want) {
    unsigned st;
    json_t *doc = route(multi, "GET", path, query, &st, NULL);
    if (st != want) {
        char *text = json_dumps(doc, 0);
        fail_msg("GET %s?%s (%s): HTTP %u, want %u: %s", path, query ? query : "", multi ? "shards" : "reference",
                 st, want, text);
    }
    return doc;
}

static void assert_same(const json_t *got, const json_t *want, const char *what) {
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT), *w = json_dumps(want, JSON_COMPACT);
        fail_msg("%s differs:\n shards:    %.2000s\n reference: %.2000s", what, g, w);
    }
}

/* The rows really are spread: every shard holds sagas, none holds all. */
static void test_sagas_spread_over_shards(void **state) {
    (void)state;
    long total = 0;
    for (int p = 0; p < P; p++) {
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(fs.writer[p], "SELECT count(*), sum(saga_shard_of(id) != ?1) FROM sagas",
                                            -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_int(st, 1, p);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        long n = sqlite3_column_int(st, 0);
        assert_true(n > 0 && n < GENERATED);
        assert_int_equal(sqlite3_column_int(st, 1), 0); /* each in its own shard */
        total += n;
        sqlite3_finalize(st);
    }
    assert_int_equal(total, GENERATED + 3);
}

/* Every filter: pages of 7 across the shards hold every saga of the
 * reference's one big page exactly once, in its order, item for item. */
static void test_list_pages_across_shards(void **state) {
    (void)state;
    static const char *const filters[] = {
        "",
        "status=running",
        "status=completed,compensated",
        "definition=alpha",
        "step=notify",
        "step_status=running",
        "error_code=E1",
        "updated_after=2023-11-14T22:13:23Z&updated_before=2023-11-14T22:13:29Z",
        "created_before=2023-11-14T22:12:50Z",
        "status=running,compensating&definition=beta&step=create_order",
    };
    for (size_t f = 0; f < sizeof filters / sizeof filters[0]; f++) {
        char q[512];
        snprintf(q, sizeof q, "limit=500%s%s", filters[f][0] ? "&" : "", filters[f]);
        json_t *want = get(0, "/v1/sagas", q, 200);
        json_t *want_items = json_object_get(want, "sagas");
        size_t n = json_array_size(want_items);
        if (n < 3) fail_msg("filter '%s' selects %zu sagas: too few to page", filters[f], n);
        json_t *one = get(1, "/v1/sagas", q, 200); /* one page of everything */
        assert_same(one, want, filters[f]);
        json_decref(one);

        json_t *all = json_array();
        char cursor[600] = "";
        int pages = 0;
        for (;;) {
            snprintf(q, sizeof q, "limit=7%s%s%s%s", filters[f][0] ? "&" : "", filters[f], cursor[0] ? "&cursor=" : "",
                     cursor);
            json_t *page = get(1, "/v1/sagas", q, 200);
            json_t *items = json_object_get(page, "sagas");
            json_t *next = json_object_get(page, "next_cursor");
            pages++;
            if (json_is_string(next)) assert_int_equal(json_array_size(items), 7);
            json_array_extend(all, items);
            if (!json_is_string(next)) {
                json_decref(page);
                break;
            }
            snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
            json_decref(page);
            assert_true(pages < 100);
        }
        assert_int_equal(json_array_size(all), n);
        assert_int_equal(pages, (int)((n + 6) / 7));
        assert_same(all, want_items, filters[f]);
        json_decref(all);
        json_decref(want);
    }
}

/* GET /v1/sagas/{id} and ?at= find a saga in every shard, answering what
 * the reference answers (?at= with the definition from another shard when
 * the saga's own does not store it); an unknown id is a 404. */
static void test_get_and_at_in_every_shard(void **state) {
    (void)state;
    int seen[P] = {0}, elsewhere = 0;
    for (int i = 0; i < GENERATED; i++) {
        char id[16], path[64];
        snprintf(id, sizeof id, "g-%03d", i);
        snprintf(path, sizeof path, "/v1/sagas/%s", id);
        int p = saga_partition_of(id, P);
        json_t *got = get(1, path, NULL, 200), *want = get(0, path, NULL, 200);
        assert_same(got, want, id);
        json_decref(got);
        json_decref(want);
        got = get(1, path, "at=2023-11-14T22:13:21Z", 200);
        want = get(0, path, "at=2023-11-14T22:13:21Z", 200);
        assert_same(got, want, id);
        assert_string_equal(json_string_value(json_object_get(got, "status")), "running");
        json_decref(got);
        json_decref(want);
        seen[p]++;
        elsewhere += i % 3 == 1 && p != 0; /* alpha 1 is stored in shard 0 only */
    }
    for (int p = 0; p < P; p++) assert_true(seen[p] > 0);
    assert_true(elsewhere > 0);
    json_decref(get(1, "/v1/sagas/no-such-saga", NULL, 404));
    json_decref(get(1, "/v1/sagas/no-such-saga", "at=2023-11-14T22:13:21Z", 404));
}

/* GET /v1/stats sums the shards: the reference's figures. */
static void test_stats_sum_shards(void **state) {
    (void)state;
    json_t *got = get(1, "/v1/stats", NULL, 200), *want = get(0, "/v1/stats", NULL, 200);
    json_t *docs[] = {got, want};
    for (int i = 0; i < 2; i++) {
        json_object_del(docs[i], "generated_at");
        json_object_del(json_object_get(docs[i], "oldest_running"), "age_ms");
    }
    assert_int_equal(json_integer_value(json_object_get(json_object_get(got, "sagas"), "total")), GENERATED + 3);
    assert_same(got, want, "stats");
    json_decref(got);
    json_decref(want);
}

/* GET /v1/definitions: the union of the shards' definitions, each once. */
static void test_definitions_union(void **state) {
    (void)state;
    json_t *got = get(1, "/v1/definitions", NULL, 200), *want = get(0, "/v1/definitions", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(got, "definitions")), 4);
    assert_same(got, want, "definitions");
    json_decref(got);
    json_decref(want);
    got = get(1, "/v1/definitions/alpha", NULL, 200);
    want = get(0, "/v1/definitions/alpha", NULL, 200);
    assert_same(got, want, "definitions/alpha");
    json_decref(got);
    json_decref(want);
    got = get(1, "/v1/definitions/alpha/2", NULL, 200); /* only in shard 3 */
    want = get(0, "/v1/definitions/alpha/2", NULL, 200);
    assert_same(got, want, "definitions/alpha/2");
    json_decref(got);
    json_decref(want);
    json_decref(get(1, "/v1/definitions/alpha/3", NULL, 404));
}

/* /metrics: the database gauges sum the shards; saga_shard_up per shard. */
static char *metrics(int multi) {
    admin_ctx_t ctx = {.db = ref_ro};
    if (multi) ctx = (admin_ctx_t){.shards = shards, .shard_count = P};
    admin_request_t req = {.method = "GET", .path = "/metrics"};
    admin_response_t res;
    assert_int_equal(admin_route(&ctx, &req, &res), 0);
    assert_int_equal(res.status, 200);
    return res.body;
}

/* The lines of text that start with prefix, concatenated. */
static void lines_with(const char *text, const char *prefix, char *out, size_t len) {
    size_t o = 0, k = strlen(prefix);
    out[0] = '\0';
    for (const char *l = text; l && *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) + 1 : strlen(l);
        if (strncmp(l, prefix, k) == 0 && o + n < len) {
            memcpy(out + o, l, n);
            o += n;
            out[o] = '\0';
        }
        l = e ? e + 1 : NULL;
    }
}

static void test_metrics_sum_shards(void **state) {
    (void)state;
    char *got = metrics(1), *want = metrics(0);
    static const char *const prefixes[] = {"saga_sagas{", "saga_steps{", "saga_outbox_backlog "};
    for (size_t i = 0; i < 3; i++) {
        char a[4096], b[4096];
        lines_with(got, prefixes[i], a, sizeof a);
        lines_with(want, prefixes[i], b, sizeof b);
        assert_true(a[0] != '\0');
        assert_string_equal(a, b);
    }
    assert_non_null(strstr(got, "saga_shard_up{shard=\"3\"} 1\n"));
    saga_free(got);
    saga_free(want);
}

/* abort: the running saga is found in its shard, whichever it is. */
static void test_commands_find_saga_in_its_shard(void **state) {
    (void)state;
    saga_command_queue_t *q = saga_command_queue_new(64);
    admin_ctx_t with = {.commands = q, .token = "t0ken"};
    int seen[P] = {0};
    for (int i = 0; i < GENERATED; i += 5) { /* i % 5 == 0: running */
        char id[16], path[64];
        snprintf(id, sizeof id, "g-%03d", i);
        snprintf(path, sizeof path, "/v1/sagas/%s/abort", id);
        unsigned st;
        json_decref(route(1, "POST", path, NULL, &st, &with));
        assert_int_equal(st, 202);
        seen[saga_partition_of(id, P)]++;
    }
    for (int p = 0; p < P; p++) assert_true(seen[p] > 0);
    unsigned st;
    json_decref(route(1, "POST", "/v1/sagas/g-001/abort", NULL, &st, &with)); /* completed */
    assert_int_equal(st, 409);
    json_decref(route(1, "POST", "/v1/sagas/nope/abort", NULL, &st, &with));
    assert_int_equal(st, 404);
    saga_command_t cmds[64];
    int n = saga_command_take(q, cmds, 64);
    for (int i = 0; i < n; i++) saga_command_clear(&cmds[i]);
    saga_command_queue_free(&q);
}

/* ---- a shard that goes missing or cannot be read (over HTTP) ---- */

static long http_get(int port, const char *path, json_t **doc, char **text) {
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    fx_reply_t r;
    assert_int_equal(fx_http(NULL, url, NULL, 0, &r), 0);
    if (doc) *doc = json_loads(r.body, 0, NULL);
    if (text) *text = strdup(r.body);
    fx_reply_free(&r);
    return r.status;
}

/* A 503 unavailable whose error names the shard and its file. */
static void assert_shard_error(int port, const char *path, int shard) {
    json_t *doc = NULL;
    long st = http_get(port, path, &doc, NULL);
    json_t *e = json_object_get(doc, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    char file[32];
    snprintf(file, sizeof file, "shard-%03d.db", shard);
    if (st != 503 || json_integer_value(json_object_get(e, "shard")) != shard ||
        !msg || !strstr(msg, file)) {
        char *t = json_dumps(doc, 0);
        fail_msg("GET %s: HTTP %ld %s, want 503 naming shard %d (%s)", path, st, t, shard, file);
    }
    assert_string_equal(json_string_value(json_object_get(e, "code")), "unavailable");
    json_decref(doc);
}

static void test_missing_shard_answers_503(void **state) {
    (void)state;
    char err[512] = "";
    saga_admin_t *a = saga_admin_start("127.0.0.1", 0, fs.paths, P, err, sizeof err);
    if (!a) fail_msg("saga_admin_start: %s", err);
    int port = saga_admin_port(a);
    const char *in2 = NULL, *in0 = NULL, *beta = NULL; /* sagas in shard 2 and 0; a beta saga outside 2 */
    static char ids[GENERATED][16];
    for (int i = 0; i < GENERATED; i++) {
        snprintf(ids[i], sizeof ids[i], "g-%03d", i);
        int p = saga_partition_of(ids[i], P);
        if (p == 2 && !in2) in2 = ids[i];
        if (p == 0 && !in0) in0 = ids[i];
        if (p != 2 && i % 3 == 2 && !beta) beta = ids[i];
    }
    assert_non_null(beta);
    char beta_at[96];
    snprintf(beta_at, sizeof beta_at, "/v1/sagas/%s?at=2023-11-14T22:13:21Z", beta);
    assert_int_equal(http_get(port, beta_at, NULL, NULL), 200);
    char path2[64], path0[64];
    snprintf(path2, sizeof path2, "/v1/sagas/%s", in2);
    snprintf(path0, sizeof path0, "/v1/sagas/%s", in0);
    assert_int_equal(http_get(port, "/v1/sagas", NULL, NULL), 200);

    /* shard 2's file goes away */
    char moved[400];
    snprintf(moved, sizeof moved, "%s.away", fs.path[2]);
    assert_int_equal(rename(fs.path[2], moved), 0);
    assert_shard_error(port, "/v1/sagas", 2);
    assert_shard_error(port, "/v1/sagas?status=running", 2);
    assert_shard_error(port, path2, 2);
    assert_shard_error(port, "/v1/stats", 2);
    assert_shard_error(port, "/v1/definitions", 2);
    assert_shard_error(port, "/healthz", 2);
    assert_int_equal(http_get(port, path0, NULL, NULL), 200); /* another shard's saga */
    assert_shard_error(port, beta_at, 2); /* its definition (beta 1) is stored in shard 2 only */
    { /* a command for a saga of shard 2 (admin_route over the test's own connections) */
        saga_command_queue_t *q = saga_command_queue_new(4);
        admin_ctx_t with = {.commands = q, .token = "t0ken"};
        char abort_path[64];
        snprintf(abort_path, sizeof abort_path, "/v1/sagas/%s/abort", in2);
        unsigned st;
        json_t *e = route(1, "POST", abort_path, NULL, &st, &with);
        assert_int_equal(st, 503);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "error"), "shard")), 2);
        assert_int_equal(saga_command_pending(q), 0);
        json_decref(e);
        saga_command_queue_free(&q);
    }
    json_t *doc = NULL;
    assert_int_equal(http_get(port, "/readyz", &doc, NULL), 503);
    assert_int_equal(json_integer_value(json_object_get(doc, "shard")), 2);
    assert_true(json_is_false(json_object_get(doc, "sqlite")));
    json_decref(doc);
    char *text = NULL;
    assert_int_equal(http_get(port, "/metrics", NULL, &text), 200);
    assert_non_null(strstr(text, "saga_shard_up{shard=\"2\"} 0\n"));
    assert_non_null(strstr(text, "saga_shard_up{shard=\"1\"} 1\n"));
    assert_null(strstr(text, "saga_sagas{")); /* no sum over part of the sagas */
    free(text);

    /* back: answered again */
    assert_int_equal(rename(moved, fs.path[2]), 0);
    assert_int_equal(http_get(port, "/v1/sagas", NULL, NULL), 200);
    assert_int_equal(http_get(port, path2, NULL, NULL), 200);

    /* shard 1 replaced by a file that is no database (its WAL moved away
     * with it, or SQLite would read page 1 from there): unreadable */
    static const char *const parts[] = {"", "-wal", "-shm"};
    char from[400], to[400];
    for (int k = 0; k < 3; k++) {
        snprintf(from, sizeof from, "%s%s", fs.path[1], parts[k]);
        snprintf(to, sizeof to, "%s.away%s", fs.path[1], parts[k]);
        assert_int_equal(rename(from, to), 0);
    }
    FILE *f = fopen(fs.path[1], "w");
    assert_non_null(f);
    for (int k = 0; k < 100; k++) fputs("this is not an SQLite database, not even close to one.....\n", f);
    fclose(f);
    assert_shard_error(port, "/v1/sagas", 1);
    assert_shard_error(port, "/v1/stats", 1);
    for (int k = 0; k < 3; k++) { /* the real one back (a restore): opened again */
        snprintf(from, sizeof from, "%s.away%s", fs.path[1], parts[k]);
        snprintf(to, sizeof to, "%s%s", fs.path[1], parts[k]);
        assert_int_equal(rename(from, to), 0);
    }
    assert_int_equal(http_get(port, "/v1/sagas", NULL, NULL), 200);
    saga_admin_stop(&a);

    /* the data directory form */
    a = saga_admin_start_dir("127.0.0.1", 0, fs.dir, P, err, sizeof err);
    if (!a) fail_msg("saga_admin_start_dir: %s", err);
    assert_int_equal(http_get(saga_admin_port(a), "/v1/sagas", NULL, NULL), 200);
    saga_admin_stop(&a);
    assert_null(saga_admin_start_dir("127.0.0.1", 0, fs.dir, 0, err, sizeof err));

    /* a shard missing at start (sagad restores it when the group assigns
     * it, after the admin API started): served, its sagas answer 503 naming
     * it until the file is there, then 200 */
    const char *in3 = NULL;
    for (int i = 0; i < GENERATED && !in3; i++)
        if (saga_partition_of(ids[i], P) == 3) in3 = ids[i];
    assert_non_null(in3);
    char path3[64];
    snprintf(path3, sizeof path3, "/v1/sagas/%s", in3);
    assert_int_equal(rename(fs.path[3], moved), 0);
    a = saga_admin_start("127.0.0.1", 0, fs.paths, P, err, sizeof err);
    if (!a) fail_msg("saga_admin_start with shard 3 missing: %s", err);
    assert_shard_error(saga_admin_port(a), path3, 3);
    assert_int_equal(http_get(saga_admin_port(a), path0, NULL, NULL), 200);
    assert_int_equal(rename(moved, fs.path[3]), 0);
    assert_int_equal(http_get(saga_admin_port(a), path3, NULL, NULL), 200);
    saga_admin_stop(&a);
}

/* The registry's answer in the test: shard 2's owner is known, shard 3's not. */
static int fake_owner(void *arg, int shard, char *url, size_t len) {
    (void)arg;
    if (shard != 2) return -1;
    snprintf(url, len, "http://127.0.0.1:9");
    return 0;
}

/* A cluster instance owning shards 0 and 1: it reads only those; a saga of
 * shard 2 answers 307 to its owner (path and query kept), one of shard 3
 * (no owner known) 503 naming it; lists, stats and health cover 0 and 1. */
static void test_shards_owned_elsewhere(void **state) {
    (void)state;
    char err[512] = "";
    saga_admin_t *a = saga_admin_start("127.0.0.1", 0, fs.paths, P, err, sizeof err);
    if (!a) fail_msg("saga_admin_start: %s", err);
    static unsigned char owned[P] = {1, 1, 0, 0};
    saga_admin_set_owned(a, owned, fake_owner, NULL);
    int port = saga_admin_port(a);
    const char *in[P] = {0};
    static char ids[GENERATED][16];
    for (int i = 0; i < GENERATED; i++) {
        snprintf(ids[i], sizeof ids[i], "g-%03d", i);
        int p = saga_partition_of(ids[i], P);
        if (!in[p]) in[p] = ids[i];
    }
    char path[128];
    json_t *doc = NULL;
    snprintf(path, sizeof path, "/v1/sagas/%s?at=2023-11-14T22:13:21Z", in[2]);
    assert_int_equal(http_get(port, path, &doc, NULL), 307);
    char want[256];
    snprintf(want, sizeof want, "http://127.0.0.1:9%s", path);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "error"), "location")), want);
    json_decref(doc);
    snprintf(path, sizeof path, "/v1/sagas/%s", in[3]);
    assert_shard_error(port, path, 3);
    snprintf(path, sizeof path, "/v1/sagas/%s", in[1]);
    assert_int_equal(http_get(port, path, NULL, NULL), 200);

    assert_int_equal(http_get(port, "/v1/sagas?limit=500&scope=local", &doc, NULL), 200);
    json_t *items = json_object_get(doc, "sagas"), *item;
    size_t i, listed = json_array_size(items);
    assert_true(listed > 0);
    json_array_foreach(items, i, item) assert_true(owned[saga_partition_of(json_string_value(json_object_get(item, "id")), P)]);
    json_decref(doc);
    assert_int_equal(http_get(port, "/v1/stats?scope=local", &doc, NULL), 200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "sagas"), "total")), (json_int_t)listed);
    json_decref(doc);
    /* the whole cluster's list needs shard 3, which has no owner now */
    for (int k = 0; k < 2; k++) {
        const char *whole = k ? "/v1/stats" : "/v1/sagas";
        assert_int_equal(http_get(port, whole, &doc, NULL), 503);
        json_t *e = json_object_get(doc, "error");
        assert_int_equal(json_integer_value(json_object_get(e, "shard")), 3);
        assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "no sagad instance of the group owns"));
        json_decref(doc);
    }
    /* ?shards= reads exactly those, each owned here */
    assert_int_equal(http_get(port, "/v1/stats?shards=1", &doc, NULL), 200);
    json_int_t in1 = json_integer_value(json_object_get(json_object_get(doc, "sagas"), "total"));
    json_decref(doc);
    assert_true(in1 > 0 && in1 < (json_int_t)listed);
    assert_int_equal(http_get(port, "/v1/stats?shards=1,2", &doc, NULL), 503);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "error"), "shard")), 2);
    json_decref(doc);
    assert_int_equal(http_get(port, "/v1/sagas?shards=1,x", &doc, NULL), 400);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "error"), "parameter")), "shards");
    json_decref(doc);

    char moved[400];
    snprintf(moved, sizeof moved, "%s.away", fs.path[2]);
    assert_int_equal(rename(fs.path[2], moved), 0); /* another instance's file: not this one's health */
    assert_int_equal(http_get(port, "/healthz", NULL, NULL), 200);
    assert_int_equal(rename(moved, fs.path[2]), 0);
    saga_admin_stop(&a);
}

/* Two instances over the same files, owning {0, 1} and {2, 3}, each
 * naming the other as the owner of what it lacks: either one's list (paged
 * by 7) and stats are the whole, item for item as one instance owning
 * everything gives them; with the other gone, a 503 naming its shards. */
typedef struct {
    int port[2];
} pair_t;

static int pair_owner(void *arg, int shard, char *url, size_t len) {
    const pair_t *pr = arg;
    snprintf(url, len, "http://127.0.0.1:%d", pr->port[shard < 2 ? 0 : 1]);
    return 0;
}

/* Every page of path's list (limit 7) on port: ids joined by ' '. */
static char *all_pages(int port, const char *filter) {
    size_t cap = 1 << 16, len = 0;
    char *ids = calloc(1, cap), cursor[1200] = "", path[1600];
    for (int pages = 0; pages < 100; pages++) {
        snprintf(path, sizeof path, "/v1/sagas?limit=7%s%s%s", filter, cursor[0] ? "&cursor=" : "", cursor);
        json_t *doc = NULL;
        assert_int_equal(http_get(port, path, &doc, NULL), 200);
        json_t *item;
        size_t i;
        json_array_foreach(json_object_get(doc, "sagas"), i, item)
            len += (size_t)snprintf(ids + len, cap - len, "%s ", json_string_value(json_object_get(item, "id")));
        json_t *next = json_object_get(doc, "next_cursor");
        snprintf(cursor, sizeof cursor, "%s", json_is_string(next) ? json_string_value(next) : "");
        json_decref(doc);
        if (!cursor[0]) break;
    }
    return ids;
}

static void test_cluster_gathers_every_shard(void **state) {
    (void)state;
    char err[512] = "";
    saga_admin_t *one = saga_admin_start("127.0.0.1", 0, fs.paths, P, err, sizeof err);
    saga_admin_t *a = saga_admin_start("127.0.0.1", 0, fs.paths, P, err, sizeof err);
    saga_admin_t *b = saga_admin_start("127.0.0.1", 0, fs.paths, P, err, sizeof err);
    if (!one || !a || !b) fail_msg("saga_admin_start: %s", err);
    static unsigned char owned_a[P] = {1, 1, 0, 0}, owned_b[P] = {0, 0, 1, 1};
    static pair_t pr;
    pr.port[0] = saga_admin_port(a);
    pr.port[1] = saga_admin_port(b);
    saga_admin_set_owned(a, owned_a, pair_owner, &pr);
    saga_admin_set_owned(b, owned_b, pair_owner, &pr);
    static const char *const filters[] = {"", "&status=completed", "&definition=beta"};
    for (size_t f = 0; f < sizeof filters / sizeof filters[0]; f++) {
        char *want = all_pages(saga_admin_port(one), filters[f]);
        assert_true(strlen(want) > 0);
        for (int k = 0; k < 2; k++) {
            char *got = all_pages(pr.port[k], filters[f]);
            assert_string_equal(got, want);
            free(got);
        }
        free(want);
    }
    json_t *doc = NULL;
    json_int_t total[3], local = 0;
    for (int k = 0; k < 3; k++) {
        assert_int_equal(http_get(k < 2 ? pr.port[k] : saga_admin_port(one), "/v1/stats", &doc, NULL), 200);
        total[k] = json_integer_value(json_object_get(json_object_get(doc, "sagas"), "total"));
        json_decref(doc);
    }
    assert_int_equal(total[0], GENERATED + 3);
    assert_int_equal(total[1], GENERATED + 3);
    assert_int_equal(total[2], GENERATED + 3);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(http_get(pr.port[k], "/v1/stats?scope=local", &doc, NULL), 200);
        json_int_t n = json_integer_value(json_object_get(json_object_get(doc, "sagas"), "total"));
        assert_true(n > 0 && n < GENERATED + 3);
        local += n;
        json_decref(doc);
    }
    assert_int_equal(local, GENERATED + 3);
    int port_b = pr.port[1];
    saga_admin_stop(&b);
    assert_int_equal(http_get(pr.port[0], "/v1/stats", &doc, NULL), 503);
    json_t *e = json_object_get(doc, "error");
    assert_int_equal(json_integer_value(json_object_get(e, "shard")), 2);
    char owner[64];
    snprintf(owner, sizeof owner, "http://127.0.0.1:%d did not answer", port_b);
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), owner));
    json_decref(doc);
    saga_admin_stop(&a);
    saga_admin_stop(&one);
}

/* The bulk commands on the same pair: the selection covers every shard
 * whichever instance is asked; two bulk requests sent to both at once are
 * both answered (each lets go of its lock while it asks the other); with
 * the other instance gone, 503 and nothing queued. */
typedef struct {
    int port;
    const char *path, *body;
    long status;
    json_t *doc;
} post_t;

static size_t to_buf(char *data, size_t size, size_t n, void *arg) {
    char **buf = arg;
    size_t old = *buf ? strlen(*buf) : 0;
    char *grown = realloc(*buf, old + size * n + 1);
    memcpy(grown + old, data, size * n);
    grown[old + size * n] = '\0';
    *buf = grown;
    return size * n;
}

static void *bulk_post(void *arg) {
    post_t *p = arg;
    char url[256], *body = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", p->port, p->path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer t0ken");
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    p->status = curl_easy_perform(c) == CURLE_OK ? 0 : -1;
    if (p->status == 0) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &p->status);
    p->doc = body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static void test_cluster_bulk_selects_every_shard(void **state) {
    (void)state;
    char err[512] = "";
    saga_admin_t *a = saga_admin_start("127.0.0.1", 0, fs.paths, P, err, sizeof err);
    saga_admin_t *b = saga_admin_start("127.0.0.1", 0, fs.paths, P, err, sizeof err);
    if (!a || !b) fail_msg("saga_admin_start: %s", err);
    saga_command_queue_t *qa = saga_command_queue_new(256), *qb = saga_command_queue_new(256);
    saga_admin_set_commands(a, qa, "t0ken");
    saga_admin_set_commands(b, qb, "t0ken");
    static unsigned char owned_a[P] = {1, 1, 0, 0}, owned_b[P] = {0, 0, 1, 1};
    static pair_t pr;
    pr.port[0] = saga_admin_port(a);
    pr.port[1] = saga_admin_port(b);
    saga_admin_set_owned(a, owned_a, pair_owner, &pr);
    saga_admin_set_owned(b, owned_b, pair_owner, &pr);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(ref_ro, "SELECT count(*) FROM sagas WHERE status = 'running'", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    json_int_t running = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    assert_true(running > 10);
    /* both at once: each asks the other for its shards */
    post_t p[2] = {{pr.port[0], "/v1/sagas/abort", "{\"dry_run\":true}", 0, NULL},
                   {pr.port[1], "/v1/sagas/abort", "{\"dry_run\":true}", 0, NULL}};
    pthread_t t[2];
    for (int k = 0; k < 2; k++) pthread_create(&t[k], NULL, bulk_post, &p[k]);
    for (int k = 0; k < 2; k++) {
        pthread_join(t[k], NULL);
        assert_int_equal(p[k].status, 200);
        assert_int_equal(json_integer_value(json_object_get(p[k].doc, "matched")), running);
        json_decref(p[k].doc);
    }
    /* a real run on b: every running saga of the four shards, once */
    post_t r = {pr.port[1], "/v1/sagas/abort", "{\"reason\":\"drill\"}", 0, NULL};
    bulk_post(&r);
    assert_int_equal(r.status, 202);
    assert_int_equal(json_integer_value(json_object_get(r.doc, "queued")), running);
    json_decref(r.doc);
    saga_command_t cmds[256];
    int n = saga_command_take(qb, cmds, 256);
    assert_int_equal(n, running);
    int seen[P] = {0};
    for (int i = 0; i < n; i++) {
        seen[saga_partition_of(cmds[i].saga_id, P)]++;
        saga_command_clear(&cmds[i]);
    }
    for (int k = 0; k < P; k++) assert_true(seen[k] > 0);
    assert_int_equal(saga_command_pending(qa), 0);
    /* the other instance gone: 503, nothing queued */
    saga_admin_stop(&b);
    post_t gone = {pr.port[0], "/v1/sagas/abort", "{}", 0, NULL};
    bulk_post(&gone);
    assert_int_equal(gone.status, 503);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(gone.doc, "error"), "shard")), 2);
    json_decref(gone.doc);
    assert_int_equal(saga_command_pending(qa), 0);
    saga_admin_stop(&a);
    saga_command_queue_free(&qa);
    saga_command_queue_free(&qb);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sagas_spread_over_shards),
        cmocka_unit_test(test_list_pages_across_shards),
        cmocka_unit_test(test_get_and_at_in_every_shard),
        cmocka_unit_test(test_stats_sum_shards),
        cmocka_unit_test(test_definitions_union),
        cmocka_unit_test(test_metrics_sum_shards),
        cmocka_unit_test(test_commands_find_saga_in_its_shard),
        cmocka_unit_test(test_missing_shard_answers_503),
        cmocka_unit_test(test_shards_owned_elsewhere),
        cmocka_unit_test(test_cluster_gathers_every_shard),
        cmocka_unit_test(test_cluster_bulk_selects_every_shard),
    };
    int rc = cmocka_run_group_tests_name("admin_shards", tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}

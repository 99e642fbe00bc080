/* The changelog codec on real SQLite files: every status restored row for
 * row (saga_store_load, saga_store_state_at), tombstones, idempotence,
 * order, catch-up, corrupt records (fixture: test_changelog_fixture.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "changelog.h"
#include "changelog_internal.h"
#include "replay.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "store.h"

#include "test_changelog_fixture.h"

static void test_restore_is_row_identical(void **state) {
    fixture_t *f = *state;
    restore_all(f);
    assert_tables_equal(f);
    assert_loads_equal(f, f->reg);
    assert_int_equal(saga_store_next_timer_due(f->dst), saga_store_next_timer_due(f->src));
    int64_t off = -1;
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, NSAGAS);
    /* the child saga done-1 answered its parent "mom" on its partition (2), keyed by the parent */
    char *ans = rows_of(f->src_path, "SELECT key, kafka_partition, json_extract(payload, '$.status') FROM outbox"
                                     " WHERE json_extract(payload, '$.type') = 'saga.reply'");
    assert_string_equal(ans, "3:mom|1:2|3:success\n");
    free(ans);
    /* every status is covered */
    char *st = rows_of(f->dst_path, "SELECT group_concat(DISTINCT status) FROM sagas");
    for (int s = 0; s < SAGA_STATUS__COUNT; s++) assert_non_null(strstr(st, saga_status_name((saga_status_t)s)));
    free(st);
}

/* A restored shard whose definitions directory lost the file still runs
 * its sagas: the definition came back with the changelog. */
static void test_restore_without_definition_file(void **state) {
    fixture_t *f = *state;
    restore_all(f);
    saga_registry_t *empty = saga_registry_new();
    char err[512];
    assert_int_equal(saga_store_load_retired(f->dst, empty, err, sizeof err), 0);
    const saga_definition_t *def = saga_registry_get(empty, "order_fulfillment", 1);
    assert_non_null(def);
    assert_string_equal(def->hash, f->def->hash);
    assert_loads_equal(f, empty);
    saga_registry_free(&empty);
}

static void test_tombstone_removes_the_saga(void **state) {
    fixture_t *f = *state;
    restore_all(f);
    char err[512];
    assert_int_equal(apply_one(f, "cfail-1", NULL, 0, 100, err, sizeof err), 0);
    char *n = rows_of(f->dst_path, "SELECT (SELECT count(*) FROM sagas WHERE id = 'cfail-1') +"
                                   " (SELECT count(*) FROM steps WHERE saga_id = 'cfail-1') +"
                                   " (SELECT count(*) FROM history WHERE saga_id = 'cfail-1') +"
                                   " (SELECT count(*) FROM timers WHERE saga_id = 'cfail-1'),"
                                   " (SELECT count(*) FROM sagas)");
    assert_string_equal(n, "1:0|1:8\n");
    free(n);
    /* its search attributes went with it (the sagas_search_delete trigger) */
    n = rows_of(f->dst_path, "SELECT count(*) FROM saga_search WHERE saga_id = 'cfail-1'");
    assert_string_equal(n, "1:0\n");
    free(n);
    n = rows_of(f->dst_path, "SELECT count(*) FROM saga_search");
    assert_string_equal(n, "1:14\n"); /* 7 sagas with 2 attributes each */
    free(n);
    /* a tombstone for a saga never stored is fine too */
    assert_int_equal(apply_one(f, "never-1", "", 0, 101, err, sizeof err), 0);
    int64_t off;
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 101);
}

static void test_same_record_twice_is_idempotent(void **state) {
    fixture_t *f = *state;
    restore_all(f);
    char *before = snapshot(f), err[512];
    for (int i = 0; i < NSAGAS; i++) {
        char *rec = encode(f, f->src, g_ids[i]);
        assert_int_equal(apply_one(f, g_ids[i], rec, strlen(rec), -1, err, sizeof err), 0);
        saga_free(rec);
    }
    char *after = snapshot(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
    assert_tables_equal(f);
}

static void test_older_then_newer_gives_newer(void **state) {
    fixture_t *f = *state;
    saga_t s;
    start(f, &s, "later-1");
    char *old = encode(f, f->src, "later-1"), err[512];
    reply(f, &s, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    reply(f, &s, 1, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    char *mid = encode(f, f->src, "later-1");
    reply(f, &s, 2, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    reply(f, &s, 3, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    char *last = encode(f, f->src, "later-1");
    saga_clear(&s);
    assert_string_not_equal(old, last);
    restore_all(f);
    assert_int_equal(apply_one(f, "later-1", old, strlen(old), 10, err, sizeof err), 0);
    assert_int_equal(apply_one(f, "later-1", mid, strlen(mid), 11, err, sizeof err), 0);
    char *h = rows_of(f->dst_path, "SELECT count(*) FROM timers WHERE saga_id = 'later-1'");
    assert_string_not_equal(h, "1:0\n"); /* running: a step timer and the deadline */
    free(h);
    assert_int_equal(apply_one(f, "later-1", last, strlen(last), 12, err, sizeof err), 0);
    assert_tables_equal(f);
    saga_t a;
    assert_int_equal(saga_store_load(f->dst, f->reg, "later-1", &a, err, sizeof err), 0);
    assert_int_equal(a.status, SAGA_STATUS_COMPLETED);
    saga_clear(&a);
    saga_free(old);
    saga_free(mid);
    saga_free(last);
}

/* Catch-up in place: a shard that kept its file may hold a newer state than
 * a record after its marker (SQLite commits before the Kafka transaction):
 * an older record or a tombstone of a running saga must not replace it. */
static void test_catch_up_never_goes_back(void **state) {
    fixture_t *f = *state;
    saga_t s;
    start(f, &s, "ahead-1");
    char *old = encode(f, f->src, "ahead-1"), err[512];
    reply(f, &s, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    char *mid = encode(f, f->src, "ahead-1");
    reply(f, &s, 1, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    char *last = encode(f, f->src, "ahead-1");
    saga_clear(&s);
    restore_all(f);
    assert_int_equal(apply_one(f, "ahead-1", mid, strlen(mid), 20, err, sizeof err), 0);
    char *at_mid = rows_of(f->dst_path, "SELECT s.seq, s.status, s.updated_at, (SELECT count(*) FROM history WHERE saga_id = s.id), (SELECT group_concat(status) FROM steps WHERE saga_id = s.id) FROM sagas s WHERE id = 'ahead-1'");
    saga_changelog_only_newer(f->dst, true);
    assert_int_equal(apply_one(f, "ahead-1", old, strlen(old), 21, err, sizeof err), 0);
    assert_int_equal(apply_one(f, "ahead-1", NULL, 0, 22, err, sizeof err), 0); /* running: kept */
    char *after = rows_of(f->dst_path, "SELECT s.seq, s.status, s.updated_at, (SELECT count(*) FROM history WHERE saga_id = s.id), (SELECT group_concat(status) FROM steps WHERE saga_id = s.id) FROM sagas s WHERE id = 'ahead-1'");
    assert_string_equal(at_mid, after); /* the older record and the tombstone were skipped */
    int64_t off;
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 22); /* the marker still moves */
    assert_int_equal(apply_one(f, "ahead-1", last, strlen(last), 23, err, sizeof err), 0);
    assert_tables_equal(f); /* a newer record is applied */
    /* a finished saga's tombstone is applied */
    assert_int_equal(apply_one(f, "done-1", NULL, 0, 24, err, sizeof err), 0);
    char *n = rows_of(f->dst_path, "SELECT count(*) FROM sagas WHERE id = 'done-1'");
    assert_string_equal(n, "1:0\n");
    free(n);
    /* off again: an older record replaces (a rebuild applies in offset order) */
    saga_changelog_only_newer(f->dst, false);
    assert_int_equal(apply_one(f, "ahead-1", old, strlen(old), 25, err, sizeof err), 0);
    char *back = rows_of(f->dst_path, "SELECT s.seq, s.status, s.updated_at, (SELECT count(*) FROM history WHERE saga_id = s.id), (SELECT group_concat(status) FROM steps WHERE saga_id = s.id) FROM sagas s WHERE id = 'ahead-1'");
    assert_string_not_equal(back, at_mid); /* at the old state again, before mid */
    free(back);
    free(at_mid);
    free(after);
    saga_free(old);
    saga_free(mid);
    saga_free(last);
}

/* GCC 12 at -O3 (CMAKE_BUILD_TYPE=Release) takes the record that encode()
 * returned for a pointer to its local variable once mutate is inlined. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif

/* rec with history[0].detail a string (a new string). */
static char *detail_as_string(const char *rec) {
    json_t *r = saga_json_parse(rec, strlen(rec), NULL, 0);
    assert_non_null(r);
    json_object_set_new(json_array_get(json_object_get(r, "history"), 0), "detail", json_string("{}"));
    char *text = saga_json_dump(r), *out = strdup(text);
    saga_free(text);
    json_decref(r);
    return out;
}

static void test_corrupt_records_are_refused_and_change_nothing(void **state) {
    fixture_t *f = *state;
    restore_all(f);
    char *good = encode(f, f->src, "done-1");
    char *good_run = encode(f, f->src, "run-1");
    struct {
        const char *key;
        char *value;
        size_t len;
        const char *expect;
    } cases[] = {
        {"done-1", strdup(good), strlen(good) / 2, "value is not JSON"},
        {"done-1", mutate(good, "\"completions\":4", "\"completions\":\"4\""), 0, "saga.completions: must be an integer, not a string"},
        {"done-1", mutate(good, "\"completions\":4", "\"completions\":4.0"), 0, "saga.completions: must be an integer, not a real"},
        {"done-1", mutate(good, "\"input\":", "\"inputs\":"), 0, "saga: member 'input' is missing"},
        {"done-1", mutate(good, "{\"v\":1", "{\"v\":2"), 0, "format version 2 is not supported"},
        {"done-1", mutate(good, "{\"v\":1", "{\"v\":\"1\""), 0, "v (the format version): must be an integer"},
        {"comp-1", strdup(good), 0, "saga.id: 'done-1' is not the record's key"},
        {"done-1", mutate(good, "\"timers\":[", "\"timers\":[{\"slot\":0,\"kind\":\"snooze\",\"attempt\":1,\"due_at\":5}"),
         0, "timers[0].kind: unknown value 'snooze'"},
        {"done-1", mutate(good, "\"status\":\"completed\"", "\"status\":\"finished\""), 0, "saga.status: unknown value"},
        {"done-1", mutate(good, "\"steps\":[", "\"steps\":7,\"x\":["), 0, "unknown member 'x'"},
        {"done-1", mutate(good, "\"idx\":1", "\"idx\":0"), 0, "steps[1]: row key 0 repeats"},
        {"done-1", mutate(good, "\"idx\":1", "\"idx\":64"), 0, "steps[1].idx: 64 is not in [0, 63]"},
        {"done-1", mutate(good, "\"completions\":4", "\"completions\":-1"), 0, "saga.completions: -1"},
        {"done-1", mutate(good, "\"history\":[{\"seq\":1", "\"history\":[{\"seq\":99"), 0, "history[0].seq: 99 is not in"},
        {"done-1", detail_as_string(good), 0, "history[0].detail: must be an object, not a string"},
        {"done-1", mutate(good, "\"error_code\":\"\"", "\"error_code\":\"a\\u0000b\""), 0, "holds a NUL byte"},
        {"done-1", mutate(good, "\"definition_hash\":\"", "\"definition_hash\":\"f"), 0, "saga.definition_hash"},
        {"done-1", strdup("[1,2]"), 0, "must be a JSON object, not an array"},
        {"bad/key", strdup(good), 0, "neither a saga id"},
        {"run-1", mutate(good_run, "\"slot\":-1", "\"slot\":\"-1\""), 0, "timers[0].slot: must be an integer"},
        {"def/order_fulfillment/1", strdup(good), 0, "record: member 'definition' is missing"},
        {"def/order_fulfillment/x", strdup("{}"), 0, "must end in /VERSION"},
        {"run-1", mutate(good_run, "\"signal\":{\"status\":\"success\"", "\"signal\":{\"status\":\"maybe\""), 0,
         "steps[2].signal.status: must be success or failure"},
        {"run-1", mutate(good_run, "\"signal\":{", "\"signal\":{\"x\":1,"), 0, "steps[2].signal: unknown member 'x'"},
        {"done-1", mutate(good, "\"parent\":{", "\"parent\":{\"x\":1,"), 0, "saga.parent: unknown member 'x'"},
        {"done-1", mutate(good, "\"attempt\":1,\"partition\":2", "\"attempt\":0,\"partition\":2"), 0, "saga.parent.attempt"},
        {"done-1", mutate(good, "\"search\":{", "\"search\":{\"9x\":\"a\","), 0, "saga.search: '9x' is not a search"},
        {"done-1", mutate(good, "\"search\":{", "\"search\":{\"n\":5,"), 0, "saga.search.n: must be a string"},
        {"done-1", mutate(good, "\"search\":{\"order_id\":\"done-1\",\"customer\":\"c-1\"}", "\"search\":true"), 0,
         "saga.search: must be an object, not a boolean"},
        {"done-1", mutate(good, "\"search\":{", "\"search\":{\"a\":\"1\",\"b\":\"1\",\"c\":\"1\",\"d\":\"1\",\"e\":\"1\",\"f\":\"1\",\"g\":\"1\","), 0,
         "saga.search: 9 attributes, at most 8"},
    };
    char *before = snapshot(f);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].value);
        assert_int_equal(saga_store_begin(f->dst), 0);
        int rc = saga_changelog_apply(f->dst, cases[i].key, strlen(cases[i].key), cases[i].value, len, 500, err,
                                      sizeof err);
        if (rc == 0 || !strstr(err, cases[i].expect) || !strstr(err, cases[i].key))
            fail_msg("case %zu: rc %d, err '%s', expected '%s'", i, rc, err, cases[i].expect);
        assert_non_null(strstr(err, "(offset 500)"));
        /* the caller's transaction goes on: a good record applies after */
        assert_int_equal(saga_changelog_apply(f->dst, "done-1", 6, good, strlen(good), -1, err, sizeof err), 0);
        assert_int_equal(saga_store_commit(f->dst), 0);
        free(cases[i].value);
    }
    char *after = snapshot(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
    saga_free(good);
    saga_free(good_run);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_restore_is_row_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_without_definition_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstone_removes_the_saga, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_record_twice_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_older_then_newer_gives_newer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_never_goes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_records_are_refused_and_change_nothing, setup, teardown),
    };
    return cmocka_run_group_tests_name("changelog", tests, NULL, NULL);
}

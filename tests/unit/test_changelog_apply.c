/* The changelog's other records and its apply path: definition records,
 * the offset marker, transactions, the size limit, bulk restore, batches,
 * pause records (fixture: test_changelog_fixture.c). */
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

static void test_definition_records(void **state) {
    fixture_t *f = *state;
    restore_all(f);
    char *def, err[512];
    size_t len;
    assert_int_equal(saga_changelog_encode_definition(f->src, "order_fulfillment", 9, 0, &def, &len, err, sizeof err),
                     SAGA_ENOTFOUND);
    assert_null(def);
    assert_int_equal(saga_changelog_encode_definition(f->src, "order_fulfillment", 1, 0, &def, &len, err, sizeof err), 0);
    /* the same again: nothing changes */
    assert_int_equal(apply_one(f, "def/order_fulfillment/1", def, len, -1, err, sizeof err), 0);
    assert_tables_equal(f);
    /* another content under the same version: refused, whether its hash is
     * the record's (EEXISTS, as saga_store_put_definition) or not */
    char *other = mutate(def, "\"description\":\"", "\"description\":\"changed ");
    assert_int_equal(apply_one(f, "def/order_fulfillment/1", other, strlen(other), -1, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "hash is not the record's"));
    json_t *rec_json = saga_json_parse(other, strlen(other), NULL, 0);
    json_t *d = json_object_get(rec_json, "definition");
    saga_def_errors_t errs = {0};
    saga_definition_t *changed = saga_definition_from_json(json_object_get(d, "json"), &errs);
    assert_non_null(changed);
    json_object_set_new(d, "hash", json_string(changed->hash));
    saga_definition_free(&changed);
    char *consistent = saga_json_dump(rec_json);
    json_decref(rec_json);
    assert_int_equal(apply_one(f, "def/order_fulfillment/1", consistent, strlen(consistent), -1, err, sizeof err),
                     SAGA_EEXISTS);
    assert_non_null(strstr(err, "stored with another hash"));
    saga_free(consistent);
    /* under another key */
    assert_int_equal(apply_one(f, "def/order_fulfillment/2", def, len, -1, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "not the key's"));
    /* a tombstone while sagas run on it: refused */
    assert_int_equal(apply_one(f, "def/order_fulfillment/1", NULL, 0, -1, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "stored sagas run on this definition"));
    /* a saga record naming another hash than the stored definition's */
    char *rec = encode(f, f->src, "done-1");
    char *w2 = strdup(rec);
    char *h = strstr(w2, "\"definition_hash\":\"") + strlen("\"definition_hash\":\"");
    h[0] = h[0] == '0' ? '1' : '0';
    assert_int_equal(apply_one(f, "done-1", w2, strlen(w2), -1, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "stored with another hash"));
    assert_tables_equal(f);
    free(w2);
    free(other);
    saga_free(rec);
    saga_free(def);
}

static void test_offset_marker(void **state) {
    fixture_t *f = *state;
    int64_t off = 0;
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), SAGA_ENOTFOUND);
    char *rec = encode(f, f->src, "run-1"), err[512];
    assert_int_equal(apply_one(f, "run-1", rec, strlen(rec), 41, err, sizeof err), 0);
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 41);
    /* never backwards through apply */
    assert_int_equal(apply_one(f, "run-1", rec, strlen(rec), 7, err, sizeof err), 0);
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 41);
    /* a refused record does not move it */
    assert_int_equal(apply_one(f, "run-1", "{", 1, 99, err, sizeof err), SAGA_EPARSE);
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 41);
    /* set is exact, and survives a reopen */
    assert_int_equal(saga_store_begin(f->dst), 0);
    assert_int_equal(saga_changelog_offset_set(f->dst, 3), 0);
    assert_int_equal(saga_store_commit(f->dst), 0);
    saga_store_close(&f->dst);
    f->dst = saga_store_open(f->dst_path, NULL, err, sizeof err);
    assert_non_null(f->dst);
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 3);
    saga_free(rec);
}

static void test_apply_needs_a_transaction(void **state) {
    fixture_t *f = *state;
    char *rec = encode(f, f->src, "run-1"), err[512];
    assert_int_equal(saga_changelog_apply(f->dst, "run-1", 5, rec, strlen(rec), 1, err, sizeof err), SAGA_ESTATE);
    assert_non_null(strstr(err, "outside a transaction"));
    assert_int_equal(saga_store_saga_exists(f->dst, "run-1"), 0);
    saga_free(rec);
}

static void test_encode_missing_saga_and_size_limit(void **state) {
    fixture_t *f = *state;
    char *out = (char *)1, err[512];
    size_t len = 1;
    assert_int_equal(saga_changelog_encode(f->src, "nobody", 0, &out, &len, err, sizeof err), SAGA_ENOTFOUND);
    assert_null(out);
    char *rec = encode(f, f->src, "cfail-1");
    size_t full = strlen(rec) + strlen("cfail-1");
    /* exactly at the limit passes, one byte less fails, with a clear reason */
    assert_int_equal(saga_changelog_encode(f->src, "cfail-1", full + SAGA_MESSAGE_RESERVE, &out, &len, err, sizeof err), 0);
    saga_free(out);
    assert_int_equal(saga_changelog_encode(f->src, "cfail-1", full + SAGA_MESSAGE_RESERVE - 1, &out, &len, err, sizeof err),
                     SAGA_EINVAL);
    assert_null(out);
    assert_non_null(strstr(err, "cfail-1"));
    assert_non_null(strstr(err, "--max-message-bytes"));
    saga_free(rec);
}

/* Bulk mode: journal off while restoring, WAL and a synced file after;
 * what was restored is there after a reopen. */
static void test_bulk_restore_then_wal(void **state) {
    fixture_t *f = *state;
    char err[512];
    assert_int_equal(saga_changelog_bulk_begin(f->dst, err, sizeof err), 0);
    restore_all(f);
    assert_int_equal(saga_changelog_bulk_end(f->dst, "FULL", err, sizeof err), 0);
    assert_int_equal(saga_changelog_bulk_end(f->dst, "SOMETIMES", err, sizeof err), SAGA_EINVAL);
    saga_store_close(&f->dst);
    char *mode = rows_of(f->dst_path, "PRAGMA journal_mode");
    assert_string_equal(mode, "3:wal\n");
    free(mode);
    f->dst = saga_store_open(f->dst_path, NULL, err, sizeof err);
    assert_non_null(f->dst);
    assert_tables_equal(f);
    assert_loads_equal(f, f->reg);
}

/* A batch in any key order, two records of one saga in it: the newer wins;
 * one corrupt record rolls the whole batch back. */
static void test_apply_batch_sorts_and_is_atomic(void **state) {
    fixture_t *f = *state;
    saga_t s;
    start(f, &s, "later-1");
    char *old = encode(f, f->src, "later-1"), err[512];
    for (int i = 0; i < 4; i++) reply(f, &s, i, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    char *last = encode(f, f->src, "later-1");
    saga_clear(&s);
    char *recs_text[NSAGAS];
    saga_changelog_record_t recs[NSAGAS + 3];
    size_t n = 0;
    recs[n++] = (saga_changelog_record_t){"later-1", last, 7, strlen(last), 20};
    for (int i = NSAGAS - 1; i >= 0; i--) { /* reverse key order */
        recs_text[i] = encode(f, f->src, g_ids[i]);
        recs[n++] = (saga_changelog_record_t){g_ids[i], recs_text[i], strlen(g_ids[i]), strlen(recs_text[i]), 10 + i};
    }
    recs[n++] = (saga_changelog_record_t){"later-1", old, 7, strlen(old), 5};
    char *def, key[64];
    size_t dlen;
    assert_int_equal(saga_changelog_encode_definition(f->src, "order_fulfillment", 1, 0, &def, &dlen, err, sizeof err), 0);
    saga_changelog_definition_key("order_fulfillment", 1, key, sizeof key);
    recs[n++] = (saga_changelog_record_t){key, def, strlen(key), dlen, 1};
    /* with one corrupt record: nothing at all */
    saga_changelog_record_t bad = recs[3];
    recs[3].value_len = 10;
    assert_int_equal(saga_changelog_apply_batch(f->dst, recs, n, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "value is not JSON"));
    char *none = rows_of(f->dst_path, "SELECT (SELECT count(*) FROM sagas) + (SELECT count(*) FROM definitions)");
    assert_string_equal(none, "1:0\n");
    free(none);
    for (size_t i = 0; i < n; i++)
        if (recs[i].value == bad.value) recs[i].value_len = bad.value_len;
    assert_int_equal(saga_changelog_apply_batch(f->dst, recs, n, err, sizeof err), 0);
    assert_tables_equal(f);
    int64_t off;
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 20);
    for (int i = 0; i < NSAGAS; i++) saga_free(recs_text[i]);
    saga_free(def);
    saga_free(old);
    saga_free(last);
}

static void test_pause_records(void **state) {
    fixture_t *f = *state;
    char key[300], err[512];
    assert_int_equal(saga_changelog_pause_key("payment.commands", key, sizeof key), (int)strlen("pause/payment.commands"));
    assert_int_equal(saga_changelog_key_kind(key, strlen(key)), SAGA_CHANGELOG_KEY_PAUSE);
    assert_int_equal(saga_changelog_key_kind("pause/a b", 9), SAGA_CHANGELOG_KEY_INVALID);
    assert_int_equal(saga_changelog_key_kind("pause/", 6), SAGA_CHANGELOG_KEY_INVALID);
    char *v = saga_changelog_encode_pause("payment.commands", 1700000000123, "provider outage");
    assert_non_null(v);
    assert_int_equal(saga_store_begin(f->dst), 0);
    assert_int_equal(saga_changelog_apply(f->dst, key, strlen(key), v, strlen(v), 7, err, sizeof err), 0);
    assert_int_equal(saga_store_commit(f->dst), 0);
    char *rows = rows_of(f->dst_path, "SELECT topic, paused_at, reason FROM paused_topics");
    assert_string_equal(rows, "3:payment.commands|1:1700000000123|3:provider outage\n");
    free(rows);
    /* refused, changing nothing: another topic in the value, a bad time, an unknown member */
    struct {
        const char *from, *to, *says;
    } bad[] = {{"\"topic\":\"payment.commands\"", "\"topic\":\"other\"", "is not the record's key"},
               {"\"paused_at\":1700000000123", "\"paused_at\":-1", "pause.paused_at"},
               {"\"reason\":", "\"x\":1,\"reason\":", "unknown member 'x'"}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char *m = mutate(v, bad[k].from, bad[k].to);
        assert_int_equal(saga_store_begin(f->dst), 0);
        int rc = saga_changelog_apply(f->dst, key, strlen(key), m, strlen(m), 8, err, sizeof err);
        if (rc == 0 || !strstr(err, bad[k].says)) fail_msg("case %zu: rc %d '%s'", k, rc, err);
        assert_int_equal(saga_store_commit(f->dst), 0);
        free(m);
    }
    /* the tombstone resumes it */
    assert_int_equal(saga_store_begin(f->dst), 0);
    assert_int_equal(saga_changelog_apply(f->dst, key, strlen(key), NULL, 0, 9, err, sizeof err), 0);
    assert_int_equal(saga_store_commit(f->dst), 0);
    rows = rows_of(f->dst_path, "SELECT count(*) FROM paused_topics");
    assert_string_equal(rows, "1:0\n");
    free(rows);
    saga_free(v);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pause_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_definition_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_marker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_needs_a_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_missing_saga_and_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_restore_then_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_batch_sorts_and_is_atomic, setup, teardown),
    };
    return cmocka_run_group_tests_name("changelog_apply", tests, NULL, NULL);
}

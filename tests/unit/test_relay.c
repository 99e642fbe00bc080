/* The relay's pieces outside the loop (issue 13, item 1): which produce
 * errors are transient and which refuse the bytes for good, and the outbox
 * rows the relay sends again one by one (saga_store_outbox_get) or parks
 * (saga_store_outbox_park, migration 3). */
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

#include "bus.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "store.h"
#include "txnplan.h"

static void test_produce_errors_are_classified(void **state) {
    (void)state;
    /* the broker refuses these bytes whatever we do */
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR_INVALID_RECORD), SAGA_BUS_PERMANENT);
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED), SAGA_BUS_PERMANENT);
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED), SAGA_BUS_PERMANENT);
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION), SAGA_BUS_PERMANENT);
    /* too large: at once from librdkafka, or maybe the batch from a broker */
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE), SAGA_BUS_TOO_LARGE);
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE), SAGA_BUS_TOO_LARGE);
    /* no such topic: after librdkafka's wait, a few more tries */
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC), SAGA_BUS_UNKNOWN_TOPIC);
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART), SAGA_BUS_UNKNOWN_TOPIC);
    /* everything else may pass later: resend after a backoff */
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT), SAGA_BUS_TRANSIENT);
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR__TRANSPORT), SAGA_BUS_TRANSIENT);
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION), SAGA_BUS_TRANSIENT);
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR__PURGE_QUEUE), SAGA_BUS_TRANSIENT);
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR__PURGE_INFLIGHT), SAGA_BUS_TRANSIENT);
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR_INVALID_MSG), SAGA_BUS_TRANSIENT); /* CRC: retriable */
    assert_int_equal(saga_bus_classify(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS), SAGA_BUS_TRANSIENT);
}

typedef struct {
    int64_t id;
    char topic[64], payload[64];
} seen_t;

static int remember(const saga_outbox_row_t *row, void *user) {
    seen_t *s = user;
    s->id = row->id;
    snprintf(s->topic, sizeof s->topic, "%s", row->topic);
    snprintf(s->payload, sizeof s->payload, "%.*s", (int)row->payload_len, (const char *)row->payload);
    return 0;
}

static void test_outbox_rows_resent_one_by_one_and_parked(void **state) {
    (void)state;
    char dir[] = "/tmp/saga-relay-XXXXXX", path[128], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/sagad.db", dir);
    saga_store_t *st = saga_store_open(path, NULL, err, sizeof err);
    assert_non_null(st);
    assert_int_equal(saga_store_begin(st), 0);
    assert_int_equal(saga_store_outbox_add(st, "order.commands", "s-1", "{\"saga_id\":\"s-1\"}", "{\"a\":1}", 7, 10), 0);
    assert_int_equal(saga_store_outbox_add(st, "saga.events", "s-1", "{}", "{\"b\":2}", 7, 11), 0);
    assert_int_equal(saga_store_commit(st), 0);

    seen_t seen = {0};
    assert_int_equal(saga_store_outbox_get(st, 2, remember, &seen), 1);
    assert_int_equal(seen.id, 2);
    assert_string_equal(seen.topic, "saga.events");
    assert_string_equal(seen.payload, "{\"b\":2}");
    assert_int_equal(saga_store_outbox_get(st, 99, remember, &seen), 0); /* gone */

    assert_int_equal(saga_store_begin(st), 0);
    assert_int_equal(saga_store_outbox_park(st, 1, 1234, "order.commands refused it: too large", "step_failed"), 0);
    assert_int_equal(saga_store_commit(st), 0);
    assert_int_equal(saga_store_outbox_get(st, 1, remember, &seen), 0);
    assert_int_equal(saga_store_outbox_backlog(st), 1);
    saga_store_close(&st);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT id, topic, key, payload, created_at, parked_at, error, outcome"
                                            " FROM outbox_parked", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(q, 0), 1);
    assert_string_equal((const char *)sqlite3_column_text(q, 1), "order.commands");
    assert_string_equal((const char *)sqlite3_column_text(q, 2), "s-1");
    assert_string_equal((const char *)sqlite3_column_text(q, 3), "{\"a\":1}");
    assert_int_equal(sqlite3_column_int64(q, 4), 10);
    assert_int_equal(sqlite3_column_int64(q, 5), 1234);
    assert_string_equal((const char *)sqlite3_column_text(q, 6), "order.commands refused it: too large");
    assert_string_equal((const char *)sqlite3_column_text(q, 7), "step_failed");
    assert_int_equal(sqlite3_step(q), SQLITE_DONE);
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_true(sqlite3_column_int(q, 0) >= 3);
    sqlite3_finalize(q);
    sqlite3_close(db);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Which iterations' offsets a relay transaction may commit: only those
 * whose outbox rows are all in it or in earlier committed ones, in order. */
static void test_txnplan_covers_iterations_in_order(void **state) {
    (void)state;
    sagad_txnplan_t plan;
    assert_int_equal(sagad_txnplan_init(&plan, 2), 0);
    int a = 1, b = 2, c = 3;
    void *replaced = (void *)&a;
    sagad_txnplan_push(&plan, (int64_t[]){5, 0}, &a, &replaced); /* iteration 0: shard 0 up to row 5 */
    assert_null(replaced);
    sagad_txnplan_push(&plan, (int64_t[]){5, 9}, &b, &replaced);  /* 1: shard 1 up to row 9 */
    sagad_txnplan_push(&plan, (int64_t[]){12, 9}, &c, &replaced); /* 2: shard 0 up to row 12 */
    /* nothing delivered: nothing covered */
    assert_int_equal(sagad_txnplan_covered(&plan, (int64_t[]){0, 0}), -1);
    /* shard 0 through 5: iteration 0 only */
    assert_int_equal(sagad_txnplan_covered(&plan, (int64_t[]){5, 0}), 0);
    /* shard 1 delivered, shard 0 not: iteration 0 hides the others */
    assert_int_equal(sagad_txnplan_covered(&plan, (int64_t[]){4, 100}), -1);
    /* shard 0 through 11 (row 12 waits for a resend): iterations 0 and 1 */
    assert_int_equal(sagad_txnplan_covered(&plan, (int64_t[]){11, 9}), 1);
    assert_int_equal(sagad_txnplan_covered(&plan, (int64_t[]){12, 9}), 2);
    /* a covered iteration is forgotten; the next pass starts from the rest */
    sagad_txnplan_drop(&plan, 2, NULL);
    assert_int_equal(plan.count, 1);
    assert_ptr_equal(plan.payload[0], &c);
    assert_int_equal(sagad_txnplan_covered(&plan, (int64_t[]){11, 9}), -1);
    assert_int_equal(sagad_txnplan_covered(&plan, (int64_t[]){12, 9}), 0);
    sagad_txnplan_free(&plan, NULL);
}

/* A full plan merges the newest iterations: their offsets wait for the
 * rows of both (never committed too early). */
static void test_txnplan_full_merges_into_newest(void **state) {
    (void)state;
    sagad_txnplan_t plan;
    assert_int_equal(sagad_txnplan_init(&plan, 1), 0);
    static int slots[SAGAD_TXNPLAN_MAX + 1];
    void *replaced = NULL;
    for (int i = 0; i < SAGAD_TXNPLAN_MAX; i++) {
        sagad_txnplan_push(&plan, (int64_t[]){i + 1}, &slots[i], &replaced);
        assert_null(replaced);
    }
    sagad_txnplan_push(&plan, (int64_t[]){1000}, &slots[SAGAD_TXNPLAN_MAX], &replaced);
    assert_ptr_equal(replaced, &slots[SAGAD_TXNPLAN_MAX - 1]);
    assert_int_equal(plan.count, SAGAD_TXNPLAN_MAX);
    /* rows up to 999 delivered: the merged newest is not covered, the one before is */
    assert_int_equal(sagad_txnplan_covered(&plan, (int64_t[]){999}), SAGAD_TXNPLAN_MAX - 2);
    assert_int_equal(sagad_txnplan_covered(&plan, (int64_t[]){1000}), SAGAD_TXNPLAN_MAX - 1);
    assert_ptr_equal(plan.payload[SAGAD_TXNPLAN_MAX - 1], &slots[SAGAD_TXNPLAN_MAX]);
    sagad_txnplan_free(&plan, NULL);
}

/* The highest outbox id a shard holds, the iteration's mark in the plan. */
static void test_outbox_max_id(void **state) {
    (void)state;
    char dir[] = "/tmp/test_relay_maxXXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/s.db", dir);
    char err[256];
    saga_store_t *st = saga_store_open(path, NULL, err, sizeof err);
    assert_non_null(st);
    assert_int_equal(saga_store_outbox_max_id(st), 0);
    assert_int_equal(saga_store_begin(st), 0);
    assert_int_equal(saga_store_outbox_add(st, "t", "k", "{}", "x", 1, 1), 0);
    assert_int_equal(saga_store_outbox_add(st, "t", "k", "{}", "y", 1, 1), 0);
    assert_int_equal(saga_store_commit(st), 0);
    assert_int_equal(saga_store_outbox_max_id(st), 2);
    saga_store_close(&st);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    saga_alloc_install_jansson();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_produce_errors_are_classified),
        cmocka_unit_test(test_outbox_rows_resent_one_by_one_and_parked),
        cmocka_unit_test(test_txnplan_covers_iterations_in_order),
        cmocka_unit_test(test_txnplan_full_merges_into_newest),
        cmocka_unit_test(test_outbox_max_id),
    };
    return cmocka_run_group_tests_name("relay", tests, NULL, NULL);
}

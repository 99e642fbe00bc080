/* sagactl audit (tools/sagactl/audit.c) against small crafted databases:
 * a sagad database with the real schema (orchestrator/store/schema.h) and
 * the four workers' ledgers written by the real handlers (participant
 * library; test_audit_fixture.c), then one kind of damage per test. Which
 * shard files are read (a missing shard, several data directories) is in
 * test_audit_sources.c. */
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
#include <sys/wait.h>

#include "audit.h"
#include "payment.h"
#include "saga_alloc.h"
#include "saga_json.h"
#include "saga_log.h"
#include "saga_partition.h"
#include "test_audit_fixture.h"

/* Changes every shard of sagad behind the audit's back. */
static void tamper_sagad(fx_t *f, const char *sql) {
    for (int p = 0; p < f->shards; p++) must_exec(f->sagad[p], sql);
}

/* Runs the audit; *text gets the report (caller frees with free()). */
static int audit(fx_t *f, int json, char **text) {
    sagactl_audit_opts_t o = {.saga_db = f->saga_db, .order_db = f->order_db, .inventory_db = f->inventory_db,
                              .payment_db = f->payment_db, .notification_db = f->notification_db, .json = json};
    size_t len = 0;
    FILE *out = open_memstream(text, &len);
    assert_non_null(out);
    int rc = sagactl_audit_run(&o, out, stderr);
    fclose(out);
    if (getenv("SAGA_TEST_VERBOSE")) fputs(*text, stderr);
    return rc;
}

/* The audit fails, and its report has a line with every one of the words. */
static void expect_fail(fx_t *f, const char *check_line, const char *saga_line) {
    char *text = NULL;
    int rc = audit(f, 0, &text);
    if (rc != SAGACTL_AUDIT_FAILED || !strstr(text, check_line) || !strstr(text, saga_line))
        fprintf(stderr, "want FAILED with '%s' and '%s', got %d:\n%s", check_line, saga_line, rc, text);
    assert_int_equal(rc, SAGACTL_AUDIT_FAILED);
    assert_non_null(strstr(text, check_line));
    assert_non_null(strstr(text, saga_line));
    assert_non_null(strstr(text, "audit: FAILED"));
    free(text);
}

static void test_audit_good(void **state) {
    fx_t *f = *state;
    char *text = NULL;
    int rc = audit(f, 0, &text);
    if (rc) fputs(text, stderr);
    assert_int_equal(rc, SAGACTL_AUDIT_OK);
    assert_non_null(strstr(text, "sagas: 6 (completed 1, compensated 3, compensation_failed 1, in flight 1)"));
    assert_non_null(strstr(text, "in flight, not checked (1): s-run"));
    assert_non_null(strstr(text, "waiting for an operator (compensation_failed) (1): s-stuck"));
    assert_non_null(strstr(text, "ok    compensated sagas: money refunded (or never charged) (3 checked)"));
    assert_non_null(strstr(text, "audit: passed: 15 of 15 checks passed, 0 discrepancies"));
    assert_null(strstr(text, "FAIL"));
    free(text);
}

static void test_audit_completed_order_cancelled(void **state) {
    fx_t *f = *state;
    tamper(f->order_db, "UPDATE orders SET status = 'cancelled' WHERE saga_id = 's-ok'");
    expect_fail(f, "FAIL  completed sagas: order created, not cancelled (1 checked, 1 problem)",
                "saga s-ok step create_order: completed, but order o-s-ok is cancelled");
}

static void test_audit_completed_not_charged(void **state) {
    fx_t *f = *state;
    tamper(f->payment_db, "UPDATE accounts SET balance = balance + 700 WHERE customer = 'c-1';"
                          "DELETE FROM charges WHERE saga_id = 's-ok'");
    expect_fail(f, "FAIL  completed sagas: amount charged, once",
                "saga s-ok step charge_payment: completed, but nothing is charged by s-ok/charge_payment/action");
}

static void test_audit_double_charge(void **state) {
    fx_t *f = *state;
    tamper(f->payment_db, "UPDATE accounts SET balance = balance - 700 WHERE customer = 'c-1';"
                          "INSERT INTO charges VALUES ('pay-s-ok/again', 's-ok/again/action', 's-ok', 'c-1', 700,"
                          " 'charged', 'now', NULL)");
    expect_fail(f, "FAIL  payment ledger: every command and charge belongs to a saga step sagad knows",
                "saga s-ok: charge pay-s-ok/again (700 cents, charged) was made by s-ok/again/action, which is no "
                "payment.charge step of that saga");
}

static void test_audit_amount_differs(void **state) {
    fx_t *f = *state;
    tamper_sagad(f, "UPDATE steps SET output = json_set(output, '$.amount', 500)"
                       " WHERE saga_id = 's-ok' AND name = 'charge_payment'");
    expect_fail(f, "FAIL  completed sagas: amount charged, once",
                "saga s-ok step charge_payment: completed, but charge pay-s-ok/charge_payment is 700 cents while "
                "the saga recorded 500");
}

static void test_audit_stock_taken_twice(void **state) {
    fx_t *f = *state;
    tamper(f->inventory_db, "UPDATE stock SET available = available - 2 WHERE sku = 'sku-1';"
                            "INSERT INTO reservations SELECT 'rsv-again', saga_id, idempotency_key, sku, qty, status,"
                            " created_at, released_at FROM reservations WHERE saga_id = 's-ok'");
    expect_fail(f, "FAIL  completed sagas: stock taken, once",
                "saga s-ok step reserve_inventory: completed, but s-ok/reserve_inventory/action reserved stock 2 times");
}

static void test_audit_completed_not_notified(void **state) {
    fx_t *f = *state;
    tamper(f->notification_db, "DELETE FROM notifications");
    expect_fail(f, "FAIL  completed sagas: notification recorded",
                "saga s-ok step notify: completed, but the notification ledger has nothing sent by s-ok/notify/action");
}

static void test_audit_compensated_still_charged(void **state) {
    fx_t *f = *state;
    tamper(f->payment_db, "UPDATE accounts SET balance = balance - 700 WHERE customer = 'c-2';"
                          "UPDATE charges SET status = 'charged', refunded_at = NULL WHERE saga_id = 's-refund'");
    expect_fail(f, "FAIL  compensated sagas: money refunded (or never charged) (3 checked, 1 problem)",
                "saga s-refund step charge_payment: compensated, but charge pay-s-refund/charge_payment of 700 cents "
                "is still charged");
}

static void test_audit_compensated_still_reserved(void **state) {
    fx_t *f = *state;
    tamper(f->inventory_db, "UPDATE stock SET available = available - 2 WHERE sku = 'sku-1';"
                            "UPDATE reservations SET status = 'reserved' WHERE saga_id = 's-broke'");
    expect_fail(f, "FAIL  compensated sagas: stock released (or never reserved)",
                "saga s-broke step reserve_inventory: compensated, but 2 unit(s) in 1 line(s) reserved by "
                "s-broke/reserve_inventory/action are still reserved");
}

static void test_audit_compensated_order_kept(void **state) {
    fx_t *f = *state;
    tamper(f->order_db, "UPDATE orders SET status = 'created' WHERE saga_id = 's-oos'");
    expect_fail(f, "FAIL  compensated sagas: order cancelled (or never created)",
                "saga s-oos step create_order: compensated, but order o-s-oos is still created");
}

static void test_audit_stock_not_conserved(void **state) {
    fx_t *f = *state;
    tamper(f->inventory_db, "UPDATE stock SET available = available - 1 WHERE sku = 'sku-2'");
    expect_fail(f, "FAIL  stock conserved", "sku sku-2: initial 50 != available 49 + reserved 0");
}

static void test_audit_money_not_conserved(void **state) {
    fx_t *f = *state;
    tamper(f->payment_db, "UPDATE accounts SET balance = balance + 1 WHERE customer = 'c-1'");
    expect_fail(f, "FAIL  money conserved", "customer c-1: initial 10000 != balance 9301 + charged 700");
}

/* An action that ran for a saga sagad never heard of (the real handler). */
static void test_audit_action_without_saga(void **state) {
    fx_t *f = *state;
    char err[256];
    participant_t *p = participant_open(payment_worker_spec(), f->payment_db, err, sizeof err);
    assert_non_null(p);
    json_decref(send_cmd(p, "s-ghost", "charge_payment", "action", "payment.charge", charge("c-1")));
    participant_close(&p);
    expect_fail(f, "FAIL  payment ledger: every command and charge belongs to a saga step sagad knows (9 checked, 2 problems)",
                "saga s-ghost: payment ledger: 1 command(s) processed for a saga sagad does not know");
    char *text = NULL;
    assert_int_equal(audit(f, 0, &text), SAGACTL_AUDIT_FAILED);
    assert_non_null(strstr(text, "saga s-ghost: charge pay-s-ghost/charge_payment (700 cents, charged) was made by "
                                 "s-ghost/charge_payment/action for a saga sagad does not know"));
    free(text);
}

static void test_audit_unknown_definition(void **state) {
    fx_t *f = *state;
    tamper_sagad(f, "UPDATE sagas SET version = 9 WHERE id = 's-run'");
    expect_fail(f, "FAIL  every saga's definition is in sagad's database",
                "saga s-run: definition order_fulfillment version 9 is not in sagad's definitions table");
}

static void test_audit_json(void **state) {
    fx_t *f = *state;
    char *text = NULL;
    assert_int_equal(audit(f, 1, &text), SAGACTL_AUDIT_OK);
    json_t *doc = saga_json_parse(text, strlen(text), NULL, 0);
    free(text);
    assert_non_null(doc);
    assert_true(json_is_true(json_object_get(doc, "ok")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "sagas"), "total")), 6);
    assert_int_equal(json_integer_value(json_object_get(doc, "checks_passed")), 15);
    assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "needs_operator"), 0)), "s-stuck");
    json_decref(doc);

    tamper(f->order_db, "UPDATE orders SET status = 'created' WHERE saga_id = 's-broke'");
    assert_int_equal(audit(f, 1, &text), SAGACTL_AUDIT_FAILED);
    doc = saga_json_parse(text, strlen(text), NULL, 0);
    free(text);
    assert_non_null(doc);
    assert_true(json_is_false(json_object_get(doc, "ok")));
    assert_int_equal(json_integer_value(json_object_get(doc, "discrepancies_count")), 1);
    json_t *d = json_array_get(json_object_get(doc, "discrepancies"), 0);
    assert_string_equal(json_string_value(json_object_get(d, "check")), "compensated_order_cancelled");
    assert_string_equal(json_string_value(json_object_get(d, "saga_id")), "s-broke");
    assert_string_equal(json_string_value(json_object_get(d, "step")), "create_order");
    json_decref(doc);
}

static void test_audit_without_notification_ledger(void **state) {
    fx_t *f = *state;
    f->notification_db[0] = '\0';
    sagactl_audit_opts_t o = {.saga_db = f->saga_db, .order_db = f->order_db, .inventory_db = f->inventory_db,
                              .payment_db = f->payment_db};
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_int_equal(sagactl_audit_run(&o, out, stderr), SAGACTL_AUDIT_OK);
    fclose(out);
    assert_non_null(strstr(text, "skip  completed sagas: notification recorded"));
    assert_non_null(strstr(text, "audit: passed: 13 of 13 checks passed"));
    free(text);
}

static void test_audit_bad_inputs(void **state) {
    fx_t *f = *state;
    FILE *devnull = fopen("/dev/null", "w");
    sagactl_audit_opts_t o = {.saga_db = f->saga_db, .order_db = f->order_db, .inventory_db = f->inventory_db};
    assert_int_equal(sagactl_audit_run(&o, devnull, devnull), SAGACTL_AUDIT_USAGE); /* no payment ledger */
    o.payment_db = "/nonexistent/payment.db";
    assert_int_equal(sagactl_audit_run(&o, devnull, devnull), SAGACTL_AUDIT_UNREADABLE);
    o.payment_db = f->order_db; /* the wrong ledger */
    assert_int_equal(sagactl_audit_run(&o, devnull, devnull), SAGACTL_AUDIT_UNREADABLE);
    o.payment_db = f->payment_db;
    o.saga_db = f->order_db; /* not sagad's database */
    assert_int_equal(sagactl_audit_run(&o, devnull, devnull), SAGACTL_AUDIT_UNREADABLE);
    fclose(devnull);
}

/* The sagactl binary: `sagactl audit` with the stack.env variables, and
 * the global --json before the command. */
static void test_audit_cli(void **state) {
    fx_t *f = *state;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "SAGA_DB='%s' ORDER_DB='%s' INVENTORY_DB='%s' PAYMENT_DB='%s' NOTIFICATION_DB='%s' '%s' audit >/dev/null",
             f->saga_db, f->order_db, f->inventory_db, f->payment_db, f->notification_db, SAGACTL_PATH);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    snprintf(cmd, sizeof cmd, "'%s' audit --saga-db '%s' --order-db='%s' --inventory-db '%s' --payment-db '%s' --bogus 2>/dev/null",
             SAGACTL_PATH, f->saga_db, f->order_db, f->inventory_db, f->payment_db);
    st = system(cmd);
    assert_int_equal(WEXITSTATUS(st), 2);
    tamper(f->payment_db, "UPDATE accounts SET balance = 0 WHERE customer = 'c-2'");
    snprintf(cmd, sizeof cmd,
             "'%s' --json audit --saga-db '%s' --order-db='%s' --inventory-db '%s' --payment-db '%s' "
             "| grep -q '\"customer c-2: initial 5000 != balance 0 + charged 0\"'; echo $?",
             SAGACTL_PATH, f->saga_db, f->order_db, f->inventory_db, f->payment_db);
    FILE *p = popen(cmd, "r");
    char line[16] = "";
    assert_non_null(fgets(line, sizeof line, p));
    pclose(p);
    assert_string_equal(line, "0\n");
}

/* The sagas are spread over the shards, and every shard is read: a saga
 * missing from a shard other than 0 leaves its ledger rows without a saga. */
static void test_audit_shards_spread(void **state) {
    fx_t *f = *state;
    static const char *const ids[] = {"s-ok", "s-oos", "s-broke", "s-refund", "s-run", "s-stuck"};
    int used[AUDIT_SHARDS] = {0}, nused = 0;
    const char *far = NULL; /* a finished saga outside shard 0 */
    for (size_t i = 0; i < 6; i++) {
        int p = saga_partition_of(ids[i], AUDIT_SHARDS);
        if (!used[p]++) nused++;
        if (p > 0 && i < 4 && !far) far = ids[i];
    }
    assert_true(nused >= 2);
    assert_non_null(far);
    char *text = NULL;
    assert_int_equal(audit(f, 0, &text), SAGACTL_AUDIT_OK);
    assert_non_null(strstr(text, "(3 shards)"));
    assert_non_null(strstr(text, "sagas: 6 "));
    free(text);
    char sql[256];
    snprintf(sql, sizeof sql, "DELETE FROM steps WHERE saga_id = '%s'; DELETE FROM sagas WHERE id = '%s'", far, far);
    must_exec(shard_of(f, far), sql);
    char line[128];
    snprintf(line, sizeof line, "saga %s", far);
    expect_fail(f, "FAIL  order ledger: every command and order belongs to a saga step sagad knows", line);
}

/* A saga in a shard its id does not hash to (here: in two shards). */
static void test_audit_misplaced_saga(void **state) {
    fx_t *f = *state;
    int home = saga_partition_of("s-ok", AUDIT_SHARDS), other = (home + 1) % AUDIT_SHARDS;
    must_exec(f->sagad[other], "INSERT INTO sagas (id, definition, version, status, input, created_at, updated_at)"
                               " VALUES ('s-ok', 'order_fulfillment', 1, 'completed', '{}', 1, 2)");
    char msg[128];
    snprintf(msg, sizeof msg, "saga s-ok: in shard %d, but its id belongs in shard %d", other, home);
    expect_fail(f, "FAIL  every saga is in the shard its id hashes to, once", msg);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    saga_alloc_install_jansson();
    saga_log_set_level(getenv("SAGA_TEST_VERBOSE") ? SAGA_LOG_DEBUG : SAGA_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_audit_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_completed_order_cancelled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_completed_not_charged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_double_charge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_amount_differs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_stock_taken_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_completed_not_notified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_compensated_still_charged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_compensated_still_reserved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_compensated_order_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_stock_not_conserved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_money_not_conserved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_action_without_saga, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_unknown_definition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_without_notification_ledger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_bad_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_cli, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_shards_spread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_misplaced_saga, setup, teardown),
        /* one database file, as before shards */
        cmocka_unit_test_prestate_setup_teardown(test_audit_good, setup_file, teardown, NULL),
        cmocka_unit_test_prestate_setup_teardown(test_audit_amount_differs, setup_file, teardown, NULL),
        cmocka_unit_test_prestate_setup_teardown(test_audit_cli, setup_file, teardown, NULL),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

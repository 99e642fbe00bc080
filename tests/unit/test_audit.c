/* sagactl audit (tools/sagactl/audit.c) against small crafted databases:
 * a sagad database with the real schema (orchestrator/store/schema.h) and
 * the four workers' ledgers written by the real handlers (participant
 * library), then one kind of damage per test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "inventory.h"
#include "notification.h"
#include "order.h"
#include "payment.h"
#include "saga_alloc.h"
#include "saga_json.h"
#include "saga_log.h"
#include "saga_partition.h"
#include "saga_shard_files.h"
#include "saga_util.h"
#include "schema.h"

#define AUDIT_SHARDS 3 /* sagad's data directory in most tests */

typedef struct {
    char dir[64];
    /* saga_db: sagad's data directory (shards > 1) or its one file */
    char saga_db[128], order_db[128], inventory_db[128], payment_db[128], notification_db[128];
    participant_t *order, *inventory, *payment, *notification;
    int shards;
    char shard_path[AUDIT_SHARDS][160];
    sqlite3 *sagad[AUDIT_SHARDS]; /* one writer per shard */
} fx_t;

static void must_exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "SQL failed: %s\n  %s\n", msg ? msg : "?", sql);
        sqlite3_free(msg);
        fail();
    }
}

/* Runs one command through a worker's real handler; returns the reply's
 * output (new reference, NULL when the reply is not a success). */
static json_t *send_cmd(participant_t *p, const char *saga, const char *step, const char *kind, const char *action,
                        json_t *payload) {
    char mid[256], key[256];
    snprintf(key, sizeof key, "%s/%s/%s", saga, step, kind);
    snprintf(mid, sizeof mid, "%s/1", key);
    json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:o,s:s}", "type", "saga.command", "message_id", mid,
                          "saga_id", saga, "definition", "order_fulfillment", "step", step, "kind", kind, "action",
                          action, "attempt", 1, "idempotency_key", key, "payload",
                          payload ? payload : json_object(), "reply_to", "saga.replies");
    char *text = saga_json_dump(c);
    json_decref(c);
    participant_reply_t r;
    assert_int_equal(participant_process(p, text, strlen(text), NULL, &r), 0);
    saga_free(text);
    json_t *reply = saga_json_parse(r.body, strlen(r.body), NULL, 0);
    participant_reply_clear(&r);
    assert_non_null(reply);
    json_t *out = NULL;
    if (strcmp(saga_json_str(reply, "status"), "success") == 0) {
        out = json_object_get(reply, "output");
        json_incref(out);
    }
    json_decref(reply);
    return out;
}

static const char *const STEPS[] = {"create_order", "reserve_inventory", "charge_payment", "notify"};

/* sagad's rows for one saga: its status and each step's status/output. */
/* The writer of the shard saga id belongs to. */
static sqlite3 *shard_of(fx_t *f, const char *id) { return f->sagad[saga_partition_of(id, f->shards)]; }

static void saga_row(fx_t *f, const char *id, const char *status, const char *const step_status[4],
                     json_t *outputs[4]) {
    sqlite3_stmt *st = NULL;
    sqlite3 *db = shard_of(f, id);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO sagas (id, definition, version, status, input, created_at,"
                                        " updated_at) VALUES (?1, 'order_fulfillment', 1, ?2, '{}', 1, 2)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO steps (saga_id, idx, name, status, output)"
                                        " VALUES (?1, ?2, ?3, ?4, ?5)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (int i = 0; i < 4; i++) {
        char *out = outputs[i] ? saga_json_dump(outputs[i]) : NULL;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, i);
        sqlite3_bind_text(st, 3, STEPS[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, step_status[i], -1, SQLITE_STATIC);
        if (out) sqlite3_bind_text(st, 5, out, -1, SQLITE_TRANSIENT);
        else sqlite3_bind_null(st, 5);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
        saga_free(out);
        json_decref(outputs[i]);
        outputs[i] = NULL;
    }
    sqlite3_finalize(st);
}

static json_t *order_payload(const char *saga) {
    char oid[128];
    snprintf(oid, sizeof oid, "o-%s", saga);
    return json_pack("{s:s,s:[{s:s,s:i}]}", "order_id", oid, "items", "sku", "sku-1", "qty", 1);
}
static json_t *items(const char *sku) { return json_pack("{s:[{s:s,s:i}]}", "items", "sku", sku, "qty", 2); }
static json_t *charge(const char *customer) { return json_pack("{s:s,s:i}", "customer", customer, "amount", 700); }

/* The sagas of the good fixture:
 *   s-ok     completed          every action ran once
 *   s-oos    compensated        out of stock: order cancelled
 *   s-broke  compensated        payment declined: stock released, order cancelled
 *   s-refund compensated        charged, then refunded, released, cancelled
 *   s-run    running            order created, nothing else yet
 *   s-stuck  compensation_failed  declined; stock released, order cancel keeps failing */
static void build(fx_t *f) {
    json_t *o[4] = {NULL};
    o[0] = send_cmd(f->order, "s-ok", "create_order", "action", "order.create", order_payload("s-ok"));
    o[1] = send_cmd(f->inventory, "s-ok", "reserve_inventory", "action", "inventory.reserve", items("sku-1"));
    o[2] = send_cmd(f->payment, "s-ok", "charge_payment", "action", "payment.charge", charge("c-1"));
    o[3] = send_cmd(f->notification, "s-ok", "notify", "action", "notification.send",
                    json_pack("{s:s,s:s}", "order_id", "o-s-ok", "payment", "pay-s-ok/charge_payment"));
    for (int i = 0; i < 4; i++) assert_non_null(o[i]);
    saga_row(f, "s-ok", "completed", (const char *const[]){"succeeded", "succeeded", "succeeded", "succeeded"}, o);

    o[0] = send_cmd(f->order, "s-oos", "create_order", "action", "order.create", order_payload("s-oos"));
    assert_null(send_cmd(f->inventory, "s-oos", "reserve_inventory", "action", "inventory.reserve", items("sku-empty")));
    json_decref(send_cmd(f->inventory, "s-oos", "reserve_inventory", "compensation", "inventory.release", NULL));
    json_decref(send_cmd(f->order, "s-oos", "create_order", "compensation", "order.cancel", NULL));
    saga_row(f, "s-oos", "compensated", (const char *const[]){"compensated", "failed", "cancelled", "cancelled"}, o);

    o[0] = send_cmd(f->order, "s-broke", "create_order", "action", "order.create", order_payload("s-broke"));
    o[1] = send_cmd(f->inventory, "s-broke", "reserve_inventory", "action", "inventory.reserve", items("sku-1"));
    assert_null(send_cmd(f->payment, "s-broke", "charge_payment", "action", "payment.charge", charge("c-broke")));
    json_decref(send_cmd(f->inventory, "s-broke", "reserve_inventory", "compensation", "inventory.release", NULL));
    json_decref(send_cmd(f->order, "s-broke", "create_order", "compensation", "order.cancel", NULL));
    saga_row(f, "s-broke", "compensated", (const char *const[]){"compensated", "compensated", "failed", "cancelled"},
             o);

    o[0] = send_cmd(f->order, "s-refund", "create_order", "action", "order.create", order_payload("s-refund"));
    o[1] = send_cmd(f->inventory, "s-refund", "reserve_inventory", "action", "inventory.reserve", items("sku-2"));
    o[2] = send_cmd(f->payment, "s-refund", "charge_payment", "action", "payment.charge", charge("c-2"));
    json_decref(send_cmd(f->payment, "s-refund", "charge_payment", "compensation", "payment.refund", NULL));
    json_decref(send_cmd(f->inventory, "s-refund", "reserve_inventory", "compensation", "inventory.release", NULL));
    json_decref(send_cmd(f->order, "s-refund", "create_order", "compensation", "order.cancel", NULL));
    saga_row(f, "s-refund", "compensated",
             (const char *const[]){"compensated", "compensated", "compensated", "failed"}, o);

    o[0] = send_cmd(f->order, "s-run", "create_order", "action", "order.create", order_payload("s-run"));
    saga_row(f, "s-run", "running", (const char *const[]){"succeeded", "running", "pending", "pending"}, o);

    o[0] = send_cmd(f->order, "s-stuck", "create_order", "action", "order.create", order_payload("s-stuck"));
    o[1] = send_cmd(f->inventory, "s-stuck", "reserve_inventory", "action", "inventory.reserve", items("sku-1"));
    assert_null(send_cmd(f->payment, "s-stuck", "charge_payment", "action", "payment.charge", charge("c-broke")));
    json_decref(send_cmd(f->inventory, "s-stuck", "reserve_inventory", "compensation", "inventory.release", NULL));
    saga_row(f, "s-stuck", "compensation_failed",
             (const char *const[]){"compensation_failed", "compensated", "failed", "cancelled"}, o);
}

static participant_t *open_ledger(fx_t *f, const participant_spec_t *spec, char *path, const json_t *seed) {
    char err[256];
    snprintf(path, 128, "%s/%s.db", f->dir, spec->name);
    participant_t *p = participant_open(spec, path, err, sizeof err);
    if (!p) fprintf(stderr, "open %s: %s\n", path, err);
    assert_non_null(p);
    assert_int_equal(participant_seed_json(p, seed, err, sizeof err), 0);
    return p;
}

/* sagad's side: `shards` files with the real schema (a data directory
 * DIR/shard-NNN.db, or one file when shards == 1), the order_fulfillment
 * definition stored in each. */
static int make_sagad(fx_t *f, int shards) {
    f->shards = shards;
    if (shards == 1) {
        snprintf(f->saga_db, sizeof f->saga_db, "%s/sagad.db", f->dir);
        snprintf(f->shard_path[0], sizeof f->shard_path[0], "%s", f->saga_db);
    } else {
        snprintf(f->saga_db, sizeof f->saga_db, "%s/sagad", f->dir);
        if (mkdir(f->saga_db, 0700) != 0) return -1;
        for (int p = 0; p < shards; p++)
            if (saga_shard_file(f->saga_db, p, f->shard_path[p], sizeof f->shard_path[p]) < 0) return -1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/sagas/order_fulfillment.json", getenv("SAGA_SOURCE_DIR") ? getenv("SAGA_SOURCE_DIR") : ".");
    size_t len = 0;
    char *def = saga_read_file(path, &len);
    if (!def) {
        fprintf(stderr, "cannot read %s\n", path);
        return -1;
    }
    int rc = SQLITE_DONE;
    for (int p = 0; p < shards && rc == SQLITE_DONE; p++) {
        if (sqlite3_open(f->shard_path[p], &f->sagad[p]) != SQLITE_OK) return -1;
        for (size_t i = 0; i < sizeof saga_store_migrations / sizeof saga_store_migrations[0]; i++)
            must_exec(f->sagad[p], saga_store_migrations[i]);
        sqlite3_stmt *st = NULL;
        sqlite3_prepare_v2(f->sagad[p],
                           "INSERT INTO definitions (name, version, hash, json, loaded_at)"
                           " VALUES ('order_fulfillment', 1, 'h', ?1, 1)",
                           -1, &st, NULL);
        sqlite3_bind_text(st, 1, def, (int)len, SQLITE_TRANSIENT);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
    }
    saga_free(def);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int setup_with(void **state, int shards) {
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/saga-audit-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    json_t *seed = json_pack("{s:{s:i,s:i,s:i},s:{s:i,s:i,s:i}}", "stock", "sku-1", 100, "sku-2", 50, "sku-empty", 0,
                             "accounts", "c-1", 10000, "c-2", 5000, "c-broke", 0);
    f->order = open_ledger(f, order_worker_spec(), f->order_db, seed);
    f->inventory = open_ledger(f, inventory_worker_spec(), f->inventory_db, seed);
    f->payment = open_ledger(f, payment_worker_spec(), f->payment_db, seed);
    f->notification = open_ledger(f, notification_worker_spec(), f->notification_db, seed);
    json_decref(seed);
    if (make_sagad(f, shards) != 0) return -1;
    build(f);
    participant_close(&f->order);
    participant_close(&f->inventory);
    participant_close(&f->payment);
    participant_close(&f->notification);
    *state = f;
    return 0;
}

/* Most tests: a data directory of AUDIT_SHARDS shards. */
static int setup(void **state) { return setup_with(state, AUDIT_SHARDS); }
/* Today's layout: one database file. */
static int setup_file(void **state) { return setup_with(state, 1); }

static int teardown(void **state) {
    fx_t *f = *state;
    for (int p = 0; p < AUDIT_SHARDS; p++)
        if (f->sagad[p]) sqlite3_close(f->sagad[p]);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

/* Changes one database behind the audit's back. */
static void tamper(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    must_exec(db, sql);
    sqlite3_close(db);
}

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

/* A shard file missing from the data directory: the audit refuses (exit 3)
 * naming it, rather than auditing part of the sagas. */
static void test_audit_missing_shard(void **state) {
    fx_t *f = *state;
    sqlite3_close(f->sagad[1]);
    f->sagad[1] = NULL;
    assert_int_equal(unlink(f->shard_path[1]), 0);
    char *text = NULL, *errtext = NULL;
    size_t len = 0, elen = 0;
    FILE *out = open_memstream(&text, &len), *err = open_memstream(&errtext, &elen);
    sagactl_audit_opts_t o = {.saga_db = f->saga_db, .order_db = f->order_db, .inventory_db = f->inventory_db,
                              .payment_db = f->payment_db};
    assert_int_equal(sagactl_audit_run(&o, out, err), SAGACTL_AUDIT_UNREADABLE);
    fclose(out);
    fclose(err);
    assert_non_null(strstr(errtext, "shard 1 is missing (shard-001.db"));
    free(text);
    free(errtext);
    /* an empty directory is not a data directory */
    char empty[200];
    snprintf(empty, sizeof empty, "%s/empty", f->dir);
    assert_int_equal(mkdir(empty, 0700), 0);
    o.saga_db = empty;
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(sagactl_audit_run(&o, devnull, devnull), SAGACTL_AUDIT_UNREADABLE);
    fclose(devnull);
}

/* ---- several data directories (a cluster): each shard from its newest copy ---- */

/* A second data directory f->dir/sagad2 holding a copy of every shard; in
 * both, shard_meta says partition p of AUDIT_SHARDS (as sagad writes it). */
static void make_cluster(fx_t *f, char *dir2, size_t len) {
    snprintf(dir2, len, "%s/sagad2", f->dir);
    assert_int_equal(mkdir(dir2, 0700), 0);
    for (int p = 0; p < AUDIT_SHARDS; p++) {
        char path[200], *sql = sqlite3_mprintf("INSERT OR REPLACE INTO shard_meta VALUES ('partition', %d),"
                                               " ('partitions', %d)", p, AUDIT_SHARDS);
        must_exec(f->sagad[p], sql);
        sqlite3_free(sql);
        assert_true(saga_shard_file(dir2, p, path, sizeof path) > 0);
        sql = sqlite3_mprintf("VACUUM INTO %Q", path);
        must_exec(f->sagad[p], sql);
        sqlite3_free(sql);
    }
}

/* Runs SQL in dir's copy of shard p. */
static void tamper_shard(const char *dir, int p, const char *sql) {
    char path[200];
    assert_true(saga_shard_file(dir, p, path, sizeof path) > 0);
    tamper(path, sql);
}

/* dir's copy of shard p records changelog_offset off (< 0: no such row) and
 * saga id with the definition version v (8 or 9: not in the definitions,
 * so the audit names the saga and the version it read). */
static void shard_copy(const char *dir, int p, long long off, const char *id, int v) {
    char sql[256];
    if (off < 0) snprintf(sql, sizeof sql, "DELETE FROM shard_meta WHERE key = 'changelog_offset'");
    else snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO shard_meta VALUES ('changelog_offset', %lld)", off);
    tamper_shard(dir, p, sql);
    snprintf(sql, sizeof sql, "UPDATE sagas SET version = %d WHERE id = '%s'", v, id);
    tamper_shard(dir, p, sql);
}

/* The audit over the data directories dirs; *text the report, *errtext
 * what it said on err (both freed with free()). */
static int audit_dirs(fx_t *f, const char *const *dirs, int n, int json, char **text, char **errtext) {
    sagactl_audit_opts_t o = {.saga_dbs = dirs, .n_saga_dbs = n, .order_db = f->order_db,
                              .inventory_db = f->inventory_db, .payment_db = f->payment_db,
                              .notification_db = f->notification_db, .json = json};
    size_t len = 0, elen = 0;
    FILE *out = open_memstream(text, &len), *err = open_memstream(errtext, &elen);
    int rc = sagactl_audit_run(&o, out, err);
    fclose(out);
    fclose(err);
    if (getenv("SAGA_TEST_VERBOSE")) fprintf(stderr, "%s%s", *text, *errtext);
    return rc;
}

/* "saga ID: definition order_fulfillment version V is not in ..." in text? */
static int names_version(const char *text, const char *id, int v) {
    char line[128];
    snprintf(line, sizeof line, "saga %s: definition order_fulfillment version %d is not", id, v);
    return strstr(text, line) != NULL;
}

/* One saga of each shard (AUDIT_SHARDS = 3: each holds some). */
static void saga_per_shard(const char *ids[AUDIT_SHARDS]) {
    static const char *const all[] = {"s-ok", "s-oos", "s-broke", "s-refund", "s-run", "s-stuck"};
    for (int p = 0; p < AUDIT_SHARDS; p++) ids[p] = NULL;
    for (size_t i = 0; i < 6; i++)
        if (!ids[saga_partition_of(all[i], AUDIT_SHARDS)]) ids[saga_partition_of(all[i], AUDIT_SHARDS)] = all[i];
    for (int p = 0; p < AUDIT_SHARDS; p++) assert_non_null(ids[p]);
}

/* Shard 0's newest copy is in the second directory, shard 1's in the first
 * (the second's has no offset), shard 2 is a tie (the first given wins).
 * Each saga changed in a stale copy (version 8) is not reported; the same
 * saga in the newest copy (version 9) is. */
static void test_audit_cluster_newest_copy(void **state) {
    fx_t *f = *state;
    char dir2[128], want[512], *text = NULL, *errtext = NULL;
    const char *ids[AUDIT_SHARDS];
    saga_per_shard(ids);
    make_cluster(f, dir2, sizeof dir2);
    shard_copy(f->saga_db, 0, 5, ids[0], 8);
    shard_copy(dir2, 0, 7, ids[0], 9);
    shard_copy(f->saga_db, 1, 9, ids[1], 9);
    shard_copy(dir2, 1, -1, ids[1], 8);
    shard_copy(f->saga_db, 2, 4, ids[2], 9);
    shard_copy(dir2, 2, 4, ids[2], 8);
    const char *dirs[] = {f->saga_db, dir2};
    assert_int_equal(audit_dirs(f, dirs, 2, 0, &text, &errtext), SAGACTL_AUDIT_FAILED);
    for (int p = 0; p < AUDIT_SHARDS; p++) {
        assert_true(names_version(text, ids[p], 9));
        assert_false(names_version(text, ids[p], 8));
    }
    snprintf(want, sizeof want, "audit of %s, %s (3 shards)\n  shards: 1,2 from %s; 0 from %s\n", f->saga_db, dir2,
             f->saga_db, dir2);
    assert_non_null(strstr(text, want));
    free(text);
    free(errtext);

    /* one directory: the report as before, without sources */
    assert_int_equal(audit_dirs(f, dirs, 1, 0, &text, &errtext), SAGACTL_AUDIT_FAILED);
    assert_true(names_version(text, ids[0], 8) && names_version(text, ids[1], 9));
    snprintf(want, sizeof want, "audit of %s (3 shards)\n  order ", f->saga_db);
    assert_non_null(strstr(text, want));
    free(text);
    free(errtext);
    assert_int_equal(audit_dirs(f, dirs, 1, 1, &text, &errtext), SAGACTL_AUDIT_FAILED);
    assert_null(strstr(text, "shard_sources"));
    free(text);
    free(errtext);

    /* the other order: the tie now goes to the second directory's copy */
    const char *rev[] = {dir2, f->saga_db};
    assert_int_equal(audit_dirs(f, rev, 2, 0, &text, &errtext), SAGACTL_AUDIT_FAILED);
    assert_true(names_version(text, ids[2], 8) && !names_version(text, ids[2], 9));
    assert_true(names_version(text, ids[0], 9) && names_version(text, ids[1], 9));
    free(text);
    free(errtext);
    assert_int_equal(audit_dirs(f, rev, 2, 1, &text, &errtext), SAGACTL_AUDIT_FAILED);
    json_t *doc = saga_json_parse(text, strlen(text), NULL, 0);
    assert_non_null(doc);
    char *src = saga_json_dump(json_object_get(doc, "shard_sources"));
    snprintf(want, sizeof want, "[{\"saga_db\":\"%s\",\"shards\":[0,2]},{\"saga_db\":\"%s\",\"shards\":[1]}]", dir2,
             f->saga_db);
    assert_string_equal(src, want);
    saga_free(src);
    json_decref(doc);
    free(text);
    free(errtext);

    /* a shard in one directory only is taken from there; in none, an error */
    char path[200];
    assert_true(saga_shard_file(dir2, 0, path, sizeof path) > 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(audit_dirs(f, dirs, 2, 0, &text, &errtext), SAGACTL_AUDIT_FAILED);
    assert_true(names_version(text, ids[0], 8));
    snprintf(want, sizeof want, "  shards: 0-2 from %s\n", f->saga_db);
    assert_non_null(strstr(text, want));
    free(text);
    free(errtext);
    assert_int_equal(unlink(f->shard_path[0]), 0);
    assert_int_equal(audit_dirs(f, dirs, 2, 0, &text, &errtext), SAGACTL_AUDIT_UNREADABLE);
    assert_non_null(strstr(errtext, "shard 0 is missing (shard-000.db; shards 0 to 2 are expected) from every"));
    free(text);
    free(errtext);
}

/* Directories of different partition counts are refused (exit 2), naming
 * each with its P; so is a single database file among several paths. */
static void test_audit_cluster_partitions_differ(void **state) {
    fx_t *f = *state;
    char dir2[128], want[512], *text = NULL, *errtext = NULL;
    make_cluster(f, dir2, sizeof dir2);
    const char *dirs[] = {f->saga_db, dir2};
    assert_int_equal(audit_dirs(f, dirs, 2, 0, &text, &errtext), SAGACTL_AUDIT_OK);
    free(text);
    free(errtext);
    for (int p = 0; p < AUDIT_SHARDS; p++)
        tamper_shard(dir2, p, "UPDATE shard_meta SET value = 4 WHERE key = 'partitions'");
    assert_int_equal(audit_dirs(f, dirs, 2, 0, &text, &errtext), SAGACTL_AUDIT_USAGE);
    snprintf(want, sizeof want, "different partition counts (shard_meta 'partitions'), they are not one cluster's: "
             "%s P=3, %s P=4", f->saga_db, dir2);
    if (!strstr(errtext, want)) fprintf(stderr, "want '%s', got '%s'\n", want, errtext);
    assert_non_null(strstr(errtext, want));
    assert_string_equal(text, "");
    free(text);
    free(errtext);
    const char *with_file[] = {f->saga_db, f->order_db};
    assert_int_equal(audit_dirs(f, with_file, 2, 0, &text, &errtext), SAGACTL_AUDIT_USAGE);
    assert_non_null(strstr(errtext, "not a directory"));
    free(text);
    free(errtext);
}

/* The binary: SAGA_DBS, and --saga-db given twice (over SAGA_DBS). */
static void test_audit_cluster_cli(void **state) {
    fx_t *f = *state;
    char dir2[128], cmd[2048], want[512], line[1024];
    const char *ids[AUDIT_SHARDS];
    saga_per_shard(ids);
    make_cluster(f, dir2, sizeof dir2);
    shard_copy(f->saga_db, 0, 5, ids[0], 8);
    shard_copy(dir2, 0, 7, ids[0], 1);
    snprintf(want, sizeof want, "  shards: 1,2 from %s; 0 from %s\n", f->saga_db, dir2);
    for (int how = 0; how < 2; how++) {
        snprintf(cmd, sizeof cmd,
                 "SAGA_DBS='%s %s' ORDER_DB='%s' INVENTORY_DB='%s' PAYMENT_DB='%s' '%s' audit %s%s%s%s%s",
                 how ? "/nonexistent" : f->saga_db, how ? "/nonexistent2" : dir2, f->order_db, f->inventory_db,
                 f->payment_db, SAGACTL_PATH, how ? "--saga-db '" : "", how ? f->saga_db : "",
                 how ? "' --saga-db='" : "", how ? dir2 : "", how ? "'" : "");
        FILE *p = popen(cmd, "r");
        int shards_line = 0, passed = 0;
        while (fgets(line, sizeof line, p)) {
            if (strcmp(line, want) == 0) shards_line = 1;
            if (strncmp(line, "audit: passed", 13) == 0) passed = 1;
        }
        int st = pclose(p);
        if (!shards_line || !passed) fprintf(stderr, "%s: want '%s' and passed\n", cmd, want);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_true(shards_line && passed);
    }
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
        cmocka_unit_test_setup_teardown(test_audit_missing_shard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_cluster_newest_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_cluster_partitions_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_cluster_cli, setup, teardown),
        /* one database file, as before shards */
        cmocka_unit_test_prestate_setup_teardown(test_audit_good, setup_file, teardown, NULL),
        cmocka_unit_test_prestate_setup_teardown(test_audit_amount_differs, setup_file, teardown, NULL),
        cmocka_unit_test_prestate_setup_teardown(test_audit_cli, setup_file, teardown, NULL),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

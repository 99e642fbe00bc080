/* The audit tests' fixture (test_audit_fixture.h): sagad's shards and the workers' ledgers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inventory.h"
#include "notification.h"
#include "order.h"
#include "payment.h"
#include "saga_alloc.h"
#include "saga_json.h"
#include "saga_partition.h"
#include "saga_shard_files.h"
#include "saga_util.h"
#include "schema.h"
#include "test_audit_fixture.h"

void must_exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "SQL failed: %s\n  %s\n", msg ? msg : "?", sql);
        sqlite3_free(msg);
        fail();
    }
}

/* Runs one command through a worker's real handler; returns the reply's
 * output (new reference, NULL when the reply is not a success). */
json_t *send_cmd(participant_t *p, const char *saga, const char *step, const char *kind, const char *action,
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

/* The writer of the shard saga id belongs to. */
sqlite3 *shard_of(fx_t *f, const char *id) { return f->sagad[saga_partition_of(id, f->shards)]; }

/* sagad's rows for one saga: its status and each step's status/output. */
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
json_t *charge(const char *customer) { return json_pack("{s:s,s:i}", "customer", customer, "amount", 700); }

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
int setup(void **state) { return setup_with(state, AUDIT_SHARDS); }
/* Today's layout: one database file. */
int setup_file(void **state) { return setup_with(state, 1); }

int teardown(void **state) {
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
void tamper(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    must_exec(db, sql);
    sqlite3_close(db);
}

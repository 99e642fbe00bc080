/* The four example workers' handlers against real SQLite ledgers: business
 * rules, compensations, and conservation of stock and money under random
 * interleavings of actions, duplicates and compensations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inventory.h"
#include "notification.h"
#include "order.h"
#include "payment.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_log.h"

typedef struct {
    char dir[64];
    participant_t *p;
} fx_t;

static int open_worker(void **state, const participant_spec_t *spec) {
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/saga-workers-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/%s.db", f->dir, spec->name);
    f->p = participant_open(spec, path, err, sizeof err);
    if (!f->p) { fprintf(stderr, "open: %s\n", err); return -1; }
    json_t *seed = json_pack("{s:{s:i,s:i,s:i},s:{s:i,s:i,s:i}}", "stock", "sku-1", 100, "sku-2", 50, "sku-empty", 0,
                             "accounts", "c-1", 10000, "c-2", 500, "c-broke", 0);
    int rc = participant_seed_json(f->p, seed, err, sizeof err);
    json_decref(seed);
    if (rc) { fprintf(stderr, "seed: %s\n", err); return -1; }
    *state = f;
    return 0;
}

static int setup_order(void **s) { return open_worker(s, order_worker_spec()); }
static int setup_inventory(void **s) { return open_worker(s, inventory_worker_spec()); }
static int setup_payment(void **s) { return open_worker(s, payment_worker_spec()); }
static int setup_notification(void **s) { return open_worker(s, notification_worker_spec()); }

static int teardown(void **state) {
    fx_t *f = *state;
    participant_close(&f->p);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

/* Sends one command (payload consumed, may be NULL) and returns the parsed
 * reply (caller decrefs). */
static json_t *send_cmd(fx_t *f, const char *saga, const char *step, const char *kind, const char *action,
                        int attempt, json_t *payload) {
    char mid[256], key[256];
    snprintf(key, sizeof key, "%s/%s/%s", saga, step, kind);
    snprintf(mid, sizeof mid, "%s/%d", key, attempt);
    json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:o,s:s}", "type", "saga.command", "message_id", mid,
                          "saga_id", saga, "definition", "order_fulfillment", "step", step, "kind", kind, "action",
                          action, "attempt", attempt, "idempotency_key", key, "payload",
                          payload ? payload : json_object(), "reply_to", "saga.replies");
    char *text = saga_json_dump(c);
    json_decref(c);
    participant_reply_t r;
    int rc = participant_process(f->p, text, strlen(text), NULL, &r);
    saga_free(text);
    assert_int_equal(rc, 0);
    assert_non_null(r.body);
    json_t *j = saga_json_parse(r.body, strlen(r.body), NULL, 0);
    participant_reply_clear(&r);
    assert_non_null(j);
    return j;
}

static const char *status_of(const json_t *r) { return saga_json_str(r, "status"); }
static const char *code_of(const json_t *r) { return saga_json_str(json_object_get(r, "error"), "code"); }

static long long q(fx_t *f, const char *sql, const char *arg) {
    long long v = -1;
    int rc = arg ? participant_query_int(participant_db(f->p), &v, sql, "t", arg)
                 : participant_query_int(participant_db(f->p), &v, sql, "");
    assert_true(rc >= 0);
    return rc == 1 ? v : -1;
}

static json_t *items1(const char *sku, int qty) { return json_pack("{s:[{s:s,s:i}]}", "items", "sku", sku, "qty", qty); }

/* ---- order ---------------------------------------------------------------- */

static void test_order_create_cancel(void **state) {
    fx_t *f = *state;
    json_t *r = send_cmd(f, "s-1", "create_order", "action", "order.create", 1,
                         json_pack("{s:s,s:[{s:s,s:i}]}", "order_id", "o-1", "items", "sku", "sku-1", "qty", 2));
    assert_string_equal(status_of(r), "success");
    assert_string_equal(saga_json_str(json_object_get(r, "output"), "order_id"), "o-1");
    json_decref(r);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM orders WHERE order_id='o-1' AND status='created'", NULL), 1);

    /* Duplicate delivery: no second order, same answer. */
    r = send_cmd(f, "s-1", "create_order", "action", "order.create", 2, json_pack("{s:s}", "order_id", "o-1"));
    assert_string_equal(status_of(r), "success");
    json_decref(r);
    /* Another saga reusing the order id is refused. */
    r = send_cmd(f, "s-2", "create_order", "action", "order.create", 1, json_pack("{s:s}", "order_id", "o-1"));
    assert_string_equal(status_of(r), "failure");
    assert_string_equal(code_of(r), "ORDER_EXISTS");
    json_decref(r);
    r = send_cmd(f, "s-3", "create_order", "action", "order.create", 1, json_pack("{s:i}", "order_id", 5));
    assert_string_equal(code_of(r), "INVALID_PAYLOAD");
    json_decref(r);

    r = send_cmd(f, "s-1", "create_order", "compensation", "order.cancel", 1, NULL);
    assert_string_equal(status_of(r), "success");
    assert_true(json_is_true(json_object_get(json_object_get(r, "output"), "cancelled")));
    json_decref(r);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM orders WHERE order_id='o-1' AND status='cancelled'", NULL), 1);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM orders", NULL), 1);
}

/* ---- inventory ------------------------------------------------------------- */

static void test_inventory_reserve_all_or_nothing(void **state) {
    fx_t *f = *state;
    json_t *items = json_pack("[{s:s,s:i},{s:s,s:i}]", "sku", "sku-1", "qty", 10, "sku", "sku-empty", "qty", 1);
    json_t *r = send_cmd(f, "s-1", "reserve", "action", "inventory.reserve", 1, json_pack("{s:o}", "items", items));
    assert_string_equal(status_of(r), "failure");
    assert_string_equal(code_of(r), "OUT_OF_STOCK");
    json_decref(r);
    assert_int_equal(q(f, "SELECT available FROM stock WHERE sku='sku-1'", NULL), 100); /* untouched */
    assert_int_equal(q(f, "SELECT COUNT(*) FROM reservations", NULL), 0);

    r = send_cmd(f, "s-2", "reserve", "action", "inventory.reserve", 1, items1("sku-nope", 1));
    assert_string_equal(code_of(r), "OUT_OF_STOCK");
    json_decref(r);
    r = send_cmd(f, "s-3", "reserve", "action", "inventory.reserve", 1, items1("sku-2", 51));
    assert_string_equal(code_of(r), "OUT_OF_STOCK");
    json_decref(r);
    r = send_cmd(f, "s-4", "reserve", "action", "inventory.reserve", 1, items1("sku-2", 0));
    assert_string_equal(code_of(r), "INVALID_PAYLOAD");
    json_decref(r);
    r = send_cmd(f, "s-5", "reserve", "action", "inventory.reserve", 1, json_pack("{s:[]}", "items"));
    assert_string_equal(code_of(r), "INVALID_PAYLOAD");
    json_decref(r);
    /* Exactly the stock there is: fine. */
    r = send_cmd(f, "s-6", "reserve", "action", "inventory.reserve", 1, items1("sku-2", 50));
    assert_string_equal(status_of(r), "success");
    json_decref(r);
    assert_int_equal(q(f, "SELECT available FROM stock WHERE sku='sku-2'", NULL), 0);
}

static void test_inventory_release_exactly_once(void **state) {
    fx_t *f = *state;
    /* Two lines of the same SKU are one reservation of their sum. */
    json_t *items = json_pack("[{s:s,s:i},{s:s,s:i},{s:s,s:i}]", "sku", "sku-1", "qty", 3, "sku", "sku-2", "qty", 4,
                              "sku", "sku-1", "qty", 2);
    json_t *r = send_cmd(f, "s-1", "reserve", "action", "inventory.reserve", 1, json_pack("{s:o}", "items", items));
    assert_string_equal(status_of(r), "success");
    const char *rid = saga_json_str(json_object_get(r, "output"), "reservation_id");
    assert_non_null(rid);
    assert_int_equal(q(f, "SELECT qty FROM reservations WHERE reservation_id=? AND sku='sku-1'", rid), 5);
    json_decref(r);
    /* A duplicate reserve does not reserve twice. */
    json_decref(send_cmd(f, "s-1", "reserve", "action", "inventory.reserve", 2, items1("sku-1", 3)));
    assert_int_equal(q(f, "SELECT available FROM stock WHERE sku='sku-1'", NULL), 95);
    assert_int_equal(q(f, "SELECT available FROM stock WHERE sku='sku-2'", NULL), 46);

    r = send_cmd(f, "s-1", "reserve", "compensation", "inventory.release", 1, NULL);
    assert_string_equal(status_of(r), "success");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "output"), "released_units")), 9);
    json_decref(r);
    json_decref(send_cmd(f, "s-1", "reserve", "compensation", "inventory.release", 2, NULL));
    json_decref(send_cmd(f, "s-1", "reserve", "compensation", "inventory.release", 2, NULL));
    assert_int_equal(q(f, "SELECT available FROM stock WHERE sku='sku-1'", NULL), 100);
    assert_int_equal(q(f, "SELECT available FROM stock WHERE sku='sku-2'", NULL), 50);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM reservations WHERE status='released'", NULL), 2);

    /* Release for a reservation that never happened: no-op, stock as is,
     * and the late reserve is refused. */
    r = send_cmd(f, "s-9", "reserve", "compensation", "inventory.release", 1, NULL);
    assert_string_equal(status_of(r), "success");
    json_decref(r);
    r = send_cmd(f, "s-9", "reserve", "action", "inventory.reserve", 1, items1("sku-1", 1));
    assert_string_equal(code_of(r), "COMPENSATED_BEFORE_ACTION");
    json_decref(r);
    assert_int_equal(q(f, "SELECT available FROM stock WHERE sku='sku-1'", NULL), 100);
}

/* A deterministic PRNG for the random walks. */
static unsigned long long rnd_state = 88172645463325252ULL;
static unsigned rnd(unsigned n) {
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (unsigned)(rnd_state % n);
}

/* Random sagas: reserve (sometimes too much), duplicates with new attempts,
 * compensations before or after the action, repeated compensations. */
static void test_inventory_conserves_stock(void **state) {
    fx_t *f = *state;
    static const char *const skus[] = {"sku-1", "sku-2", "sku-empty", "sku-unknown"};
    for (int i = 0; i < 300; i++) {
        char saga[32];
        snprintf(saga, sizeof saga, "s-%d", i);
        int comp_first = rnd(5) == 0;
        if (comp_first)
            json_decref(send_cmd(f, saga, "reserve", "compensation", "inventory.release", 1, NULL));
        int lines = 1 + (int)rnd(3);
        json_t *items = json_array();
        for (int l = 0; l < lines; l++)
            json_array_append_new(items, json_pack("{s:s,s:i}", "sku", skus[rnd(4)], "qty", 1 + (int)rnd(6)));
        int attempts = 1 + (int)rnd(3);
        for (int a = 1; a <= attempts; a++)
            json_decref(send_cmd(f, saga, "reserve", "action", "inventory.reserve", a,
                                 json_pack("{s:O}", "items", items)));
        json_decref(items);
        if (!comp_first && rnd(2)) {
            int comps = 1 + (int)rnd(3);
            for (int a = 1; a <= comps; a++)
                json_decref(send_cmd(f, saga, "reserve", "compensation", "inventory.release", a, NULL));
        }
        /* The invariant holds after every saga. */
        assert_int_equal(q(f,
                           "SELECT COUNT(*) FROM stock s WHERE s.initial != s.available + COALESCE((SELECT SUM(qty)"
                           " FROM reservations r WHERE r.sku = s.sku AND r.status = 'reserved'), 0)",
                           NULL),
                         0);
    }
    assert_int_equal(q(f, "SELECT COUNT(*) FROM stock WHERE available < 0", NULL), 0);
    /* Every successful reserve has exactly its reservation rows. */
    assert_int_equal(q(f,
                       "SELECT COUNT(*) FROM processed p WHERE p.action='inventory.reserve' AND p.status='success'"
                       " AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.idempotency_key = p.idempotency_key)",
                       NULL),
                     0);
    assert_int_equal(q(f,
                       "SELECT COUNT(*) FROM reservations r WHERE NOT EXISTS (SELECT 1 FROM processed p WHERE"
                       " p.idempotency_key = r.idempotency_key AND p.status='success')",
                       NULL),
                     0);
}

/* ---- payment --------------------------------------------------------------- */

static json_t *charge(const char *customer, long long amount) {
    return json_pack("{s:s,s:I}", "customer", customer, "amount", (json_int_t)amount);
}

static void test_payment_charge_decline_refund(void **state) {
    fx_t *f = *state;
    json_t *r = send_cmd(f, "s-1", "charge", "action", "payment.charge", 1, charge("c-1", 2500));
    assert_string_equal(status_of(r), "success");
    assert_non_null(saga_json_str(json_object_get(r, "output"), "payment_id"));
    json_decref(r);
    json_decref(send_cmd(f, "s-1", "charge", "action", "payment.charge", 2, charge("c-1", 2500)));
    assert_int_equal(q(f, "SELECT balance FROM accounts WHERE customer='c-1'", NULL), 7500); /* no double charge */

    r = send_cmd(f, "s-2", "charge", "action", "payment.charge", 1, charge("c-broke", 1));
    assert_string_equal(code_of(r), "PAYMENT_DECLINED");
    json_decref(r);
    r = send_cmd(f, "s-3", "charge", "action", "payment.charge", 1, charge("c-nobody", 1));
    assert_string_equal(code_of(r), "PAYMENT_DECLINED");
    json_decref(r);
    r = send_cmd(f, "s-4", "charge", "action", "payment.charge", 1, charge("c-2", 501));
    assert_string_equal(code_of(r), "PAYMENT_DECLINED");
    json_decref(r);
    r = send_cmd(f, "s-5", "charge", "action", "payment.charge", 1,
                 json_pack("{s:s,s:s}", "customer", "c-1", "amount", "12.50"));
    assert_string_equal(code_of(r), "INVALID_PAYLOAD");
    json_decref(r);
    r = send_cmd(f, "s-6", "charge", "action", "payment.charge", 1, charge("c-1", -5));
    assert_string_equal(code_of(r), "INVALID_PAYLOAD");
    json_decref(r);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM charges", NULL), 1);

    r = send_cmd(f, "s-1", "charge", "compensation", "payment.refund", 1, NULL);
    assert_string_equal(status_of(r), "success");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "output"), "refunded")), 2500);
    json_decref(r);
    json_decref(send_cmd(f, "s-1", "charge", "compensation", "payment.refund", 2, NULL));
    assert_int_equal(q(f, "SELECT balance FROM accounts WHERE customer='c-1'", NULL), 10000);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM charges WHERE status='refunded'", NULL), 1);
}

static void test_payment_conserves_money(void **state) {
    fx_t *f = *state;
    static const char *const customers[] = {"c-1", "c-2", "c-broke", "c-nobody"};
    for (int i = 0; i < 300; i++) {
        char saga[32];
        snprintf(saga, sizeof saga, "s-%d", i);
        int comp_first = rnd(6) == 0;
        if (comp_first) json_decref(send_cmd(f, saga, "charge", "compensation", "payment.refund", 1, NULL));
        const char *cust = customers[rnd(4)];
        long long amount = 1 + rnd(400);
        int attempts = 1 + (int)rnd(3);
        for (int a = 1; a <= attempts; a++)
            json_decref(send_cmd(f, saga, "charge", "action", "payment.charge", a, charge(cust, amount)));
        if (!comp_first && rnd(3) == 0) {
            int comps = 1 + (int)rnd(2);
            for (int a = 1; a <= comps; a++)
                json_decref(send_cmd(f, saga, "charge", "compensation", "payment.refund", a, NULL));
        }
        assert_int_equal(q(f,
                           "SELECT COUNT(*) FROM accounts a WHERE a.initial != a.balance + COALESCE((SELECT"
                           " SUM(amount) FROM charges c WHERE c.customer = a.customer AND c.status = 'charged'), 0)",
                           NULL),
                         0);
    }
    assert_int_equal(q(f, "SELECT COUNT(*) FROM accounts WHERE balance < 0", NULL), 0);
    /* At most one charge per saga step. */
    assert_int_equal(q(f, "SELECT COUNT(*) FROM (SELECT saga_id FROM charges GROUP BY saga_id HAVING COUNT(*) > 1)",
                       NULL),
                     0);
    assert_true(q(f, "SELECT COUNT(*) FROM charges", NULL) > 0);
}

/* ---- notification ---------------------------------------------------------- */

static void test_notification_recorded_once(void **state) {
    fx_t *f = *state;
    json_t *r = send_cmd(f, "s-1", "notify", "action", "notification.send", 1,
                         json_pack("{s:s,s:s}", "order_id", "o-1", "payment", "pay-s-1/charge"));
    assert_string_equal(status_of(r), "success");
    assert_non_null(saga_json_str(json_object_get(r, "output"), "notification_id"));
    json_decref(r);
    json_decref(send_cmd(f, "s-1", "notify", "action", "notification.send", 2,
                         json_pack("{s:s,s:s}", "order_id", "o-1", "payment", "pay-s-1/charge")));
    assert_int_equal(q(f, "SELECT COUNT(*) FROM notifications WHERE order_id='o-1' AND delivered_at IS NULL", NULL), 1);
    r = send_cmd(f, "s-2", "notify", "action", "notification.send", 1, json_pack("{s:s}", "payment", "x"));
    assert_string_equal(code_of(r), "INVALID_PAYLOAD");
    json_decref(r);
    /* There is no compensation for a notification. */
    char cmd[] = "{\"type\":\"saga.command\",\"message_id\":\"s-1/notify/compensation/1\",\"saga_id\":\"s-1\","
                 "\"step\":\"notify\",\"kind\":\"compensation\",\"action\":\"notification.unsend\",\"attempt\":1,"
                 "\"idempotency_key\":\"s-1/notify/compensation\",\"payload\":{},\"reply_to\":\"saga.replies\"}";
    participant_reply_t out;
    assert_int_equal(participant_process(f->p, cmd, strlen(cmd), NULL, &out), SAGA_EPARSE);
    assert_non_null(strstr(out.body, "UNKNOWN_ACTION"));
    participant_reply_clear(&out);
}

/* ---- the shipped seed file ------------------------------------------------- */

static void test_seed_file(void **state) {
    (void)state;
    const char *src = getenv("SAGA_SOURCE_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/sagas/examples/seed.json", src ? src : ".");
    fx_t f;
    snprintf(f.dir, sizeof f.dir, "/tmp/saga-seed-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    char db[128], err[512];
    snprintf(db, sizeof db, "%s/inventory.db", f.dir);
    participant_t *inv = participant_open(inventory_worker_spec(), db, err, sizeof err);
    assert_non_null(inv);
    assert_int_equal(participant_seed_file(inv, path, err, sizeof err), 0);
    snprintf(db, sizeof db, "%s/payment.db", f.dir);
    participant_t *pay = participant_open(payment_worker_spec(), db, err, sizeof err);
    assert_non_null(pay);
    assert_int_equal(participant_seed_file(pay, path, err, sizeof err), 0);
    long long v = -1;
    assert_int_equal(participant_query_int(participant_db(inv), &v, "SELECT available FROM stock WHERE sku='sku-empty'", ""), 1);
    assert_int_equal(v, 0);
    assert_int_equal(participant_query_int(participant_db(inv), &v, "SELECT available FROM stock WHERE sku='sku-1'", ""), 1);
    assert_true(v >= 100000);
    assert_int_equal(participant_query_int(participant_db(pay), &v, "SELECT balance FROM accounts WHERE customer='c-broke'", ""), 1);
    assert_int_equal(v, 0);
    assert_int_equal(participant_query_int(participant_db(pay), &v, "SELECT balance FROM accounts WHERE customer='c-1'", ""), 1);
    assert_true(v >= 10000000);
    participant_close(&inv);
    participant_close(&pay);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f.dir);
    assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    saga_alloc_install_jansson();
    saga_log_set_level(getenv("SAGA_TEST_VERBOSE") ? SAGA_LOG_DEBUG : SAGA_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_create_cancel, setup_order, teardown),
        cmocka_unit_test_setup_teardown(test_inventory_reserve_all_or_nothing, setup_inventory, teardown),
        cmocka_unit_test_setup_teardown(test_inventory_release_exactly_once, setup_inventory, teardown),
        cmocka_unit_test_setup_teardown(test_inventory_conserves_stock, setup_inventory, teardown),
        cmocka_unit_test_setup_teardown(test_payment_charge_decline_refund, setup_payment, teardown),
        cmocka_unit_test_setup_teardown(test_payment_conserves_money, setup_payment, teardown),
        cmocka_unit_test_setup_teardown(test_notification_recorded_once, setup_notification, teardown),
        cmocka_unit_test(test_seed_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

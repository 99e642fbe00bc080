/* Order participant. Ledger:
 *   orders(order_id PK, saga_id, idempotency_key, items JSON, status
 *          created|cancelled, created_at, updated_at)
 * order.create inserts the order (status 'created'); an order_id already
 * used by another saga is a business failure ORDER_EXISTS. order.cancel
 * sets the status of the order this saga created to 'cancelled'.
 *
 * Test trigger (off unless order_worker_set_test_triggers(1); the worker
 * turns it on with ORDER_WORKER_TEST_TRIGGERS=1), used by tests/e2e: the
 * cancel of an order whose id starts with "o-stuck" is a transient failure
 * (retry TEST_CANCEL_STUCK, nothing recorded) for as long as the trigger is
 * on, so the saga ends compensation_failed; restart the worker without it
 * and an operator retry finishes the compensation. */
#include "order.h"

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"

#include <string.h>

static int test_triggers;

void order_worker_set_test_triggers(int on) { test_triggers = on; }

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS orders ("
    "  order_id TEXT PRIMARY KEY,"
    "  saga_id TEXT NOT NULL,"
    "  idempotency_key TEXT NOT NULL UNIQUE,"
    "  items TEXT NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('created','cancelled')),"
    "  created_at TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS orders_saga ON orders(saga_id);";

static int order_create(sqlite3 *db, const participant_command_t *cmd, participant_result_t *res, void *user) {
    (void)user;
    const char *order_id = saga_json_str(cmd->payload, "order_id");
    if (!order_id || !*order_id)
        return participant_fail(res, "INVALID_PAYLOAD", "payload.order_id must be a non-empty string");
    json_t *items = json_object_get(cmd->payload, "items");
    if (items && !json_is_array(items))
        return participant_fail(res, "INVALID_PAYLOAD", "payload.items must be an array");
    long long exists = 0;
    int rc = participant_query_int(db, &exists, "SELECT 1 FROM orders WHERE order_id = ?", "t", order_id);
    if (rc < 0) return rc;
    if (rc == 1)
        return participant_fail(res, "ORDER_EXISTS", "order %s already exists (created by another saga)", order_id);
    char *items_text = items ? saga_json_dump(items) : saga_strdup("[]");
    if (!items_text) return SAGA_ENOMEM;
    char now[40];
    participant_now(now, sizeof now);
    rc = participant_exec(db,
                          "INSERT INTO orders(order_id, saga_id, idempotency_key, items, status, created_at, updated_at)"
                          " VALUES(?,?,?,?,'created',?,?)",
                          "tttttt", order_id, cmd->saga_id, cmd->idempotency_key, items_text, now, now);
    saga_free(items_text);
    if (rc) return rc;
    res->output = json_pack("{s:s}", "order_id", order_id);
    return res->output ? 0 : SAGA_ENOMEM;
}

static int order_cancel(sqlite3 *db, const participant_command_t *cmd, participant_result_t *res, void *user) {
    (void)user;
    const char *stuck = saga_json_str(cmd->action_output, "order_id");
    if (test_triggers && stuck && strncmp(stuck, "o-stuck", 7) == 0)
        return participant_retry(res, "TEST_CANCEL_STUCK", "test trigger: order %s cannot be cancelled now", stuck);
    char now[40];
    int rc = participant_exec(db,
                              "UPDATE orders SET status = 'cancelled', updated_at = ?"
                              " WHERE idempotency_key = ? AND status = 'created'",
                              "tt", participant_now(now, sizeof now), cmd->action_key);
    if (rc) return rc;
    int cancelled = sqlite3_changes(db);
    const char *order_id = saga_json_str(cmd->action_output, "order_id");
    res->output = json_pack("{s:s?,s:b}", "order_id", order_id, "cancelled", cancelled > 0);
    return res->output ? 0 : SAGA_ENOMEM;
}

static const participant_handler_t HANDLERS[] = {
    {"order.create", PARTICIPANT_ACTION, order_create},
    {"order.cancel", PARTICIPANT_COMPENSATION, order_cancel},
    {NULL, PARTICIPANT_ACTION, NULL},
};

static const participant_spec_t SPEC = {
    .name = "order",
    .program = "order-worker",
    .env_prefix = "ORDER_WORKER",
    .summary = "Example saga participant: creates and cancels orders (order.create / order.cancel).",
    .schema_sql = SCHEMA,
    .seed = NULL,
    .handlers = HANDLERS,
    .user = NULL,
};

const participant_spec_t *order_worker_spec(void) { return &SPEC; }

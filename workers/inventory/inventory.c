/* Inventory participant. Ledger:
 *   stock(sku PK, available >= 0, initial)   initial = what the seed put in
 *   reservations(reservation_id, saga_id, idempotency_key, sku, qty > 0,
 *                status reserved|released, created_at, released_at)
 *                PK (reservation_id, sku)
 * Invariant per SKU (audit): initial = available + SUM(qty) of its
 * 'reserved' rows. inventory.reserve is all-or-nothing: a missing SKU or
 * short stock is a business failure OUT_OF_STOCK and changes nothing.
 * inventory.release puts back exactly what that saga step reserved, once. */
#include "inventory.h"

#include "saga_error.h"
#include "saga_json.h"
#include "saga_log.h"

#include <stdio.h>
#include <string.h>

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS stock ("
    "  sku TEXT PRIMARY KEY,"
    "  available INTEGER NOT NULL CHECK (available >= 0),"
    "  initial INTEGER NOT NULL CHECK (initial >= 0));"
    "CREATE TABLE IF NOT EXISTS reservations ("
    "  reservation_id TEXT NOT NULL,"
    "  saga_id TEXT NOT NULL,"
    "  idempotency_key TEXT NOT NULL,"
    "  sku TEXT NOT NULL REFERENCES stock(sku),"
    "  qty INTEGER NOT NULL CHECK (qty > 0),"
    "  status TEXT NOT NULL CHECK (status IN ('reserved','released')),"
    "  created_at TEXT NOT NULL,"
    "  released_at TEXT,"
    "  PRIMARY KEY (reservation_id, sku));"
    "CREATE INDEX IF NOT EXISTS reservations_key ON reservations(idempotency_key);"
    "CREATE INDEX IF NOT EXISTS reservations_saga ON reservations(saga_id);";

static int inventory_seed(sqlite3 *db, const json_t *seed, char *err, size_t errlen) {
    json_t *stock = json_object_get(seed, "stock");
    if (!stock) return 0;
    if (!json_is_object(stock)) {
        snprintf(err, errlen, "/stock must be an object {\"sku\": quantity}");
        return SAGA_EPARSE;
    }
    const char *sku;
    json_t *qty;
    json_object_foreach(stock, sku, qty) {
        if (!json_is_integer(qty) || json_integer_value(qty) < 0) {
            snprintf(err, errlen, "/stock/%s must be an integer >= 0", sku);
            return SAGA_EPARSE;
        }
        long long q = json_integer_value(qty);
        if (participant_exec(db, "INSERT INTO stock(sku, available, initial) VALUES(?,?,?)", "tii", sku, q, q)) {
            snprintf(err, errlen, "/stock/%s: %s", sku, sqlite3_errmsg(db));
            return SAGA_ESTORE;
        }
    }
    return 0;
}

static int inventory_reserve(sqlite3 *db, const participant_command_t *cmd, participant_result_t *res,
                             void *user) {
    (void)user;
    json_t *items = json_object_get(cmd->payload, "items");
    if (!json_is_array(items) || json_array_size(items) == 0)
        return participant_fail(res, "INVALID_PAYLOAD", "payload.items must be a non-empty array of {sku, qty}");
    char rid[512];
    snprintf(rid, sizeof rid, "rsv-%s/%s", cmd->saga_id, cmd->step);
    char now[40];
    participant_now(now, sizeof now);
    size_t i;
    json_t *item;
    /* Changes made before a failure are rolled back by the library. */
    json_array_foreach(items, i, item) {
        const char *sku = saga_json_str(item, "sku");
        long long qty = 0;
        if (!sku || !*sku || saga_json_int(item, "qty", &qty) || qty <= 0)
            return participant_fail(res, "INVALID_PAYLOAD", "payload.items[%zu] needs a sku and an integer qty > 0", i);
        long long available = 0;
        int rc = participant_query_int(db, &available, "SELECT available FROM stock WHERE sku = ?", "t", sku);
        if (rc < 0) return rc;
        if (rc == 0) return participant_fail(res, "OUT_OF_STOCK", "unknown SKU %s", sku);
        if (available < qty)
            return participant_fail(res, "OUT_OF_STOCK", "SKU %s: %lld wanted, %lld available", sku, qty, available);
        if ((rc = participant_exec(db, "UPDATE stock SET available = available - ? WHERE sku = ?", "it", qty, sku)))
            return rc;
        if ((rc = participant_exec(db,
                                   "INSERT INTO reservations(reservation_id, saga_id, idempotency_key, sku, qty, status,"
                                   " created_at) VALUES(?,?,?,?,?,'reserved',?)"
                                   " ON CONFLICT(reservation_id, sku) DO UPDATE SET qty = qty + excluded.qty",
                                   "ttttit", rid, cmd->saga_id, cmd->idempotency_key, sku, qty, now)))
            return rc;
    }
    res->output = json_pack("{s:s}", "reservation_id", rid);
    return res->output ? 0 : SAGA_ENOMEM;
}

static int inventory_release(sqlite3 *db, const participant_command_t *cmd, participant_result_t *res,
                             void *user) {
    (void)user;
    long long units = 0;
    int rc = participant_query_int(db, &units,
                                   "SELECT COALESCE(SUM(qty), 0) FROM reservations"
                                   " WHERE idempotency_key = ? AND status = 'reserved'",
                                   "t", cmd->action_key);
    if (rc < 0) return rc;
    /* Stock first (it reads the rows still 'reserved'), then the rows. */
    if ((rc = participant_exec(db,
                               "UPDATE stock SET available = available + (SELECT SUM(r.qty) FROM reservations r"
                               " WHERE r.idempotency_key = ?1 AND r.status = 'reserved' AND r.sku = stock.sku)"
                               " WHERE sku IN (SELECT sku FROM reservations WHERE idempotency_key = ?1"
                               " AND status = 'reserved')",
                               "t", cmd->action_key)))
        return rc;
    char now[40];
    if ((rc = participant_exec(db,
                               "UPDATE reservations SET status = 'released', released_at = ?"
                               " WHERE idempotency_key = ? AND status = 'reserved'",
                               "tt", participant_now(now, sizeof now), cmd->action_key)))
        return rc;
    const char *rid = saga_json_str(cmd->action_output, "reservation_id");
    res->output = json_pack("{s:s?,s:I}", "reservation_id", rid, "released_units", (json_int_t)units);
    return res->output ? 0 : SAGA_ENOMEM;
}

static const participant_handler_t HANDLERS[] = {
    {"inventory.reserve", PARTICIPANT_ACTION, inventory_reserve},
    {"inventory.release", PARTICIPANT_COMPENSATION, inventory_release},
    {NULL, PARTICIPANT_ACTION, NULL},
};

static const participant_spec_t SPEC = {
    .name = "inventory",
    .program = "inventory-worker",
    .env_prefix = "INVENTORY_WORKER",
    .summary = "Example saga participant: reserves and releases stock (inventory.reserve / inventory.release).",
    .schema_sql = SCHEMA,
    .seed = inventory_seed,
    .handlers = HANDLERS,
    .user = NULL,
};

const participant_spec_t *inventory_worker_spec(void) { return &SPEC; }

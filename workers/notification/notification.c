/* Notification participant. Ledger:
 *   notifications(notification_id PK, idempotency_key UNIQUE, saga_id,
 *                 order_id, payment, message, created_at, delivered_at)
 * notification.send records the message, committed together with the
 * saga's `processed` row. No compensation (a sent message cannot be unsent).
 *
 * Webhook delivery is NOT implemented yet (planned with libcurl). The hook:
 * rows with delivered_at IS NULL form an outbox; a sender will POST each
 * one and then set delivered_at, so a crash between the two re-sends
 * rather than loses a message. Until then delivered_at stays NULL. */
#include "notification.h"

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"

#include <stdio.h>
#include <string.h>

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS notifications ("
    "  notification_id TEXT PRIMARY KEY,"
    "  idempotency_key TEXT NOT NULL UNIQUE,"
    "  saga_id TEXT NOT NULL,"
    "  order_id TEXT NOT NULL,"
    "  payment TEXT,"
    "  message TEXT NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  delivered_at TEXT);"
    "CREATE INDEX IF NOT EXISTS notifications_undelivered ON notifications(delivered_at)"
    "  WHERE delivered_at IS NULL;";

static int notification_send(sqlite3 *db, const participant_command_t *cmd, participant_result_t *res,
                             void *user) {
    (void)user;
    const char *order_id = saga_json_str(cmd->payload, "order_id");
    if (!order_id || !*order_id)
        return participant_fail(res, "INVALID_PAYLOAD", "payload.order_id must be a non-empty string");
    json_t *pay = json_object_get(cmd->payload, "payment");
    char *payment = NULL;
    if (json_is_string(pay)) payment = saga_strdup(json_string_value(pay));
    else if (pay && !json_is_null(pay)) payment = saga_json_dump(pay);
    char nid[512], message[1024], now[40];
    snprintf(nid, sizeof nid, "ntf-%s/%s", cmd->saga_id, cmd->step);
    snprintf(message, sizeof message, "Order %s confirmed%s%s.", order_id, payment ? ", payment " : "",
             payment ? payment : "");
    int rc = participant_exec(db,
                              "INSERT INTO notifications(notification_id, idempotency_key, saga_id, order_id, payment,"
                              " message, created_at) VALUES(?,?,?,?,?,?,?)",
                              "ttttttt", nid, cmd->idempotency_key, cmd->saga_id, order_id,
                              payment ? payment : NULL, message, participant_now(now, sizeof now));
    saga_free(payment);
    if (rc) return rc;
    res->output = json_pack("{s:s}", "notification_id", nid);
    return res->output ? 0 : SAGA_ENOMEM;
}

static const participant_handler_t HANDLERS[] = {
    {"notification.send", PARTICIPANT_ACTION, notification_send},
    {NULL, PARTICIPANT_ACTION, NULL},
};

static const participant_spec_t SPEC = {
    .name = "notification",
    .program = "notification-worker",
    .env_prefix = "NOTIFICATION_WORKER",
    .summary = "Example saga participant: records order notifications (notification.send).",
    .schema_sql = SCHEMA,
    .seed = NULL,
    .handlers = HANDLERS,
    .user = NULL,
};

const participant_spec_t *notification_worker_spec(void) { return &SPEC; }

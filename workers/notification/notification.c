/* Notification participant. Ledger:
 *   notifications(notification_id PK, idempotency_key UNIQUE, saga_id,
 *                 order_id, payment, message, created_at, delivered_at)
 * notification.send records the message, committed together with the
 * saga's `processed` row. No compensation (a sent message cannot be unsent).
 *
 * Webhook delivery (notification_worker_set_webhook, --webhook-url): the
 * handler POSTs the notification as JSON (libcurl, with a timeout) before
 * the ledger transaction commits, with the header `Idempotency-Key:
 * <idempotency_key>` so the receiver can drop a repeat:
 *   2xx                     delivered: delivered_at set, success;
 *   5xx, 429, no connection, timeout
 *                           transient: `retry` WEBHOOK_UNAVAILABLE (nothing
 *                           recorded: sagad retries with backoff, the next
 *                           attempt POSTs again);
 *   other status (4xx, 3xx) business failure WEBHOOK_REJECTED (recorded;
 *                           the saga compensates).
 * A crash between the POST and the commit re-sends it (at least once).
 * Without a webhook the message is only recorded and delivered_at stays
 * NULL. */
#include "notification.h"

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

static struct {
    char *url; /* NULL: record only */
    long timeout_ms;
    CURL *curl; /* reused: keeps the connection */
} webhook = {NULL, 5000, NULL};

int notification_worker_set_webhook(const char *url, long timeout_ms) {
    saga_free(webhook.url);
    webhook.url = NULL;
    if (webhook.curl) {
        curl_easy_cleanup(webhook.curl);
        webhook.curl = NULL;
    }
    if (timeout_ms > 0) webhook.timeout_ms = timeout_ms;
    if (!url || !*url) return 0;
    webhook.url = saga_strdup(url);
    return webhook.url ? 0 : SAGA_ENOMEM;
}

static size_t discard_body(char *data, size_t size, size_t nmemb, void *userp) {
    (void)data;
    (void)userp;
    return size * nmemb;
}

/* POSTs body; 0 delivered, or the outcome already set in res. */
static int deliver(const participant_command_t *cmd, const char *body, participant_result_t *res, long *status) {
    *status = 0;
    if (!webhook.curl && !(webhook.curl = curl_easy_init()))
        return participant_retry(res, "WEBHOOK_UNAVAILABLE", "cannot initialise libcurl");
    CURL *c = webhook.curl;
    curl_easy_reset(c);
    char key_header[600], err[CURL_ERROR_SIZE] = "";
    snprintf(key_header, sizeof key_header, "Idempotency-Key: %s", cmd->idempotency_key);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h) h = curl_slist_append(h, key_header);
    curl_easy_setopt(c, CURLOPT_URL, webhook.url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, webhook.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, webhook.timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "notification-worker/0.1");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    if (rc != CURLE_OK)
        return participant_retry(res, "WEBHOOK_UNAVAILABLE", "POST %s: %s", webhook.url,
                                 err[0] ? err : curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    if (*status >= 200 && *status < 300) return 0;
    if (*status >= 500 || *status == 429)
        return participant_retry(res, "WEBHOOK_UNAVAILABLE", "POST %s: HTTP %ld", webhook.url, *status);
    return participant_fail(res, "WEBHOOK_REJECTED", "POST %s: HTTP %ld", webhook.url, *status);
}

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
    if (rc || !webhook.url) {
        saga_free(payment);
        if (rc) return rc;
        res->output = json_pack("{s:s}", "notification_id", nid);
        return res->output ? 0 : SAGA_ENOMEM;
    }
    json_t *doc = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s}", "notification_id", nid, "idempotency_key",
                            cmd->idempotency_key, "saga_id", cmd->saga_id, "order_id", order_id, "payment", payment,
                            "message", message);
    saga_free(payment);
    char *body = doc ? saga_json_dump(doc) : NULL;
    json_decref(doc);
    if (!body) return SAGA_ENOMEM;
    long status = 0;
    rc = deliver(cmd, body, res, &status);
    saga_free(body);
    if (rc || res->status != PARTICIPANT_SUCCESS) return rc; /* rolled back by the library */
    if ((rc = participant_exec(db, "UPDATE notifications SET delivered_at = ? WHERE notification_id = ?", "tt",
                               participant_now(now, sizeof now), nid)))
        return rc;
    res->output = json_pack("{s:s,s:b,s:i}", "notification_id", nid, "delivered", 1, "http_status", (int)status);
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
    .summary = "Example saga participant: records order notifications (notification.send) and, with a\n"
               "webhook, delivers them by HTTP POST (2xx delivered; 5xx, 429, no connection: retry; other: failure).\n"
               "\nWebhook options:\n"
               "  --webhook-url URL          POST every notification here as JSON\n"
               "                             (env NOTIFICATION_WORKER_WEBHOOK_URL; default: record only)\n"
               "  --webhook-timeout-ms N     give up on a POST after N ms, as a retry\n"
               "                             (env NOTIFICATION_WORKER_WEBHOOK_TIMEOUT_MS; default 5000)",
    .schema_sql = SCHEMA,
    .seed = NULL,
    .handlers = HANDLERS,
    .user = NULL,
};

const participant_spec_t *notification_worker_spec(void) { return &SPEC; }

"""Notification participant in Python: what workers/notification does, on sagad_participant.

Action notification.send (no compensation: a sent message cannot be unsent), payload
{order_id, payment} -> output {"notification_id": "ntf-<saga>/<step>"}. Ledger (the C worker's
schema, so `sagactl audit --notification-db` reads it):
    notifications(notification_id PK, idempotency_key UNIQUE, saga_id, order_id, payment, message,
                  created_at, delivered_at)
With --webhook-url (env NOTIFICATION_WORKER_WEBHOOK_URL) each notification is POSTed as JSON
before the ledger commits, with `Idempotency-Key: <idempotency_key>`: 2xx delivered (output also
"delivered": true, "http_status"); 5xx, 429, no connection, timeout: retry WEBHOOK_UNAVAILABLE;
any other status (redirects are not followed): failure WEBHOOK_REJECTED. Same command line as the
C worker (docs/PARTICIPANTS.md, "Command line"), run by workers/python/bin/notification-worker.
"""
import json
import os
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the checkout's library
from sagad_participant import ACTION, Failure, Handler, Retry, main, now_rfc3339  # noqa: E402
from sagad_participant.command import cut_utf8  # noqa: E402

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS notifications ("
    "  notification_id TEXT PRIMARY KEY,"
    "  idempotency_key TEXT NOT NULL UNIQUE,"
    "  saga_id TEXT NOT NULL,"
    "  order_id TEXT NOT NULL,"
    "  payment TEXT,"
    "  message TEXT NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  delivered_at TEXT)",
    "CREATE INDEX IF NOT EXISTS notifications_undelivered ON notifications(delivered_at)"
    "  WHERE delivered_at IS NULL",
]

webhook = {"url": None, "timeout_ms": 5000}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx is an answer (WEBHOOK_REJECTED), as with libcurl's defaults


_opener = urllib.request.build_opener(_NoRedirect)


def deliver(cmd, body):
    """POSTs body to the webhook; returns the HTTP status of a 2xx, raises Retry or Failure otherwise."""
    url = webhook["url"]
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Content-Type": "application/json", "Idempotency-Key": cmd.idempotency_key,
        "User-Agent": "notification-worker/0.1"})
    try:
        with _opener.open(req, timeout=webhook["timeout_ms"] / 1000) as resp:
            status = resp.status
    except urllib.error.HTTPError as e:
        status = e.code
    except (urllib.error.URLError, OSError) as e:
        raise Retry("WEBHOOK_UNAVAILABLE", f"POST {url}: {getattr(e, 'reason', e)}") from None
    if 200 <= status < 300:
        return status
    if status >= 500 or status == 429:
        raise Retry("WEBHOOK_UNAVAILABLE", f"POST {url}: HTTP {status}")
    raise Failure("WEBHOOK_REJECTED", f"POST {url}: HTTP {status}")


def notification_send(db, cmd):
    order_id = cmd.payload.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        raise Failure("INVALID_PAYLOAD", "payload.order_id must be a non-empty string")
    pay = cmd.payload.get("payment")
    payment = pay if isinstance(pay, str) else None if pay is None else json.dumps(pay, separators=(",", ":"))
    nid = f"ntf-{cmd.saga_id}/{cmd.step}"
    message = cut_utf8(f"Order {order_id} confirmed{', payment ' + payment if payment is not None else ''}.", 1023)
    db.execute("INSERT INTO notifications(notification_id, idempotency_key, saga_id, order_id, payment, message,"
               " created_at) VALUES(?,?,?,?,?,?,?)",
               (nid, cmd.idempotency_key, cmd.saga_id, order_id, payment, message, now_rfc3339()))
    if not webhook["url"]:
        return {"notification_id": nid}
    body = json.dumps({"notification_id": nid, "idempotency_key": cmd.idempotency_key, "saga_id": cmd.saga_id,
                       "order_id": order_id, "payment": payment, "message": message}, separators=(",", ":"))
    status = deliver(cmd, body)  # a Retry or Failure rolls the row back (the library's savepoint)
    db.execute("UPDATE notifications SET delivered_at = ? WHERE notification_id = ?", (now_rfc3339(), nid))
    return {"notification_id": nid, "delivered": True, "http_status": status}


HANDLERS = [Handler("notification.send", ACTION, notification_send)]


def webhook_options(parser):
    parser.add_argument("--webhook-url", default=os.environ.get("NOTIFICATION_WORKER_WEBHOOK_URL"),
                        help="POST every notification here as JSON (env NOTIFICATION_WORKER_WEBHOOK_URL; "
                             "default: record only)")
    parser.add_argument("--webhook-timeout-ms", default=os.environ.get("NOTIFICATION_WORKER_WEBHOOK_TIMEOUT_MS"),
                        help="give up on a POST after N ms, as a retry (env NOTIFICATION_WORKER_WEBHOOK_TIMEOUT_MS;"
                             " default 5000)")


def webhook_settings(args):
    if args.webhook_timeout_ms:
        try:
            timeout = int(args.webhook_timeout_ms)
        except ValueError:
            timeout = 0
        if not 1 <= timeout <= 600000:
            return f"--webhook-timeout-ms: '{args.webhook_timeout_ms}' is not a number of ms (1..600000)"
        webhook["timeout_ms"] = timeout
    url = args.webhook_url
    if url and not url.startswith(("http://", "https://")):
        return f"--webhook-url '{url}': must start with http:// or https://"
    webhook["url"] = url or None
    return None


if __name__ == "__main__":
    sys.exit(main("notification", HANDLERS, schema=SCHEMA, program="notification-worker",
                  env_prefix="NOTIFICATION_WORKER",
                  description="Example saga participant in Python: records order notifications "
                              "(notification.send) and, with a webhook, delivers them by HTTP POST.",
                  extra_options=webhook_options, on_args=webhook_settings))

"""Unit tests of the Python example participants: notification (examples/notification.py: its ledger
rows as sagactl audit reads them, the webhook outcomes as tests/e2e/test_webhook.sh checks them for the
C worker, the command line) and tally (examples/tally.py: an action and its compensation)."""
import http.server
import importlib.util
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from sagad_participant import Participant  # noqa: E402

logging.disable(logging.CRITICAL)
EXAMPLE = os.path.join(HERE, "..", "examples", "notification.py")
spec = importlib.util.spec_from_file_location("notification_example", EXAMPLE)
ntf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ntf)


def command(saga="s-1", attempt=1, payload=None):
    return json.dumps({
        "type": "saga.command", "message_id": f"{saga}/notify/action/{attempt}", "saga_id": saga,
        "definition": "order_fulfillment", "step": "notify", "kind": "action", "action": "notification.send",
        "attempt": attempt, "idempotency_key": f"{saga}/notify/action", "reply_to": "saga.replies",
        "payload": {"order_id": f"o-{saga}", "payment": "pay-1"} if payload is None else payload}).encode()


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers each POST with the next status of `statuses` (200 when empty) and keeps what it got."""
    statuses, posts = [], []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Receiver.posts.append((self.headers["Idempotency-Key"], body))
        status = Receiver.statuses.pop(0) if Receiver.statuses else 200
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/elsewhere")
        self.end_headers()

    def log_message(self, *args):
        pass


class NotificationTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.tmp.name, "notification.db")
        self.p = Participant("notification", ntf.HANDLERS, self.path, schema=ntf.SCHEMA)
        ntf.webhook.update(url=None, timeout_ms=5000)

    def tearDown(self):
        self.p.close()
        self.tmp.cleanup()
        ntf.webhook.update(url=None, timeout_ms=5000)

    def reply(self, data):
        return json.loads(self.p.process(data).body)

    def rows(self):
        with sqlite3.connect(self.path) as db:
            return db.execute("SELECT notification_id, idempotency_key, saga_id, order_id, payment, message,"
                              " delivered_at IS NOT NULL FROM notifications").fetchall()

    def test_send_records_the_message_once(self):
        self.assertEqual(self.reply(command())["output"], {"notification_id": "ntf-s-1/notify"})
        self.assertEqual(self.reply(command(attempt=2))["output"], {"notification_id": "ntf-s-1/notify"})
        self.assertEqual(self.rows(), [("ntf-s-1/notify", "s-1/notify/action", "s-1", "o-s-1", "pay-1",
                                        "Order o-s-1 confirmed, payment pay-1.", 0)])

    def test_payment_object_and_missing_order(self):
        self.reply(command(saga="s-2", payload={"order_id": "o-2", "payment": {"id": 7}}))
        self.assertEqual(self.rows()[0][4:6], ('{"id":7}', 'Order o-2 confirmed, payment {"id":7}.'))
        bad = self.reply(command(saga="s-3", payload={"payment": "p"}))
        self.assertEqual((bad["status"], bad["error"]["code"]), ("failure", "INVALID_PAYLOAD"))

    def start_receiver(self, statuses):
        Receiver.statuses, Receiver.posts = list(statuses), []
        server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        ntf.webhook["url"] = f"http://127.0.0.1:{server.server_port}/hook"

    def test_webhook_2xx_delivers(self):
        self.start_receiver([200])
        out = self.reply(command())["output"]
        self.assertEqual(out, {"notification_id": "ntf-s-1/notify", "delivered": True, "http_status": 200})
        self.assertEqual(Receiver.posts[0][0], "s-1/notify/action")
        self.assertEqual(Receiver.posts[0][1]["notification_id"], "ntf-s-1/notify")
        self.assertEqual(self.rows()[0][6], 1)

    def test_webhook_5xx_retries_and_records_nothing(self):
        self.start_receiver([503, 200])
        first = self.reply(command())
        self.assertEqual((first["status"], first["error"]["code"]), ("retry", "WEBHOOK_UNAVAILABLE"))
        self.assertEqual(self.rows(), [])
        self.assertEqual(self.reply(command(attempt=2))["status"], "success")
        self.assertEqual(len(Receiver.posts), 2)

    def test_webhook_4xx_and_3xx_are_rejected(self):
        self.start_receiver([400, 302])
        for saga in ("s-400", "s-302"):
            r = self.reply(command(saga=saga))
            self.assertEqual((r["status"], r["error"]["code"]), ("failure", "WEBHOOK_REJECTED"), saga)
        self.assertEqual(self.rows(), [])
        self.assertEqual(len(Receiver.posts), 2)  # the redirect was not followed

    def test_webhook_unreachable_is_transient(self):
        ntf.webhook.update(url="http://127.0.0.1:9/none", timeout_ms=500)
        self.assertEqual(self.reply(command())["error"]["code"], "WEBHOOK_UNAVAILABLE")


class TallyTest(unittest.TestCase):
    """examples/tally.py: the action and its compensation through the library."""

    def test_add_then_remove_exactly_once(self):
        spec_t = importlib.util.spec_from_file_location("tally_example",
                                                        os.path.join(HERE, "..", "examples", "tally.py"))
        tally = importlib.util.module_from_spec(spec_t)
        spec_t.loader.exec_module(tally)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "tally.db")
            p = Participant("tally", tally.HANDLERS, path, schema=tally.SCHEMA)

            def send(kind, action, saga="t-1", attempt=1):
                doc = {"type": "saga.command", "message_id": f"{saga}/s/{kind}/{attempt}", "saga_id": saga,
                       "step": "s", "kind": kind, "action": action, "attempt": attempt,
                       "idempotency_key": f"{saga}/s/{kind}", "reply_to": "r", "payload": {}}
                return json.loads(p.process(json.dumps(doc)).body)
            self.assertEqual(send("action", "tally.add")["output"], {"tally_id": "tally-t-1/s"})
            self.assertEqual(send("compensation", "tally.remove")["output"],
                             {"tally_id": "tally-t-1/s", "removed": True})
            self.assertEqual(send("compensation", "tally.remove", attempt=2)["output"]["removed"], True)
            self.assertEqual(send("compensation", "tally.remove", saga="t-2")["output"], {"noop": True})
            self.assertEqual(send("action", "tally.add", saga="t-2")["error"]["code"], "COMPENSATED_BEFORE_ACTION")
            p.close()
            with sqlite3.connect(path) as db:
                self.assertEqual(db.execute("SELECT tally_id, state FROM tallies").fetchall(),
                                 [("tally-t-1/s", "removed")])


class CommandLineTest(unittest.TestCase):
    def run_worker(self, *args):
        return subprocess.run([sys.executable, EXAMPLE, *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "NOTIFICATION_WORKER_DB": "/nonexistent/x.db"})

    def test_help_and_configuration_errors(self):
        ok = self.run_worker("--help")
        self.assertEqual(ok.returncode, 0)
        for flag in ("--bootstrap-file", "--ready-file", "--seed", "-X", "--webhook-url",
                     "(env NOTIFICATION_WORKER_DB)"):
            self.assertIn(flag, ok.stdout)
        self.assertEqual(self.run_worker("--webhook-url", "ftp://x").returncode, 2)
        self.assertEqual(self.run_worker("--webhook-timeout-ms", "0").returncode, 2)
        self.assertEqual(self.run_worker("--fail-rate", "2").returncode, 2)
        self.assertEqual(self.run_worker("-X", "novalue").returncode, 2)

    def test_ledger_that_cannot_open_exits_1_naming_it(self):
        r = self.run_worker("--bootstrap", "127.0.0.1:9")
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent/x.db", r.stderr)

    def test_missing_bootstrap_file_exits_2(self):
        with tempfile.TemporaryDirectory() as d:
            r = self.run_worker("--db", os.path.join(d, "n.db"), "--bootstrap-file", os.path.join(d, "none"),
                                "--bootstrap-wait-ms", "100")
        self.assertEqual(r.returncode, 2)
        self.assertIn("bootstrap file", r.stderr)


if __name__ == "__main__":
    unittest.main()

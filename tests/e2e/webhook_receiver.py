#!/usr/bin/env python3
"""A tiny webhook receiver for the notification worker's tests.

    webhook_receiver.py PORT_FILE LOG_FILE

Listens on 127.0.0.1 on a random port (written to PORT_FILE once it
listens) and answers each POST by the notification's order_id:
  o-flaky*   503 to the first POST of an Idempotency-Key, then 200;
  o-reject*  400;
  anything else 200.
Every request is appended to LOG_FILE as one JSON line:
{"status", "idempotency_key", "order_id", "body"}. Stops on SIGTERM.
"""
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port_file, log_file = sys.argv[1], sys.argv[2]
seen = set()
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        key = self.headers.get("Idempotency-Key", "")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        order = body.get("order_id", "") if isinstance(body, dict) else ""
        with lock:
            if order.startswith("o-flaky") and key not in seen:
                status = 503
            elif order.startswith("o-reject"):
                status = 400
            else:
                status = 200
            seen.add(key)
            with open(log_file, "a", encoding="utf-8") as f:
                f.write(json.dumps({"status": status, "idempotency_key": key, "order_id": order,
                                    "content_type": self.headers.get("Content-Type"), "body": body}) + "\n")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        out = json.dumps({"status": status}).encode()
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, fmt, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
tmp = port_file + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    f.write("%d\n" % server.server_address[1])
os.replace(tmp, port_file)
server.serve_forever()

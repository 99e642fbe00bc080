#!/usr/bin/env python3
"""A tiny HTTP receiver for webhook tests: appends every POST body as one
line to OUT_FILE and answers with the next status of STATUSES (comma
separated, the last one repeats). Writes its port to PORT_FILE."""
import http.server, sys

out_file, port_file = sys.argv[1], sys.argv[2]
statuses = [int(s) for s in (sys.argv[3] if len(sys.argv) > 3 else "200").split(",")]
calls = 0

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global calls
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = statuses[min(calls, len(statuses) - 1)]
        calls += 1
        with open(out_file, "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.replace(port_file + ".tmp", port_file)
server.serve_forever()

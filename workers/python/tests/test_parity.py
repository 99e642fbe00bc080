"""Parity with workers/lib: the same command lines run through the C library (participant_replay, a toy
counter participant built with the project) and through sagad_participant with the same toy must give
the same replies, byte for byte (a retry's random id suffix aside), and the same ledger rows."""
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from sagad_participant import ACTION, COMPENSATION, Failure, Handler, Participant, Retry  # noqa: E402

logging.disable(logging.CRITICAL)
REPLAY = os.environ.get("PARTICIPANT_REPLAY")  # set by ctest (py_participant_unit)
SCHEMA = "CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"


def counter_add(db, cmd):
    name, by = cmd.payload.get("name"), cmd.payload.get("by")
    if not isinstance(by, int) or isinstance(by, bool):
        by = 1  # as saga_json_int leaves the default
    db.execute("INSERT INTO counters(name, value) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET value = value + ?2",
               (name, by))
    if cmd.payload.get("fail") is True:
        raise Failure("TOY_DECLINED", f"declined {name}")
    if cmd.payload.get("retry") is True:
        raise Retry("TOY_BUSY", "try later")
    return {"name": name, "added": by}


def counter_sub(db, cmd):
    by, name = cmd.action_output.get("added", 0), cmd.action_output.get("name")
    db.execute("UPDATE counters SET value = value - ? WHERE name = ?", (by, name))
    return {"name": name, "removed": by}


HANDLERS = [Handler("counter.add", ACTION, counter_add), Handler("counter.sub", COMPENSATION, counter_sub),
            Handler("counter.only", ACTION, counter_add)]


def cmd(saga="s", step="st", kind="action", action="counter.add", attempt=1, payload=None, drop=(), **extra):
    doc = {"type": "saga.command", "message_id": f"{saga}/{step}/{kind}/{attempt}", "saga_id": saga,
           "definition": "toy", "step": step, "kind": kind, "action": action, "attempt": attempt,
           "idempotency_key": f"{saga}/{step}/{kind}", "reply_to": "saga.replies", "reply_partition": 1,
           "payload": {"name": saga, "by": 2} if payload is None else payload}
    doc.update(extra)
    for key in drop:
        doc.pop(key, None)
    return json.dumps(doc, ensure_ascii=False).encode()


def commands():
    long_saga, long_step = "L" * 127, "t" * 127
    return [
        cmd(), cmd(), cmd(attempt=2),                                            # success, duplicates
        cmd(saga="f", payload={"name": "f", "fail": True}), cmd(saga="f", attempt=2),
        cmd(saga="r", payload={"name": "r", "retry": True}), cmd(saga="r", attempt=2),
        cmd(kind="compensation", action="counter.sub"),                          # undoes s
        cmd(kind="compensation", action="counter.sub", attempt=3),
        cmd(saga="early", kind="compensation", action="counter.sub"),            # before its action
        cmd(saga="early"),                                                       # the late action: refused
        cmd(saga="f", kind="compensation", action="counter.sub"),                # its action failed
        cmd(saga="u", action="counter.nope"),
        cmd(saga="u", kind="compensation", action="counter.only"),
        cmd(saga="u", action="counter.sub"),
        cmd(saga="m", drop=["action"]), cmd(saga="m", attempt=0), cmd(saga="m", attempt="1"),
        cmd(saga="m", attempt=1.0), cmd(saga="m", attempt=True), cmd(saga="m", kind="undo"),
        cmd(saga="m", payload=[1]), cmd(saga="m", drop=["payload"]), cmd(saga="m", idempotency_key=""),
        cmd(saga="m", drop=["reply_to"]), cmd(saga="m", drop=["message_id"]), cmd(saga="m", type="saga.start"),
        cmd(saga="m", definition=7), cmd(saga="m2", attempt=2**63 - 1), cmd(saga="m3", attempt=2**63),
        cmd(saga="m4", reply_partition=True), cmd(saga="m5", step=""),
        b"", b"not json", b"[1,2]", b'{"type":"saga.command","a":1,"a":2}',
        cmd(saga="dup").replace(b'"saga_id": "dup"', b'"saga_id": "dup", "saga_id": "dup"'),
        cmd(saga="bad-utf8").replace(b'"name": "bad-utf8"', b'"name": "bad-\xff"'),
        cmd(saga="nan").replace(b'"by": 2', b'"by": NaN'),
        cmd(saga="huge").replace(b'"by": 2', b'"by": 1e400'), cmd(saga="real").replace(b'"by": 2', b'"by": 2.5e3'),
        cmd(saga=long_saga, step=long_step, attempt=2**31 - 1),
        cmd(saga=long_saga, step=long_step, kind="compensation", action="counter.sub", attempt=2**31 - 1),
        cmd(saga="uni", payload={"name": "é😀\u0001\n\t/\x7f\u2028\"\\", "by": 2**62}),
        cmd(saga="long", payload={"name": "é" * 200, "fail": True}),
        cmd(saga="neg", payload={"name": "neg", "by": -7}),
    ]


def normalized(line):
    return re.sub(rb"/t-[0-9a-f]{16}\"", b'/t-RANDOM"', line)


def ledger(path):
    with sqlite3.connect(path) as db:
        processed = db.execute("SELECT idempotency_key, saga_id, step, kind, action, status, error_code, noop,"
                               " command_message_id, attempt, reply FROM processed ORDER BY idempotency_key").fetchall()
        counters = db.execute("SELECT name, value FROM counters ORDER BY name").fetchall()
    return processed, counters


@unittest.skipUnless(REPLAY, "PARTICIPANT_REPLAY (the C reference, built by the project) not set")
class ParityTest(unittest.TestCase):
    def test_same_replies_and_ledger_as_the_c_library(self):
        lines = commands()
        with tempfile.TemporaryDirectory() as d:
            c_db, py_db = os.path.join(d, "c.db"), os.path.join(d, "py.db")
            run = subprocess.run([REPLAY, c_db], input=b"\n".join(lines) + b"\n", capture_output=True,
                                 timeout=60)
            self.assertEqual(run.returncode, 0, run.stderr.decode(errors="replace"))
            c_replies = run.stdout.split(b"\n")[:-1]
            self.assertEqual(len(c_replies), len(lines))
            p = Participant("toy", HANDLERS, py_db, schema=SCHEMA)
            py_replies = [(r.body.encode() if r.body is not None else b"-") for r in map(p.process, lines)]
            p.close()
            for i, (line, c, py) in enumerate(zip(lines, c_replies, py_replies)):
                self.assertEqual(normalized(py), normalized(c), f"command {i}: {line[:200]!r}")
            c_ledger, py_ledger = ledger(c_db), ledger(py_db)
        self.assertEqual(py_ledger[1], c_ledger[1])   # counters
        self.assertEqual(py_ledger[0], c_ledger[0])   # processed rows
        self.assertGreater(len(c_ledger[0]), 10)
        self.assertGreater(sum(1 for c in c_replies if c != b"-"), 30)


if __name__ == "__main__":
    unittest.main()

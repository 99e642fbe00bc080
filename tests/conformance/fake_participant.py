#!/usr/bin/env python3
"""A small saga participant for the conformance kit's own tests: correct by default, and with
--break FLAG deliberately wrong in one way, so that the test can show the kit catches it.

Action fake.apply inserts a row into `applied`; compensation fake.undo marks the step's row undone.
Its ledger (SQLite) keeps the outcome of each idempotency key with its reply, as workers/lib does.
"""
import argparse
import json
import os
import secrets
import sqlite3
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

BREAKS = {
    "apply_duplicates": "runs every delivery of an action again (no idempotency)",
    "resend_verbatim": "re-sends a stored reply unchanged (attempt, in_reply_to, message_id of the first)",
    "duplicate_new_id": "re-sends a stored reply under a new random message_id",
    "no_compensation_mark": "a compensation whose action never ran records nothing (the late action then applies)",
    "crash_on_malformed": "exits on a command it cannot parse",
    "unknown_success": "answers success to an action it does not know",
    "truncate_ids": "cuts saga_id and step to 64 bytes in its replies (a VARCHAR(64) column)",
    "wrong_partition": "ignores reply_partition (the key's murmur2 partition instead)",
    "commit_early": "commits the offsets of a batch before processing it (a crash loses commands)",
}
ACTIONS = {("fake.apply", "action"), ("fake.undo", "compensation")}

SCHEMA = """
CREATE TABLE IF NOT EXISTS applied (id INTEGER PRIMARY KEY, saga_id TEXT NOT NULL, step TEXT NOT NULL,
                                    undone INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS processed (idempotency_key TEXT PRIMARY KEY, saga_id TEXT NOT NULL, step TEXT NOT NULL,
                                      kind TEXT NOT NULL, status TEXT NOT NULL, reply TEXT NOT NULL);
"""


def log(*a):
    print("fake:", *a, file=sys.stderr, flush=True)


class Fake:
    def __init__(self, a):
        self.a, self.broken = a, set(a.breaks)
        self.db = sqlite3.connect(a.db, isolation_level=None, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        common = {"bootstrap.servers": a.bootstrap, "broker.address.family": "v4"}
        self.producer = Producer({**common, "enable.idempotence": True, "acks": "all", "linger.ms": 0,
                                  "partitioner": "murmur2_random"})
        self.consumer = Consumer({**common, "group.id": a.group, "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                                  "fetch.wait.max.ms": 10})
        self.partitions = {}  # reply topic -> partition count

    def reply_partition_ok(self, topic, p):
        if topic not in self.partitions:
            md = self.producer.list_topics(topic, timeout=10).topics[topic]
            self.partitions[topic] = len(md.partitions)
        return isinstance(p, int) and not isinstance(p, bool) and 0 <= p < self.partitions[topic]

    def send(self, cmd, reply, traceparent):
        topic, saga_id = cmd["reply_to"], cmd["saga_id"]
        if "truncate_ids" in self.broken:
            reply["saga_id"], reply["step"] = reply["saga_id"][:64], reply["step"][:64]
            saga_id = saga_id[:64]
        p = cmd.get("reply_partition")
        if "wrong_partition" in self.broken or not self.reply_partition_ok(topic, p):
            p = -1  # keyed: murmur2 of the saga id
        headers = [("saga_id", saga_id.encode()), ("content-type", b"application/json")]
        if traceparent:
            headers.append(("traceparent", traceparent))
        self.producer.produce(topic, value=json.dumps(reply).encode(), key=saga_id.encode(), partition=p,
                              headers=headers)
        self.producer.flush(10)

    @staticmethod
    def reply(cmd, mid, status, output=None, code=None, message=""):
        r = {"type": "saga.reply", "message_id": mid, "in_reply_to": cmd["message_id"], "saga_id": cmd["saga_id"],
             "step": cmd["step"], "status": status}
        if cmd.get("kind") in ("action", "compensation"):
            r["kind"] = cmd["kind"]
        if isinstance(cmd.get("attempt"), int) and not isinstance(cmd.get("attempt"), bool) and cmd["attempt"] >= 1:
            r["attempt"] = cmd["attempt"]
        if status == "success":
            r["output"] = output if output is not None else {}
        else:
            r["error"] = {"code": code, "message": message}
        return r

    def handle(self, raw):
        """The reply to send for one record value, or None."""
        try:
            cmd = json.loads(raw)
        except ValueError:
            cmd = None
        readable = isinstance(cmd, dict) and cmd.get("type") == "saga.command" and all(
            isinstance(cmd.get(f), str) and cmd.get(f) for f in ("message_id", "saga_id", "step", "reply_to"))
        problem = None
        if not readable:
            problem = "not a readable command"
        elif cmd.get("kind") not in ("action", "compensation"):
            problem = "kind"
        elif not (isinstance(cmd.get("attempt"), int) and not isinstance(cmd.get("attempt"), bool) and cmd["attempt"] >= 1):
            problem = "attempt"
        elif not isinstance(cmd.get("payload"), dict):
            problem = "payload"
        elif not all(isinstance(cmd.get(f), str) and cmd.get(f) for f in ("action", "idempotency_key")):
            problem = "action or idempotency_key"
        if problem:
            if "crash_on_malformed" in self.broken:
                log("malformed command: exiting")
                os._exit(3)
            log("malformed command:", problem)
            return (cmd, self.reply(cmd, "r-" + cmd["message_id"], "failure", code="MALFORMED_COMMAND",
                                    message=problem)) if readable else None
        kind, key, attempt = cmd["kind"], cmd["idempotency_key"], cmd["attempt"]
        if (cmd["action"], kind) not in ACTIONS:
            if "unknown_success" in self.broken and kind == "action":
                return cmd, self.reply(cmd, "r-" + cmd["message_id"], "success")
            return cmd, self.reply(cmd, "r-" + cmd["message_id"], "failure", code="UNKNOWN_ACTION",
                                   message=f"fake does not handle {kind} {cmd['action']}")
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT reply FROM processed WHERE idempotency_key = ?", (key,)).fetchone()
            if row and not (kind == "action" and "apply_duplicates" in self.broken):
                stored = json.loads(row[0])
                if "resend_verbatim" not in self.broken:
                    stored.update(message_id=f"r-{key}/{attempt}", in_reply_to=cmd["message_id"], attempt=attempt)
                if "duplicate_new_id" in self.broken:
                    stored["message_id"] = "r-" + secrets.token_hex(8)
                db.execute("COMMIT")
                return cmd, stored
            mid = f"r-{key}/{attempt}"
            saga_id, step = cmd["saga_id"], cmd["step"]
            record = True
            if kind == "action":
                comp = db.execute("SELECT 1 FROM processed WHERE saga_id = ? AND step = ? AND kind = 'compensation'",
                                  (saga_id, step)).fetchone()
                if comp:
                    r = self.reply(cmd, mid, "failure", code="COMPENSATED_BEFORE_ACTION",
                                   message="the step was compensated before its action arrived")
                else:
                    cur = db.execute("INSERT INTO applied(saga_id, step) VALUES (?, ?)", (saga_id, step))
                    r = self.reply(cmd, mid, "success", output={"applied_id": cur.lastrowid})
            else:
                done = db.execute("SELECT 1 FROM processed WHERE saga_id = ? AND step = ? AND kind = 'action' "
                                  "AND status = 'success'", (saga_id, step)).fetchone()
                if done:
                    db.execute("UPDATE applied SET undone = 1 WHERE saga_id = ? AND step = ?", (saga_id, step))
                    r = self.reply(cmd, mid, "success", output={"undone": True})
                else:
                    r = self.reply(cmd, mid, "success", output={"noop": True})
                    record = "no_compensation_mark" not in self.broken
            if record:
                db.execute("INSERT OR REPLACE INTO processed VALUES (?, ?, ?, ?, ?, ?)",
                           (key, saga_id, step, kind, r["status"], json.dumps(r)))
            if self.a.delay_ms:
                time.sleep(self.a.delay_ms / 1000)
            db.execute("COMMIT")
            return cmd, r
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def run(self):
        for _ in range(50):  # the producer's metadata request creates a missing topic (auto-creation)
            md = self.producer.list_topics(self.a.topic, timeout=10).topics[self.a.topic]
            if md.partitions:
                break
            time.sleep(0.1)
        self.consumer.assign([TopicPartition(self.a.topic, p, -1000) for p in md.partitions])  # committed offsets
        if self.a.ready_file:
            open(self.a.ready_file, "w").write("READY\n")
        log("consuming", self.a.topic, "breaks:", ",".join(sorted(self.broken)) or "none")
        while True:
            msgs = [m for m in self.consumer.consume(100, 0.1) if not m.error()]
            if not msgs:
                continue
            if "commit_early" in self.broken:
                self.consumer.commit(offsets=[TopicPartition(m.topic(), m.partition(), m.offset() + 1) for m in msgs],
                                     asynchronous=False)
            for m in msgs:  # in order: a partition's commands one after the other
                out = self.handle(m.value() or b"")
                if out is not None:
                    self.send(*out, dict(m.headers() or []).get("traceparent"))
                # only now, the reply acknowledged (flush), the offset
                self.consumer.commit(offsets=[TopicPartition(m.topic(), m.partition(), m.offset() + 1)],
                                     asynchronous=False)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--ready-file")
    p.add_argument("--delay-ms", type=int, default=0, help="sleep per command, inside its transaction")
    p.add_argument("--break", dest="breaks", action="append", default=[], choices=sorted(BREAKS),
                   help="; ".join(f"{k}: {v}" for k, v in BREAKS.items()))
    Fake(p.parse_args()).run()


if __name__ == "__main__":
    main()

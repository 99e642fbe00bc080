"""Unit tests of sagad_participant's command processing against a real SQLite file (no Kafka):
the same contract tests/unit/test_participant.c checks for workers/lib."""
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from sagad_participant import (ACTION, COMPENSATION, Failure, Faults, Handler, Participant,  # noqa: E402
                               Retry, parse_command)

logging.disable(logging.CRITICAL)  # the library logs every refusal; the assertions say what matters
SCHEMA = "CREATE TABLE IF NOT EXISTS counter(key TEXT PRIMARY KEY, saga_id TEXT, value INTEGER NOT NULL)"


def command(saga="s-1", step="bump", kind=ACTION, action="counter.add", attempt=1, payload=None, **extra):
    cmd = {"type": "saga.command", "message_id": f"{saga}/{step}/{kind}/{attempt}", "saga_id": saga,
           "definition": "toy", "step": step, "kind": kind, "action": action, "attempt": attempt,
           "idempotency_key": f"{saga}/{step}/{kind}", "reply_to": "saga.replies", "reply_partition": 3,
           "payload": {"n": 5} if payload is None else payload}
    cmd.update(extra)
    return json.dumps(cmd).encode()


class ToyParticipant:
    """A counter: counter.add adds payload.n (fails when n < 0, retries when n == 0), counter.undo
    removes exactly what its action added. Counts handler calls."""

    def __init__(self, path):
        self.calls = {"add": 0, "undo": 0}
        self.undo_seen = None
        self.p = Participant("toy", [Handler("counter.add", ACTION, self.add),
                                     Handler("counter.undo", COMPENSATION, self.undo),
                                     Handler("counter.only_action", ACTION, self.add)], path, schema=SCHEMA)

    def add(self, db, cmd):
        self.calls["add"] += 1
        db.execute("INSERT INTO counter(key, saga_id, value) VALUES(?,?,?)",
                   (cmd.idempotency_key, cmd.saga_id, cmd.payload.get("n", 0)))
        if cmd.payload.get("n") == 0:
            raise Retry("TRY_LATER", "zero means later")
        if cmd.payload.get("n", 0) < 0:
            raise Failure("NEGATIVE", "n must not be negative")
        if cmd.payload.get("explode"):
            raise KeyError("a handler bug")
        return {"added": cmd.payload["n"]}

    def undo(self, db, cmd):
        self.calls["undo"] += 1
        self.undo_seen = (cmd.action_key, cmd.action_output)
        db.execute("DELETE FROM counter WHERE key = ?", (cmd.action_key,))
        return {"removed": cmd.action_output["added"]}


class ParticipantTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.tmp.name, "toy.db")
        self.toy = ToyParticipant(self.path)
        self.p = self.toy.p

    def tearDown(self):
        self.p.close()
        self.tmp.cleanup()

    def q(self, sql, params=()):
        with sqlite3.connect(self.path) as db:  # another connection: sees only what was committed
            return db.execute(sql, params).fetchall()

    def send(self, data):
        out = self.p.process(data)
        return out, (json.loads(out.body) if out.body else None)

    def test_action_commits_change_processed_row_and_reply_together(self):
        out, reply = self.send(command())
        self.assertEqual(reply, {"type": "saga.reply", "message_id": "r-s-1/bump/action/1",
                                 "in_reply_to": "s-1/bump/action/1", "saga_id": "s-1", "step": "bump",
                                 "kind": "action", "attempt": 1, "status": "success", "output": {"added": 5}})
        self.assertEqual(list(reply), ["type", "message_id", "in_reply_to", "saga_id", "step", "kind", "attempt",
                                       "status", "output"])
        self.assertEqual((out.topic, out.key, out.partition), ("saga.replies", "s-1", 3))
        self.assertEqual(self.q("SELECT value FROM counter"), [(5,)])
        row = self.q("SELECT saga_id, step, kind, action, status, error_code, noop, command_message_id, attempt,"
                     " reply FROM processed")
        self.assertEqual(row, [("s-1", "bump", "action", "counter.add", "success", None, 0, "s-1/bump/action/1", 1,
                                out.body)])

    def test_duplicate_runs_nothing_and_resends_the_stored_reply(self):
        first, _ = self.send(command())
        again, _ = self.send(command())
        self.assertEqual(again.body, first.body)  # byte-identical: sagad's dedup drops it
        self.assertTrue(again.duplicate)
        later, reply = self.send(command(attempt=2))
        self.assertEqual((reply["message_id"], reply["in_reply_to"], reply["attempt"], reply["status"]),
                         ("r-s-1/bump/action/2", "s-1/bump/action/2", 2, "success"))
        self.assertEqual(reply["output"], {"added": 5})
        self.assertEqual(self.toy.calls["add"], 1)
        self.assertEqual(self.q("SELECT count(*) FROM counter"), [(1,)])
        self.assertEqual(self.q("SELECT count(*) FROM processed"), [(1,)])

    def test_business_failure_rolls_back_the_change_and_records_the_failure(self):
        _, reply = self.send(command(payload={"n": -1}))
        self.assertEqual((reply["status"], reply["error"]), ("failure", {"code": "NEGATIVE",
                                                                         "message": "n must not be negative"}))
        self.assertEqual(self.q("SELECT count(*) FROM counter"), [(0,)])
        self.assertEqual(self.q("SELECT status, error_code, noop FROM processed"), [("failure", "NEGATIVE", 0)])
        _, again = self.send(command(payload={"n": -1}, attempt=2))
        self.assertEqual((again["status"], again["attempt"]), ("failure", 2))
        self.assertEqual(self.toy.calls["add"], 1)

    def test_transient_outcome_records_nothing_and_the_next_attempt_runs(self):
        out1, r1 = self.send(command(payload={"n": 0}))
        out2, r2 = self.send(command(payload={"n": 0}))
        self.assertEqual((r1["status"], r1["error"]["code"]), ("retry", "TRY_LATER"))
        self.assertRegex(r1["message_id"], r"^r-s-1/bump/action/1/t-[0-9a-f]{16}$")
        self.assertNotEqual(r1["message_id"], r2["message_id"])  # no stable answer, no stable id
        self.assertEqual(self.q("SELECT count(*) FROM processed"), [(0,)])
        self.assertEqual(self.q("SELECT count(*) FROM counter"), [(0,)])
        _, r3 = self.send(command(attempt=2))
        self.assertEqual(r3["status"], "success")
        self.assertEqual(self.toy.calls["add"], 3)

    def test_handler_exception_is_a_ledger_error_answered_retry(self):
        _, reply = self.send(command(payload={"n": 7, "explode": True}))
        self.assertEqual((reply["status"], reply["error"]["code"]), ("retry", "LEDGER_ERROR"))
        self.assertEqual(self.q("SELECT count(*) FROM counter"), [(0,)])
        self.assertEqual(self.q("SELECT count(*) FROM processed"), [(0,)])

    def test_compensation_undoes_what_its_action_recorded_once(self):
        self.send(command())
        _, reply = self.send(command(kind=COMPENSATION, action="counter.undo", payload={"action_output": None}))
        self.assertEqual((reply["status"], reply["output"]), ("success", {"removed": 5}))
        self.assertEqual(self.toy.undo_seen, ("s-1/bump/action", {"added": 5}))  # from the ledger, not the payload
        self.assertEqual(self.q("SELECT count(*) FROM counter"), [(0,)])
        _, again = self.send(command(kind=COMPENSATION, action="counter.undo", attempt=2))
        self.assertEqual((again["status"], again["output"]), ("success", {"removed": 5}))
        self.assertEqual(self.toy.calls["undo"], 1)

    def test_compensation_before_action_is_a_noop_that_refuses_the_late_action(self):
        _, comp = self.send(command(kind=COMPENSATION, action="counter.undo"))
        self.assertEqual((comp["status"], comp["output"]), ("success", {"noop": True}))
        self.assertEqual(self.q("SELECT kind, status, noop FROM processed"), [("compensation", "success", 1)])
        _, late = self.send(command())
        self.assertEqual((late["status"], late["error"]["code"]), ("failure", "COMPENSATED_BEFORE_ACTION"))
        self.assertEqual(late["error"]["message"],
                         "step bump of saga s-1 was already compensated; the action is refused")
        self.assertEqual(self.toy.calls, {"add": 0, "undo": 0})
        self.assertEqual(self.q("SELECT count(*) FROM counter"), [(0,)])
        self.assertEqual(self.q("SELECT status, error_code, noop FROM processed WHERE kind='action'"),
                         [("failure", "COMPENSATED_BEFORE_ACTION", 1)])

    def test_compensation_of_a_failed_or_transient_action_is_a_noop(self):
        self.send(command(saga="s-f", payload={"n": -1}))
        self.send(command(saga="s-t", payload={"n": 0}))
        for saga in ("s-f", "s-t"):
            _, comp = self.send(command(saga=saga, kind=COMPENSATION, action="counter.undo"))
            self.assertEqual(comp["output"], {"noop": True}, saga)
        self.assertEqual(self.toy.calls["undo"], 0)

    def test_malformed_commands_are_answered_when_readable_and_never_recorded(self):
        self.assertIsNone(self.p.process(b"{not json").body)
        self.assertIsNone(self.p.process(b"[1,2]").body)
        self.assertIsNone(self.p.process(b'{"type":"saga.start","message_id":"m"}').body)
        self.assertIsNone(self.p.process(b'{"type":"saga.command","saga_id":"s","step":"x"}').body)  # no message_id
        self.assertIsNone(self.p.process(b'{"a":1,"a":2}').body)  # duplicate keys: malformed, as with jansson
        doc = json.loads(command())
        del doc["action"]
        out, reply = self.send(json.dumps(doc).encode())
        self.assertEqual((reply["message_id"], reply["status"], reply["error"]),
                         ("r-s-1/bump/action/1", "failure",
                          {"code": "MALFORMED_COMMAND", "message": '"action" is missing or not a non-empty string'}))
        _, bad_attempt = self.send(command(attempt=0))
        self.assertNotIn("attempt", bad_attempt)
        self.assertEqual(bad_attempt["error"]["message"], '"attempt" must be an integer >= 1')
        _, bad_kind = self.send(command(kind="undo"))
        self.assertNotIn("kind", bad_kind)
        _, bad_payload = self.send(command(payload=[1]))
        self.assertEqual(bad_payload["error"]["message"], '"payload" must be a JSON object')
        _, bool_attempt = self.send(command(attempt=True))
        self.assertEqual(bool_attempt["error"]["code"], "MALFORMED_COMMAND")
        self.assertEqual(self.q("SELECT count(*) FROM processed"), [(0,)])
        self.assertEqual(self.p.processed, 0)

    def test_unknown_action_or_kind_is_answered_and_not_recorded(self):
        _, reply = self.send(command(action="counter.nope"))
        self.assertEqual((reply["message_id"], reply["error"]),
                         ("r-s-1/bump/action/1", {"code": "UNKNOWN_ACTION",
                                                  "message": "toy does not handle action 'counter.nope'"}))
        _, wrong_kind = self.send(command(kind=COMPENSATION, action="counter.only_action"))
        self.assertEqual(wrong_kind["error"]["code"], "UNKNOWN_ACTION")
        self.assertEqual(self.q("SELECT count(*) FROM processed"), [(0,)])
        _, ok = self.send(command())  # nothing was recorded for the key: the real action runs
        self.assertEqual(ok["status"], "success")

    def test_maximum_length_ids(self):
        saga, step = "s" * 127, "t" * 127
        out, reply = self.send(command(saga=saga, step=step, attempt=2**31 - 1))
        self.assertEqual(reply["status"], "success")
        self.assertLessEqual(len(reply["message_id"]), 281)
        _, comp = self.send(command(saga=saga, step=step, kind=COMPENSATION, action="counter.undo",
                                    attempt=2**31 - 1))
        self.assertEqual(comp["output"], {"removed": 5})
        _, retry = self.send(command(saga="r" * 127, step=step, payload={"n": 0}, attempt=2**31 - 1))
        self.assertLessEqual(len(retry["message_id"]), 300)
        self.assertEqual(out.key, saga)

    def test_reply_partition_only_when_a_partition_number(self):
        for value, want in ((3, 3), (0, 0), (-1, -1), (True, -1), ("3", -1), (2**31, -1), (None, -1)):
            self.assertEqual(parse_command(command(reply_partition=value)).reply_partition, want, value)
        doc = json.loads(command())
        del doc["reply_partition"]
        self.assertEqual(parse_command(json.dumps(doc)).reply_partition, -1)

    def test_long_error_text_is_cut_on_a_character_boundary(self):
        def fail(db, cmd):
            raise Failure("LONG", "é" * 300)
        self.p.handlers.append(Handler("counter.long", ACTION, fail))
        _, reply = self.send(command(action="counter.long"))
        self.assertLessEqual(len(reply["error"]["message"].encode()), 255)
        self.assertEqual(set(reply["error"]["message"]), {"é"})

    def test_group_commit_applies_a_batch_at_commit_only(self):
        self.p.batch_begin()
        outs = [self.p.batch_process(command(saga=f"b-{i}")) for i in range(3)]
        outs.append(self.p.batch_process(command(saga="b-0")))  # a duplicate inside the same batch
        self.assertEqual(self.q("SELECT count(*) FROM processed"), [(0,)])  # nothing visible before the commit
        self.assertTrue(self.p.batch_commit())
        self.assertTrue(outs[3].duplicate)
        self.assertEqual(outs[3].body, outs[0].body)
        self.assertEqual(self.q("SELECT count(*) FROM processed"), [(3,)])
        self.assertEqual(self.toy.calls["add"], 3)

    def test_batch_rollback_forgets_everything(self):
        self.p.batch_begin()
        self.p.batch_process(command(saga="gone"))
        self.p.batch_rollback()
        self.assertEqual(self.q("SELECT count(*) FROM processed"), [(0,)])
        self.assertEqual(self.p.processed, 0)
        _, again = self.send(command(saga="gone"))  # runs again: the rolled-back outcome was never recorded
        self.assertEqual(again["status"], "success")
        self.assertEqual(self.toy.calls["add"], 2)
        self.assertTrue(self.p.process(command(saga="gone")).duplicate)

    def test_seed_only_into_an_empty_ledger(self):
        seen = []
        self.p.seed_fn = lambda db, data: seen.append(data)
        self.p.seed({"x": 1})
        self.p.seed({"x": 2})  # already seeded: ignored
        self.assertEqual(seen, [{"x": 1}])
        self.assertEqual(len(self.q("SELECT value FROM participant_meta WHERE key='seeded_at'")), 1)

    def test_an_open_connection_as_the_ledger(self):
        path = os.path.join(self.tmp.name, "own.db")
        conn = sqlite3.connect(path)  # the default isolation level: the library takes the transactions over
        toy = ToyParticipant.__new__(ToyParticipant)
        toy.calls, toy.undo_seen = {"add": 0, "undo": 0}, None
        p = Participant("toy", [Handler("counter.add", ACTION, toy.add)], conn, schema=SCHEMA)
        out = p.process(command())
        self.assertEqual(json.loads(out.body)["status"], "success")
        self.assertTrue(p.process(command()).duplicate)
        with sqlite3.connect(path) as other:
            self.assertEqual(other.execute("SELECT count(*) FROM processed").fetchall(), [(1,)])
        p.close()

    def test_fault_injection(self):
        self.p.faults = Faults(fail_rate=1.0)
        _, failed = self.send(command(saga="f"))
        self.assertEqual(failed["error"]["code"], "INJECTED_FAILURE")
        _, comp = self.send(command(saga="f", kind=COMPENSATION, action="counter.undo"))
        self.assertEqual(comp["output"], {"noop": True})  # compensations never fail on purpose
        self.p.faults = Faults(retry_rate=1.0)
        _, retry = self.send(command(saga="r"))
        self.assertEqual(retry["error"]["code"], "INJECTED_TRANSIENT")
        self.p.faults = Faults(no_reply_rate=1.0)
        out = self.p.process(command(saga="n"))
        self.assertEqual((out.body, out.suppressed), (None, True))
        self.assertEqual(self.q("SELECT saga_id, noop FROM processed WHERE kind='action' ORDER BY saga_id"),
                         [("f", 1), ("n", 0)])  # the suppressed reply's outcome is committed
        self.assertEqual(self.toy.calls["add"], 1)

    def test_crash_after_aborts_once_committed(self):
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_participant as t; from sagad_participant "
                "import Faults; toy = t.ToyParticipant(sys.argv[2]); toy.p.faults = Faults(crash_after=2); "
                "[toy.p.process(t.command(saga=f'c-{i}')) for i in range(3)]")
        here = os.path.dirname(os.path.abspath(__file__))
        run = subprocess.run([sys.executable, "-c", code, here, self.path], capture_output=True, timeout=60)
        self.assertEqual(run.returncode, -signal.SIGABRT)
        self.assertEqual(self.q("SELECT saga_id FROM processed ORDER BY saga_id"), [("c-0",), ("c-1",)])

    def test_ledger_reopened_keeps_its_memory(self):
        self.send(command(kind=COMPENSATION, action="counter.undo"))
        self.p.close()
        self.toy = ToyParticipant(self.path)
        self.p = self.toy.p
        _, late = self.send(command())
        self.assertEqual(late["error"]["code"], "COMPENSATED_BEFORE_ACTION")
        self.assertEqual(self.q("PRAGMA journal_mode"), [("wal",)])


if __name__ == "__main__":
    unittest.main()

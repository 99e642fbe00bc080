"""The participant's decision for one command and the ledger transaction around it (no Kafka).

Same semantics as workers/lib (participant.c, participant_ledger.c); the contract:
- One local transaction: the handler's changes and a `processed` row (keyed by idempotency_key,
  holding the reply JSON) commit together. A batch is one transaction with a savepoint per command
  and one per handler call (group commit: one fsync for many commands).
- A duplicate (its idempotency_key is in `processed`, any attempt) runs nothing: the stored reply is
  re-sent with this command's attempt, in_reply_to and id r-<key>/<attempt>.
- A compensation whose action did not succeed here (never ran, failed, or only got transient
  outcomes) is a successful no-op (output {"noop": true}) recorded with noop = 1; an action that
  arrives after its compensation is refused (failure COMPENSATED_BEFORE_ACTION, recorded, noop = 1)
  and runs nothing. Pairing is by (saga_id, step).
- A handler returns its output (success), raises Failure (business failure: its changes are rolled
  back, the failure is recorded) or Retry (transient: everything rolled back, nothing recorded, the
  next attempt runs again). Any other exception is a ledger error: rolled back, answered retry
  LEDGER_ERROR.
- A malformed command runs nothing and is not recorded; it is answered failure MALFORMED_COMMAND
  (UNKNOWN_ACTION for an action or compensation without a handler) when it claims to be a
  saga.command and names message_id, saga_id, step and reply_to.
"""
import dataclasses
import datetime
import logging
import os
import random
import sqlite3
import sys
import time

from . import command as C

log = logging.getLogger("sagad_participant")

LIBRARY_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS processed ("
    "  idempotency_key TEXT PRIMARY KEY,"
    "  saga_id TEXT NOT NULL,"
    "  step TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('action','compensation')),"
    "  action TEXT NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('success','failure')),"
    "  error_code TEXT,"
    "  noop INTEGER NOT NULL DEFAULT 0,"
    "  command_message_id TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  reply TEXT NOT NULL,"
    "  processed_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS processed_saga_step ON processed(saga_id, step, kind)",
    "CREATE TABLE IF NOT EXISTS participant_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]


class Failure(Exception):
    """Raised by a handler: the business change will never succeed (declined, out of stock,
    invalid payload). Its changes are rolled back; the failure is recorded and answered."""

    def __init__(self, code, message=""):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class Retry(Exception):
    """Raised by a handler: try later (a dependency is down). Rolled back, nothing recorded."""

    def __init__(self, code, message=""):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


@dataclasses.dataclass
class Handler:
    """fn(db, cmd) -> output dict (or None for {}), runs inside the library's transaction: change
    your tables through db, never BEGIN/COMMIT/ROLLBACK."""
    action: str
    kind: str  # command.ACTION or command.COMPENSATION
    fn: object


@dataclasses.dataclass
class Faults:
    """Fault injection for tests, as the C workers' --fail-rate ... flags."""
    fail_rate: float = 0.0
    retry_rate: float = 0.0
    no_reply_rate: float = 0.0
    delay_ms: int = 0
    crash_after: int = 0
    seed: int = 0


@dataclasses.dataclass
class Reply:
    """The reply to send for one command: body None means nothing to send."""
    body: str = None
    topic: str = None
    key: str = None
    partition: int = -1
    message_id: str = None
    status: str = None
    duplicate: bool = False     # a stored reply re-sent, nothing ran
    suppressed: bool = False    # fault injection dropped the reply
    applied: bool = False       # the outcome is in the batch (counted); False: malformed, unknown, ledger error


class LedgerError(Exception):
    """The ledger (not the command) failed: nothing of the command is applied."""


class UnknownAction(Exception):
    """No handler for the command's action and kind: answered failure UNKNOWN_ACTION, not recorded."""


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def open_sqlite(path):
    """The ledger connection the C library opens: WAL, synchronous=FULL, transactions by hand."""
    db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    return db


class Participant:
    """Processes saga commands against a ledger.

    name: for logs ("notification"); handlers: Handler list; db: a path (SQLite, opened as the C
    library does) or an open DB-API connection, the ledger's own (sqlite3: set to autocommit mode,
    the library issues the transactions; another driver: it must support savepoints, and its
    paramstyle qmark or format is honoured); schema: your CREATE ... IF NOT EXISTS statements;
    seed: fn(db, data) loading seed data into an empty ledger."""

    def __init__(self, name, handlers, db, schema=(), seed=None, faults=None):
        self.name, self.handlers, self.seed_fn = name, list(handlers), seed
        self.db = open_sqlite(db) if isinstance(db, (str, os.PathLike)) else db
        self.is_sqlite = isinstance(self.db, sqlite3.Connection)
        if self.is_sqlite:
            self.db.isolation_level = None  # the library issues BEGIN, the savepoints and COMMIT itself
        module = sys.modules.get(type(self.db).__module__.split(".")[0])
        style = "qmark" if self.is_sqlite else getattr(module, "paramstyle", "qmark")
        self.placeholder = "%s" if style in ("format", "pyformat") else "?"
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed or None)
        self.processed = 0      # committed commands, duplicates included
        self.batch_count = 0
        self.in_batch = False
        self.batch_broken = False
        self._begin()
        for sql in list(LIBRARY_SCHEMA) + ([schema] if isinstance(schema, str) else list(schema)):
            self.sql(sql)
        self._commit()

    # ---- SQL -----------------------------------------------------------------------------
    def sql(self, text, params=()):
        """Runs one library statement; returns all rows."""
        cur = self.db.cursor()
        cur.execute(text.replace("?", self.placeholder), params)
        rows = cur.fetchall() if cur.description else []
        cur.close()
        return rows

    def _begin(self):
        if self.is_sqlite:
            self.db.execute("BEGIN IMMEDIATE")  # a DB-API connection begins by itself

    def _commit(self):
        self.db.commit()

    def _rollback(self):
        try:
            self.db.rollback()
        except Exception:  # noqa: BLE001 - nothing left to roll back
            pass

    def _savepoint(self, verb, name):
        try:
            self.sql({"begin": "SAVEPOINT {}", "rollback": "ROLLBACK TO SAVEPOINT {}",
                      "release": "RELEASE SAVEPOINT {}"}[verb].format(name))
        except Exception as e:
            raise LedgerError(f"{verb} savepoint {name}: {e}") from e

    def close(self):
        if self.in_batch:
            self.batch_rollback()
        self.db.close()

    # ---- seed ----------------------------------------------------------------------------
    def seed(self, data):
        """Loads seed data if the ledger was never seeded and has processed nothing."""
        if self.sql("SELECT 1 FROM participant_meta WHERE key='seeded_at'"):
            log.info("ledger already seeded: seed data ignored")
            return
        if self.sql("SELECT 1 FROM processed LIMIT 1"):
            log.warning("ledger has processed commands: seed data ignored (seed only loads into an empty ledger)")
            return
        if not isinstance(data, dict):
            raise ValueError("seed data must be a JSON object")
        self._begin()
        try:
            if self.seed_fn:
                self.seed_fn(self.db, data)
            self.sql("INSERT INTO participant_meta(key, value) VALUES('seeded_at', ?)", (now_rfc3339(),))
            self._commit()
        except BaseException:
            self._rollback()
            raise
        log.info("ledger seeded")

    # ---- the processed table -------------------------------------------------------------
    def _record(self, cmd, status, output, code, message, noop):
        reply = C.build_reply(cmd, C.recorded_reply_id(cmd), status, output, code, message)
        self.sql("INSERT INTO processed(idempotency_key, saga_id, step, kind, action, status, error_code, noop,"
                 " command_message_id, attempt, reply, processed_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                 (cmd.idempotency_key, cmd.saga_id, cmd.step, cmd.kind, cmd.action, status,
                  None if status == C.SUCCESS else code, int(noop), cmd.message_id, cmd.attempt,
                  C.dumps(reply), now_rfc3339()))
        return reply

    def _find_handler(self, cmd):
        other_kind = False
        for h in self.handlers:
            if h.action == cmd.action:
                if h.kind == cmd.kind:
                    return h, False
                other_kind = True
        return None, other_kind

    def _decide(self, cmd):
        """The outcome of one valid command, inside its savepoint: (reply dict, status, duplicate)."""
        ctx = f"saga {cmd.saga_id} step {cmd.step}:"
        row = self.sql("SELECT reply, status FROM processed WHERE idempotency_key = ?", (cmd.idempotency_key,))
        if row:
            log.info("%s duplicate %s %s (attempt %d): stored %s reply re-sent, nothing ran",
                     ctx, cmd.kind, cmd.action, cmd.attempt, row[0][1])
            reply = C.restamp_stored(cmd, row[0][0])
            return reply, (C.SUCCESS if reply.get("status") == C.SUCCESS else C.FAILURE), True
        handler, other_kind = self._find_handler(cmd)
        if handler is None:
            log.error("%s unknown %s '%s' (message %s)%s", ctx, cmd.kind, cmd.action, cmd.message_id,
                      ": registered with the other kind" if other_kind else "")
            raise UnknownAction(C.cut_utf8(f"{self.name} does not handle {cmd.kind} '{cmd.action}'",
                                           C.MESSAGE_MAX_BYTES))
        status, output, code, message, noop = C.SUCCESS, None, None, None, False
        if cmd.kind == C.ACTION:
            if self.sql("SELECT 1 FROM processed WHERE saga_id = ? AND step = ? AND kind = 'compensation' LIMIT 1",
                        (cmd.saga_id, cmd.step)):
                log.warning("%s late action %s (attempt %d) after its compensation: refused, nothing ran",
                            ctx, cmd.action, cmd.attempt)
                status, code, noop = C.FAILURE, "COMPENSATED_BEFORE_ACTION", True
                message = f"step {cmd.step} of saga {cmd.saga_id} was already compensated; the action is refused"
        else:
            sib = self.sql("SELECT idempotency_key, reply, status FROM processed"
                           " WHERE saga_id = ? AND step = ? AND kind = 'action' LIMIT 1", (cmd.saga_id, cmd.step))
            if not sib or sib[0][2] != C.SUCCESS:
                log.info("%s compensation %s: the action %s here, no-op recorded", ctx, cmd.action,
                         "never ran" if not sib else "did not succeed")
                noop = True
            else:
                cmd.action_key = sib[0][0]
                cmd.action_output = C.loads(sib[0][1]).get("output")
        if not noop:
            if self._roll(self.faults.retry_rate):
                status, code = C.RETRY, "INJECTED_TRANSIENT"
                message = "fault injection: transient failure (--retry-rate)"
            elif cmd.kind == C.ACTION and self._roll(self.faults.fail_rate):
                status, code, noop = C.FAILURE, "INJECTED_FAILURE", True
                message = "fault injection: business failure (--fail-rate)"
            else:
                status, output, code, message = self._run_handler(handler, cmd)
        if status == C.RETRY:
            log.warning("%s %s %s attempt %d: transient %s: %s (not recorded)", ctx, cmd.kind, cmd.action,
                        cmd.attempt, code, message)
            return C.build_reply(cmd, C.transient_reply_id(cmd), C.RETRY, None, code, message), C.RETRY, False
        if status == C.SUCCESS and noop:
            output = {"noop": True}
        reply = self._record(cmd, status, output, code, message, noop)
        log.log(logging.DEBUG if status == C.SUCCESS else logging.INFO, "%s %s %s attempt %d: %s%s%s",
                ctx, cmd.kind, cmd.action, cmd.attempt, status, "" if status == C.SUCCESS else " " + code,
                " (handler not run)" if noop else "")
        return reply, status, False

    def _run_handler(self, handler, cmd):
        """Runs the handler in the savepoint "handler": (status, output, code, message)."""
        self._savepoint("begin", "handler")
        try:
            output = handler.fn(self.db, cmd)
        except (Failure, Retry) as outcome:
            self._savepoint("rollback", "handler")
            self._savepoint("release", "handler")
            status = C.FAILURE if isinstance(outcome, Failure) else C.RETRY
            return (status, None, C.cut_utf8(outcome.code or "UNSPECIFIED", C.CODE_MAX_BYTES),
                    C.cut_utf8(outcome.message, C.MESSAGE_MAX_BYTES))
        except Exception as e:
            log.exception("saga %s step %s: %s %s: handler error", cmd.saga_id, cmd.step, cmd.kind, cmd.action)
            raise LedgerError(f"handler {handler.action}: {e}") from e
        if output is not None and not isinstance(output, dict):
            raise LedgerError(f"handler {handler.action} returned {type(output).__name__}, not a dict")
        self._savepoint("release", "handler")
        return C.SUCCESS, output, None, None

    def _roll(self, rate):
        return rate > 0 and self.rng.random() < rate

    # ---- one command in the open batch ---------------------------------------------------
    def batch_process(self, data, where="(direct)"):
        """Processes one command's bytes in the open batch; returns a Reply (body None: nothing to send)."""
        try:
            cmd = C.parse_command(data)
        except C.MalformedCommand as e:
            log.error("malformed command at %s skipped: %s", where, e)
            return self._unrecorded(e.parsed, C.FAILURE, "MALFORMED_COMMAND", C.cut_utf8(str(e), 299))
        try:
            if not self.in_batch or self.batch_broken:
                raise LedgerError("no open ledger transaction")
            if self.faults.delay_ms > 0:
                time.sleep(self.faults.delay_ms / 1000)
            self._savepoint("begin", "cmd")
            try:
                reply, status, duplicate = self._decide(cmd)
            except UnknownAction as e:  # nothing was written
                self._savepoint("release", "cmd")
                return self._unrecorded(cmd, C.FAILURE, "UNKNOWN_ACTION", str(e))
            except Exception:
                self._savepoint("rollback", "cmd")
                self._savepoint("release", "cmd")
                raise
            self._savepoint("release", "cmd")
        except Exception as e:  # the ledger failed: nothing applied, the next delivery runs again
            if self.is_sqlite and not self.db.in_transaction:
                self.batch_broken = True  # SQLite rolled the whole batch back on its own
            log.error("command %s at %s: %s; nothing applied, replying retry", cmd.message_id, where, e)
            return self._unrecorded(cmd, C.RETRY, "LEDGER_ERROR", "the participant's ledger failed")
        self.processed += 1
        self.batch_count += 1
        out = self._reply(cmd, reply, status)
        out.duplicate, out.applied = duplicate, True
        if self._roll(self.faults.no_reply_rate):
            log.warning("fault injection: reply %s not sent (--no-reply-rate)", out.message_id)
            out.body, out.suppressed = None, True
        return out

    def _reply(self, cmd, reply, status):
        return Reply(body=C.dumps(reply), topic=cmd.reply_to, key=cmd.saga_id, partition=cmd.reply_partition,
                     message_id=reply["message_id"], status=status)

    def _unrecorded(self, cmd, status, code, message):
        if cmd is None:
            return Reply()
        mid = C.transient_reply_id(cmd) if status == C.RETRY else C.malformed_reply_id(cmd)
        return self._reply(cmd, C.build_reply(cmd, mid, status, None, code, message), status)

    # ---- group commit --------------------------------------------------------------------
    def batch_begin(self):
        if self.in_batch:
            raise RuntimeError("a batch is already open")
        self._begin()
        self.in_batch, self.batch_broken, self.batch_count = True, False, 0

    def batch_rollback(self):
        if not self.in_batch:
            return
        self._rollback()
        self.processed -= self.batch_count
        self.in_batch, self.batch_broken, self.batch_count = False, False, 0

    def batch_commit(self):
        """Commits the batch; False when it failed and was rolled back (process its commands again)."""
        if not self.in_batch:
            raise RuntimeError("no batch is open")
        try:
            if self.batch_broken:
                raise LedgerError("the transaction was rolled back by the database")
            self._commit()
        except Exception as e:
            log.error("ledger commit failed: %s; batch rolled back", e)
            self.batch_rollback()
            return False
        self.in_batch, self.batch_count = False, 0
        if 0 < self.faults.crash_after <= self.processed:
            log.error("fault injection: abort() after %d commands (--crash-after)", self.processed)
            os.abort()
        return True

    def process(self, data, where="(direct)"):
        """One command in its own transaction; returns its Reply (what participant_process does)."""
        self.batch_begin()
        out = self.batch_process(data, where)
        if not self.batch_commit() and out.applied:
            # the outcome is lost with the transaction: answer transient so sagad asks again
            return self._unrecorded(C.parse_command(data), C.RETRY, "LEDGER_ERROR",
                                    "the participant's ledger commit failed")
        return out

#!/usr/bin/env python3
"""sagaconform: checks that a saga participant keeps docs/PROTOCOL.md, over Kafka only.

It plays sagad: it produces saga.command messages to the participant's command
topic and reads the replies on a reply topic of its own, rule by rule, each rule
with fresh saga ids. Optionally it asks the participant's ledger how many times
an action was applied (--applied-sql / --applied-cmd) and kills and restarts the
participant (--kill-cmd / --restart-cmd). One line per rule, PASS, FAIL or SKIP;
exit status 0 when no rule failed, 1 when one did, 2 on a usage or setup error.
docs/PARTICIPANTS.md, "Conformance kit".
"""
import argparse
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# Limits of docs/PROTOCOL.md, "Limits".
SAGA_ID_MAX = 127
STEP_MAX = 127
MESSAGE_ID_MAX = 400
# Printable ASCII without '/' (the saga id alphabet), hostile characters first:
# quotes, backslash, JSON and shell metacharacters.
HOSTILE_CHARS = "\"\\'$%`{}[]<>|&;*?#~!=+^,:@() "[:-1]


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java's Utils.murmur2; librdkafka's murmur2_random), as a positive int."""
    length = len(data)
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    base = length - rest
    if rest == 3:
        h ^= data[base + 2] << 16
    if rest >= 2:
        h ^= data[base + 1] << 8
    if rest >= 1:
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h & 0x7FFFFFFF


def printable_id(s: str, allow_slash: bool) -> bool:
    return len(s) > 0 and all(0x21 <= ord(c) <= 0x7E and (allow_slash or c != "/") for c in s)


def render(value, saga_id, step):
    """${saga_id} and ${step} in the strings of a payload become this command's."""
    if isinstance(value, str):
        return value.replace("${saga_id}", saga_id).replace("${step}", step)
    if isinstance(value, list):
        return [render(v, saga_id, step) for v in value]
    if isinstance(value, dict):
        return {k: render(v, saga_id, step) for k, v in value.items()}
    return value


def short(text, n=90):
    text = str(text)
    return text if len(text) <= n else text[: n - 3] + "..."


class Reply:
    def __init__(self, msg):
        self.partition = msg.partition()
        self.offset = msg.offset()
        key = msg.key()
        self.key = key.decode("utf-8", "replace") if key is not None else None
        self.headers = {}
        for k, v in msg.headers() or []:
            self.headers[k] = v.decode("utf-8", "replace") if v is not None else None
        self.raw = msg.value() or b""
        try:
            self.body = json.loads(self.raw)
        except ValueError:
            self.body = None
        b = self.body if isinstance(self.body, dict) else {}
        self.saga_id = b.get("saga_id")
        self.in_reply_to = b.get("in_reply_to")
        self.status = b.get("status")
        self.message_id = b.get("message_id")

    def summary(self):
        if not isinstance(self.body, dict):
            return "not a JSON object: " + short(self.raw)
        s = str(self.status)
        err = self.body.get("error")
        if self.status != "success" and isinstance(err, dict):
            s += " " + str(err.get("code"))
        return s


class Kit:
    def __init__(self, a):
        self.a = a
        self.run = secrets.token_hex(3)
        self.definition = a.definition
        common = {"bootstrap.servers": a.bootstrap, "broker.address.family": "v4"}
        extra = dict(kv.split("=", 1) for kv in a.kafka_props)
        self.producer = Producer({**common, "enable.idempotence": True, "acks": "all", "linger.ms": 0,
                                  "partitioner": "murmur2_random", **extra})
        self._ensure_reply_topic(common)
        md = self.producer.list_topics(a.reply_topic, timeout=15)
        t = md.topics.get(a.reply_topic)
        if t is None or t.error is not None or not t.partitions:
            raise SystemExit(f"sagaconform: reply topic {a.reply_topic} not available: {t.error if t else 'missing'}")
        self.reply_partitions = len(t.partitions)
        self.consumer = Consumer({**common, "group.id": f"sagaconform-{self.run}", "enable.auto.commit": False,
                                  "isolation.level": "read_committed", "fetch.wait.max.ms": 10,
                                  "enable.partition.eof": False, **extra})
        assignment = []
        for p in range(self.reply_partitions):
            assignment.append(TopicPartition(a.reply_topic, p, self._high_watermark(p)))
        self.consumer.assign(assignment)
        self.lock = threading.Condition()
        self.replies = []  # every reply read, in arrival order
        self.sent_mids = {}  # saga id -> message ids of the commands sent for it
        self.stop = False
        self.poller = threading.Thread(target=self._poll, daemon=True)
        self.poller.start()

    def _ensure_reply_topic(self, common):
        """A missing reply topic is created: by the broker's auto-creation (the dev broker can do
        only that), else with CreateTopics and --reply-partitions."""
        def exists(timeout):
            t = self.producer.list_topics(self.a.reply_topic, timeout=timeout).topics.get(self.a.reply_topic)
            return t is not None and t.error is None and len(t.partitions) > 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if exists(5):
                return
            time.sleep(0.2)
        fut = AdminClient(common).create_topics([NewTopic(self.a.reply_topic, self.a.reply_partitions, 1)])
        try:
            fut[self.a.reply_topic].result(15)
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise SystemExit(f"sagaconform: cannot create reply topic {self.a.reply_topic}: {e}")
        except Exception as e:
            raise SystemExit(f"sagaconform: cannot create reply topic {self.a.reply_topic}: {type(e).__name__} {e}")

    def _high_watermark(self, p):
        """Where replies start: the partition's end now. A topic just created may have no leader
        for a moment (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE): asked again."""
        deadline = time.monotonic() + 30
        while True:
            try:
                return self.consumer.get_watermark_offsets(TopicPartition(self.a.reply_topic, p), timeout=15)[1]
            except KafkaException as e:
                if time.monotonic() >= deadline or not e.args[0].retriable() and \
                        e.args[0].code() not in (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE):
                    raise SystemExit(f"sagaconform: reading the end of {self.a.reply_topic}[{p}]: {e}")
                time.sleep(0.3)

    def _poll(self):
        while not self.stop:
            m = self.consumer.poll(0.1)
            if m is None or m.error():
                continue
            with self.lock:
                self.replies.append(Reply(m))
                self.lock.notify_all()

    def close(self):
        self.stop = True
        self.poller.join(2)
        self.consumer.close()

    # ---- commands -----------------------------------------------------
    def saga_id(self, rule, n=None):
        return f"cf-{self.run}-{rule}" + (f"-{n}" if n is not None else "")

    def command(self, saga_id, kind, attempt, step=None, action=None, payload=None, action_output=None,
                reply_partition="murmur2"):
        step = step or self.a.step
        if action is None:
            action = self.a.action if kind == "action" else self.a.compensation
        if payload is None:
            src = self.a.payload if kind == "action" else (self.a.compensation_payload or self.a.payload)
            payload = render(json.loads(src), saga_id, step)
            if kind == "compensation":
                payload["action_output"] = action_output
        if reply_partition == "murmur2":
            reply_partition = murmur2(saga_id.encode()) % self.reply_partitions
        deadline = datetime.now(timezone.utc) + timedelta(seconds=30)
        return {"type": "saga.command", "message_id": f"{saga_id}/{step}/{kind}/{attempt}", "saga_id": saga_id,
                "definition": self.definition, "step": step, "kind": kind, "action": action, "attempt": attempt,
                "idempotency_key": f"{saga_id}/{step}/{kind}", "payload": payload, "reply_to": self.a.reply_topic,
                "reply_partition": reply_partition,
                "deadline": deadline.strftime("%Y-%m-%dT%H:%M:%S.") + f"{deadline.microsecond // 1000:03d}Z"}

    def send(self, value, key):
        """value: a command (dict) or raw bytes; keyed by the saga id, with sagad's headers."""
        body = value if isinstance(value, bytes) else json.dumps(value).encode()
        if isinstance(value, dict) and isinstance(value.get("message_id"), str):
            self.sent_mids.setdefault(key, set()).add(value["message_id"])
        headers = [("saga_id", key.encode()), ("content-type", b"application/json"),
                   ("traceparent", f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01".encode())]
        self.producer.produce(self.a.topic, value=body, key=key.encode(), headers=headers)
        self.producer.flush(15)
        return headers[2][1].decode()

    # ---- replies -------------------------------------------------------
    def wait_replies(self, saga_id, n, mids=(), timeout=None):
        """The first n replies for saga_id, waiting up to timeout. A reply belongs to the saga by its
        saga_id, its Kafka key or its in_reply_to (one of the saga's commands): a reply with a
        mangled saga id is still found, and reported as wrong rather than as missing."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.a.reply_timeout)
        mids = set(mids) | self.sent_mids.get(saga_id, set())
        with self.lock:
            while True:
                got = [r for r in self.replies if r.saga_id == saga_id or r.key == saga_id or r.in_reply_to in mids]
                if len(got) >= n or time.monotonic() >= deadline:
                    return got
                self.lock.wait(max(0.01, min(0.2, deadline - time.monotonic())))

    # ---- the ledger --------------------------------------------------------
    def applied(self, saga_id):
        """How many times the participant applied the action of saga_id; None when not asked."""
        if self.a.applied_sql:
            db, sql = self.a.applied_sql
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
            try:
                row = con.execute(sql, (saga_id,)).fetchone()
            finally:
                con.close()
            return int(row[0]) if row and row[0] is not None else 0
        if self.a.applied_cmd:
            # $SAGA_ID_SQL: the id as an SQL string literal ('' for '), for a query in the command
            env = {**os.environ, "SAGA_ID": saga_id, "SAGA_ID_SQL": "'" + saga_id.replace("'", "''") + "'"}
            out = subprocess.run(["sh", "-c", self.a.applied_cmd, "sh", saga_id], env=env,
                                 capture_output=True, text=True, timeout=30)
            if out.returncode != 0:
                raise RuntimeError(f"--applied-cmd exited {out.returncode}: {short(out.stderr.strip())}")
            return int(out.stdout.strip().splitlines()[-1])
        return None

    def shell(self, what, cmd):
        out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=self.a.restart_timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{what} exited {out.returncode}: {short(out.stderr.strip() or out.stdout.strip(), 200)}")


class Rule:
    """One rule's outcome: what was sent, what came back, what was wrong."""

    def __init__(self, kit, name):
        self.kit, self.name = kit, name
        self.sent, self.answers, self.problems, self.notes, self.applied_counts = [], [], [], [], []
        self.skipped = None

    def fail(self, text):
        self.problems.append(text)

    def note(self, text):
        self.notes.append(text)

    def send(self, cmd, label=None):
        tp = self.kit.send(cmd, cmd["saga_id"])
        self.sent.append(label or f"{cmd['kind']} attempt {cmd['attempt']}")
        return tp

    def expect(self, cmd, n, label, status=None, code=None, traceparent=None, timeout=None):
        """Waits for the n-th reply of cmd's saga; checks it answers cmd. Returns the reply or None."""
        saga_id = cmd["saga_id"]
        got = self.kit.wait_replies(saga_id, n, mids={cmd["message_id"]}, timeout=timeout)
        if len(got) < n:
            self.fail(f"{label}: no reply within {self.kit.a.reply_timeout:g} s of sending")
            self.answers.append(f"{label}: none")
            return None
        r = got[n - 1]
        self.answers.append(f"{label}: {r.summary()}")
        check_reply(self, r, cmd, label, status, code, traceparent)
        return r

    def applied(self, saga_id, want, label):
        try:
            n = self.kit.applied(saga_id)
        except Exception as e:  # the ledger query is the user's: say what failed
            self.fail(f"ledger query for {label}: {e}")
            return
        if n is None:
            return
        self.applied_counts.append(f"{label} {n}".strip())
        if n != want:
            self.fail(f"{label}: action applied {n} times, expected {want}")

    def line(self):
        if self.skipped:
            return f"SKIP {self.name}: {self.skipped}"
        verdict = "FAIL" if self.problems else "PASS"
        parts = [f"sent {', '.join(self.sent)}", f"answered {'; '.join(self.answers) or 'nothing'}"]
        parts.append("applied " + (", ".join(self.applied_counts) if self.applied_counts else "not checked (no ledger query)"))
        if self.problems:
            parts.append("PROBLEMS: " + "; ".join(self.problems))
        if self.notes:
            parts.append("notes: " + "; ".join(self.notes))
        return f"{verdict} {self.name}: " + " | ".join(parts)


def check_reply(rule, r, cmd, label, status=None, code=None, traceparent=None):
    """The reply r against docs/PROTOCOL.md, "saga.reply": MUSTs fail the rule, SHOULDs are notes."""
    b = r.body
    if not isinstance(b, dict):
        rule.fail(f"{label}: reply is not a JSON object")
        return
    if b.get("type") != "saga.reply":
        rule.fail(f"{label}: type {b.get('type')!r}, expected 'saga.reply'")
    mid = b.get("message_id")
    if not isinstance(mid, str) or not printable_id(mid, True) or len(mid) > MESSAGE_ID_MAX:
        rule.fail(f"{label}: message_id {short(repr(mid))} is not 1-{MESSAGE_ID_MAX} bytes of printable ASCII")
    for field in ("saga_id", "step"):
        if b.get(field) != cmd[field]:
            rule.fail(f"{label}: {field} {short(repr(b.get(field)))} (len {len(str(b.get(field)))}), "
                      f"expected {short(repr(cmd[field]))} (len {len(cmd[field])})")
    if "kind" in cmd and cmd["kind"] in ("action", "compensation") and b.get("kind") != cmd["kind"]:
        rule.fail(f"{label}: kind {b.get('kind')!r}, expected {cmd['kind']!r}")
    if isinstance(cmd.get("attempt"), int) and (b.get("attempt") != cmd["attempt"] or isinstance(b.get("attempt"), bool)):
        rule.fail(f"{label}: attempt {b.get('attempt')!r}, expected {cmd['attempt']}")
    if b.get("in_reply_to") != cmd.get("message_id"):
        rule.note(f"{label}: in_reply_to {short(repr(b.get('in_reply_to')))} is not the command's message_id (SHOULD)")
    st = b.get("status")
    if st not in ("success", "failure", "retry"):
        rule.fail(f"{label}: status {st!r} is not success, failure or retry")
    elif status is not None and st not in (status if isinstance(status, tuple) else (status,)):
        rule.fail(f"{label}: status {st}{' ' + str((b.get('error') or {}).get('code')) if st != 'success' else ''}, expected {status}")
    if st == "success" and not isinstance(b.get("output"), dict):
        rule.fail(f"{label}: a success reply's output must be a JSON object, got {short(repr(b.get('output')))}")
    if st in ("failure", "retry"):
        err = b.get("error")
        if not isinstance(err, dict) or not isinstance(err.get("code"), str) or not err.get("code"):
            rule.fail(f"{label}: a {st} reply needs error {{code, message}}, got {short(repr(err))}")
        elif code is not None and err["code"] != code:
            rule.fail(f"{label}: error.code {err['code']!r}, expected {code!r}")
        elif err["code"] != err["code"].upper():
            rule.note(f"{label}: error.code {err['code']!r} is not upper case (SHOULD)")
    # Kafka record: key and partition are MUSTs, headers SHOULDs.
    if r.key != cmd["saga_id"]:
        rule.fail(f"{label}: Kafka key {short(repr(r.key))}, expected the saga id")
    rp = cmd.get("reply_partition")
    want_p = rp if isinstance(rp, int) and 0 <= rp < rule.kit.reply_partitions else \
        murmur2(cmd["saga_id"].encode()) % rule.kit.reply_partitions
    if r.partition != want_p:
        rule.fail(f"{label}: reply on partition {r.partition}, expected {want_p} "
                  f"({'reply_partition' if want_p == rp else 'murmur2 of the saga id: reply_partition is not a partition of the topic'})")
    if r.headers.get("saga_id") != cmd["saga_id"]:
        rule.note(f"{label}: header saga_id missing or different (SHOULD)")
    if r.headers.get("content-type") != "application/json":
        rule.note(f"{label}: header content-type is not application/json (SHOULD)")
    if traceparent and r.headers.get("traceparent") != traceparent:
        rule.note(f"{label}: the command's traceparent header was not copied (SHOULD)")


# ---- the rules ---------------------------------------------------------------

def rule_basic(rule):
    """An action, then its compensation: success replies, every field echoed, applied once."""
    k = rule.kit
    s = k.saga_id("basic")
    a1 = k.command(s, "action", 1)
    tp = rule.send(a1)
    r = rule.expect(a1, 1, "action", status="success", traceparent=tp)
    rule.applied(s, 1, "after the action:")
    if k.a.compensation and r is not None:
        c1 = k.command(s, "compensation", 1, action_output=(r.body or {}).get("output"))
        tp = rule.send(c1)
        rule.expect(c1, 2, "compensation", status="success", traceparent=tp)
        rule.applied(s, 1, "after the compensation:")


def rule_duplicate(rule):
    """The same command twice (same attempt): the same reply twice, applied once."""
    k = rule.kit
    s = k.saga_id("duplicate")
    a1 = k.command(s, "action", 1)
    rule.send(a1)
    rule.send(a1, "the same action again")
    r1 = rule.expect(a1, 1, "first", status="success")
    r2 = rule.expect(a1, 2, "second", status="success")
    if r1 is not None and r2 is not None and isinstance(r1.body, dict) and isinstance(r2.body, dict):
        for f in ("message_id", "status", "output", "error"):
            if r1.body.get(f) != r2.body.get(f):
                rule.fail(f"the duplicate's reply differs in {f}: {short(repr(r1.body.get(f)), 60)} "
                          f"then {short(repr(r2.body.get(f)), 60)} (a duplicate gets the stored reply, same message_id)")
    rule.applied(s, 1, "")


def rule_new_attempt(rule):
    """Attempt 2 of a step already done: answered for attempt 2 with the stored outcome and a new id, applied once."""
    k = rule.kit
    s = k.saga_id("attempt")
    a1, a2 = k.command(s, "action", 1), k.command(s, "action", 2)
    rule.send(a1)
    r1 = rule.expect(a1, 1, "attempt 1", status="success")
    rule.send(a2)
    r2 = rule.expect(a2, 2, "attempt 2", status="success")
    if r1 is not None and r2 is not None and isinstance(r1.body, dict) and isinstance(r2.body, dict):
        if r1.body.get("message_id") == r2.body.get("message_id"):
            rule.fail("attempt 2's reply has attempt 1's message_id (sagad's dedup would drop it)")
        if r1.body.get("output") != r2.body.get("output"):
            rule.fail("attempt 2's output differs from attempt 1's (the stored outcome is re-sent)")
    rule.applied(s, 1, "")


def rule_compensation_first(rule):
    """A compensation whose action never came: success no-op that leaves its mark; the late action is refused."""
    k = rule.kit
    if not k.a.compensation:
        rule.skipped = "no --compensation"
        return
    s = k.saga_id("compfirst")
    c1 = k.command(s, "compensation", 1, action_output=None)
    rule.send(c1, "compensation attempt 1 (no action before)")
    rule.expect(c1, 1, "compensation", status="success")
    a1 = k.command(s, "action", 1)
    rule.send(a1, "the late action attempt 1")
    rule.expect(a1, 2, "late action", status="failure")
    r = k.wait_replies(s, 2, timeout=0)
    if len(r) >= 2 and isinstance(r[1].body, dict) and r[1].status == "failure":
        code = (r[1].body.get("error") or {}).get("code")
        if code != "COMPENSATED_BEFORE_ACTION":
            rule.note(f"late action's error.code {code!r}, COMPENSATED_BEFORE_ACTION recommended (SHOULD)")
    rule.applied(s, 0, "")


def rule_late_action(rule):
    """An action, its compensation, then a late attempt of the action: the stored outcome, not applied again."""
    k = rule.kit
    if not k.a.compensation:
        rule.skipped = "no --compensation"
        return
    s = k.saga_id("late")
    a1 = k.command(s, "action", 1)
    rule.send(a1)
    r = rule.expect(a1, 1, "action", status="success")
    c1 = k.command(s, "compensation", 1, action_output=(r.body or {}).get("output") if r else None)
    rule.send(c1)
    rc1 = rule.expect(c1, 2, "compensation", status="success")
    a2 = k.command(s, "action", 2)
    rule.send(a2, "action attempt 2 (late)")
    rule.expect(a2, 3, "late action", status=("success", "failure"))
    rule.send(c1, "the compensation again")
    rc2 = rule.expect(c1, 4, "compensation again", status="success")
    if rc1 and rc2 and isinstance(rc1.body, dict) and isinstance(rc2.body, dict) and \
            rc1.body.get("message_id") != rc2.body.get("message_id"):
        rule.fail("the repeated compensation's reply has another message_id than the first")
    rule.applied(s, 1, "")


def max_saga_id(kit):
    prefix = kit.saga_id("maxid") + "-"
    filler = HOSTILE_CHARS + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
    filler = filler.replace(" ", "")
    s = prefix
    while len(s) < SAGA_ID_MAX:
        s += filler[(len(s) - len(prefix)) % len(filler)]
    return s


def rule_max_ids(rule):
    """Saga id and step name of the maximum length (127 bytes each), saga id of hostile characters: echoed exactly."""
    k = rule.kit
    s = max_saga_id(k)
    step = ("s" + k.run + "-max-step_" + "x" * STEP_MAX)[:STEP_MAX]
    assert len(s) == SAGA_ID_MAX and len(step) == STEP_MAX
    a1 = k.command(s, "action", 1, step=step)
    rule.send(a1, f"action (saga id {len(s)} bytes, step {len(step)} bytes)")
    r = rule.expect(a1, 1, "action", status="success")
    rule.applied(s, 1, "")
    if k.a.compensation:
        c1 = k.command(s, "compensation", 1, step=step, action_output=(r.body or {}).get("output") if r else None)
        rule.send(c1)
        rule.expect(c1, 2, "compensation", status="success")


def rule_reply_partition(rule):
    """reply_partition honoured even where murmur2 would put the key elsewhere; one the topic lacks: murmur2."""
    k = rule.kit
    if k.reply_partitions < 2:
        rule.skipped = f"the reply topic has {k.reply_partitions} partition: nothing to tell apart"
        return
    s1, s2 = k.saga_id("partition", 1), k.saga_id("partition", 2)
    other = (murmur2(s1.encode()) + 1) % k.reply_partitions
    a1 = k.command(s1, "action", 1, reply_partition=other)
    rule.send(a1, f"action with reply_partition {other} (murmur2 says {murmur2(s1.encode()) % k.reply_partitions})")
    rule.expect(a1, 1, f"reply_partition {other}", status="success")
    a2 = k.command(s2, "action", 1, reply_partition=k.reply_partitions + 5)
    rule.send(a2, f"action with reply_partition {k.reply_partitions + 5} (not a partition)")
    rule.expect(a2, 1, "absent partition", status="success")


def rule_malformed(rule):
    """Malformed commands and unknown actions: failure replies where answerable, and the participant keeps going."""
    k = rule.kit
    bad = k.saga_id("malformed")
    rule.kit.send(b"this is not JSON {", bad + "-notjson")
    rule.kit.send(b"[1, 2, 3]", bad + "-array")
    rule.sent.append("not JSON, a JSON array")
    cases = []
    c = k.command(bad + "-nokey", "action", 1)
    del c["idempotency_key"]
    cases.append(("no idempotency_key", c, "MALFORMED_COMMAND"))
    c = k.command(bad + "-kind", "action", 1)
    c["kind"] = "sideways"
    cases.append(("kind 'sideways'", c, "MALFORMED_COMMAND"))
    c = k.command(bad + "-payload", "action", 1)
    c["payload"] = "not an object"
    cases.append(("payload not an object", c, "MALFORMED_COMMAND"))
    c = k.command(bad + "-attempt", "action", 1)
    c["attempt"] = "one"
    cases.append(("attempt not an integer", c, "MALFORMED_COMMAND"))
    cases.append(("unknown action", k.command(bad + "-unknown", "action", 1, action="conformance.no_such_action"),
                  "UNKNOWN_ACTION"))
    cases.append(("unknown compensation",
                  k.command(bad + "-unknowncomp", "compensation", 1, action="conformance.no_such_compensation",
                            payload={"action_output": None}), "UNKNOWN_ACTION"))
    for label, cmd, _ in cases:
        k.send(cmd, cmd["saga_id"])
        rule.sent.append(label)
    deadline = time.monotonic() + k.a.reply_timeout  # one wait for all: they were sent together
    for label, cmd, code in cases:
        check = dict(cmd)
        if check.get("kind") not in ("action", "compensation"):
            check.pop("kind")
        if not isinstance(check.get("attempt"), int):
            check.pop("attempt")
        rule.expect(check, 1, label, status="failure", code=code, timeout=max(0.0, deadline - time.monotonic()))
    after = k.command(bad + "-after", "action", 1)
    rule.send(after, "a valid action after them")
    rule.expect(after, 1, "valid action after", status="success")
    rule.applied(bad + "-unknown", 0, "unknown action:")
    rule.applied(bad + "-after", 1, "valid action:")


def rule_crash(rule):
    """kill -9 while a batch is processed, restart: every command answered, each action applied exactly once."""
    k = rule.kit
    if not (k.a.kill_cmd and k.a.restart_cmd):
        rule.skipped = "no --kill-cmd and --restart-cmd"
        return
    n = k.a.crash_batch
    sagas = [k.saga_id("crash", i) for i in range(n)]
    cmds = [k.command(s, "action", 1) for s in sagas]
    # A steady stream of commands; kill -9 as soon as the first answer shows the participant is in
    # the middle of it: some commands are done, some in its hands, the rest still coming.
    sent = []

    def stream():
        for c in cmds:
            k.send(c, c["saga_id"])
            sent.append(c["saga_id"])
            time.sleep(k.a.crash_interval_ms / 1000)

    sender = threading.Thread(target=stream, daemon=True)
    sender.start()
    deadline = time.monotonic() + k.a.reply_timeout
    while time.monotonic() < deadline and not any(k.wait_replies(s, 1, timeout=0) for s in sagas):
        time.sleep(0.002)
    sent_at_kill = len(sent)
    answered_at_kill = sum(1 for s in sagas if k.wait_replies(s, 1, timeout=0))
    try:
        k.shell("--kill-cmd", k.a.kill_cmd)
        sender.join()
        k.shell("--restart-cmd", k.a.restart_cmd)
    except Exception as e:
        rule.fail(str(e))
        return
    rule.sent.append(f"{n} actions, one every {k.a.crash_interval_ms:g} ms; kill -9 after {answered_at_kill} answered "
                     f"and {sent_at_kill} sent, restart")
    missing, wrong = [], []
    deadline = time.monotonic() + k.a.reply_timeout  # the restart command returned: one wait for all
    for c in cmds:
        got = k.wait_replies(c["saga_id"], 1, mids={c["message_id"]}, timeout=max(0.0, deadline - time.monotonic()))
        if not got:
            missing.append(c["saga_id"])
            continue
        sub = Rule(k, "crash")
        check_reply(sub, got[0], c, c["saga_id"], status="success")
        wrong += sub.problems[:1]
    time.sleep(0.5)  # late duplicates of replies, if any, before counting them
    dups = sum(len(k.wait_replies(s, 1, timeout=0)) - 1 for s in sagas if k.wait_replies(s, 1, timeout=0))
    rule.answers.append(f"{n - len(missing)} of {n} answered, {dups} duplicate replies (allowed)")
    if missing:
        rule.fail(f"{len(missing)} commands never answered, e.g. {missing[0]}")
    rule.problems += wrong[:3]
    counts = {}
    for s in sagas:
        try:
            c = k.applied(s)
        except Exception as e:
            rule.fail(f"ledger query: {e}")
            return
        if c is None:
            return
        counts[c] = counts.get(c, 0) + 1
    rule.applied_counts.append(", ".join(f"{v} sagas {c} times" for c, v in sorted(counts.items())))
    if set(counts) != {1}:
        rule.fail("not every action applied exactly once: " + ", ".join(f"{v} sagas applied {c} times"
                                                                        for c, v in sorted(counts.items()) if c != 1))


RULES = [("basic", rule_basic), ("duplicate", rule_duplicate), ("new_attempt", rule_new_attempt),
         ("compensation_first", rule_compensation_first), ("late_action", rule_late_action),
         ("max_ids", rule_max_ids), ("reply_partition", rule_reply_partition), ("malformed", rule_malformed),
         ("crash", rule_crash)]


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="sagaconform", description=__doc__.split("\n\n")[0],
        epilog="Rules (in this order): " + ", ".join(n for n, _ in RULES) + ". docs/PARTICIPANTS.md, \"Conformance kit\".")
    p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers (host:port,...)")
    p.add_argument("--topic", required=True, help="the participant's command topic (e.g. payment.commands)")
    p.add_argument("--reply-topic", default="conformance.replies",
                   help="topic named in the commands' reply_to; created with --reply-partitions when missing "
                        "(default conformance.replies: not sagad's saga.replies)")
    p.add_argument("--reply-partitions", type=int, default=4, help="partitions of a reply topic created here (4)")
    p.add_argument("--action", required=True, help="the action to send (e.g. payment.charge)")
    p.add_argument("--compensation", help="its compensation (e.g. payment.refund); without: the rules that need one are skipped")
    p.add_argument("--payload", required=True,
                   help="a JSON object the action succeeds with; ${saga_id} and ${step} in its strings become the "
                        "command's (keep per-saga values unique: '{\"order_id\":\"o-${saga_id}\"}')")
    p.add_argument("--compensation-payload", help="the compensation's payload (default: --payload); action_output is added")
    p.add_argument("--step", default="conformance_step", help="step name in the commands (conformance_step)")
    p.add_argument("--definition", default="conformance", help="definition name in the commands (conformance)")
    ledger = p.add_mutually_exclusive_group()
    ledger.add_argument("--applied-sql", nargs=2, metavar=("DB", "SQL"),
                        help="SQLite ledger file and a query with one ? (the saga id) giving how many times the action was applied")
    ledger.add_argument("--applied-cmd", metavar="CMD",
                        help="shell command printing how many times the action was applied for the saga id in $SAGA_ID "
                             "(also $1; $SAGA_ID_SQL is it as an SQL string literal)")
    p.add_argument("--kill-cmd", help="shell command that kills the participant (kill -9); with --restart-cmd enables the crash rule")
    p.add_argument("--restart-cmd", help="shell command that starts the participant again (may return before it is ready)")
    p.add_argument("--crash-batch", type=int, default=40, help="commands of the crash rule (40)")
    p.add_argument("--crash-interval-ms", type=float, default=5, help="time between the crash rule's commands (5)")
    p.add_argument("--reply-timeout", type=float, default=20, help="seconds to wait for a reply (20)")
    p.add_argument("--ready-timeout", type=float, default=60, help="seconds to wait for the first reply (60)")
    p.add_argument("--restart-timeout", type=float, default=60, help="seconds the kill and restart commands may take (60)")
    p.add_argument("--rules", help="comma-separated rules to run (default: all)")
    p.add_argument("-X", dest="kafka_props", action="append", default=[], metavar="KEY=VALUE",
                   help="librdkafka property for the kit's clients (e.g. fetch.wait.max.ms=10)")
    a = p.parse_args(argv)
    try:
        if not isinstance(json.loads(a.payload), dict):
            p.error("--payload must be a JSON object")
        if a.compensation_payload is not None and not isinstance(json.loads(a.compensation_payload), dict):
            p.error("--compensation-payload must be a JSON object")
    except ValueError as e:
        p.error(f"--payload / --compensation-payload: not JSON: {e}")
    names = [n for n, _ in RULES]
    a.selected = names if not a.rules else [r.strip() for r in a.rules.split(",") if r.strip()]
    for r in a.selected:
        if r not in names:
            p.error(f"--rules: unknown rule '{r}' (rules: {', '.join(names)})")
    if any(("=" not in kv) for kv in a.kafka_props):
        p.error("-X takes KEY=VALUE")
    if bool(a.kill_cmd) != bool(a.restart_cmd):
        p.error("--kill-cmd and --restart-cmd go together")
    return a


def main(argv):
    a = parse_args(argv)
    kit = Kit(a)
    try:
        # The participant must be up: a first action, waited for longer.
        probe = kit.command(kit.saga_id("probe"), "action", 1)
        kit.send(probe, probe["saga_id"])
        if not kit.wait_replies(probe["saga_id"], 1, mids={probe["message_id"]}, timeout=a.ready_timeout):
            print(f"sagaconform: no reply on {a.reply_topic} to a first {a.action} on {a.topic} within "
                  f"{a.ready_timeout:g} s: is the participant running?", file=sys.stderr)
            return 2
        print(f"sagaconform: run {kit.run}: {a.topic} ({a.action}{' / ' + a.compensation if a.compensation else ''}), "
              f"replies on {a.reply_topic} ({kit.reply_partitions} partitions)", flush=True)
        failed = 0
        for name, fn in RULES:
            if name not in a.selected:
                continue
            rule = Rule(kit, name)
            t0 = time.monotonic()
            try:
                fn(rule)
            except Exception as e:  # a rule that cannot run is a failed rule, said so
                rule.fail(f"the rule could not run: {type(e).__name__}: {e}")
            failed += bool(rule.problems)
            print(rule.line() + f" ({time.monotonic() - t0:.1f} s)", flush=True)
        ran = len(a.selected)
        print(f"sagaconform: {'passed' if not failed else 'FAILED'}: {ran - failed} of {ran} rules passed"
              f" (SKIP counts as passed)", flush=True)
        return 1 if failed else 0
    finally:
        kit.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

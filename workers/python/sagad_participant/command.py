"""Saga commands and replies: parsing and validating a saga.command, building saga.reply bodies and ids.

The same rules as workers/lib/participant_command.c (docs/PROTOCOL.md, docs/PARTICIPANTS.md):
- a command is a JSON object with type "saga.command" and non-empty string message_id, saga_id,
  step, reply_to, action, idempotency_key; kind "action" or "compensation"; an integer
  attempt >= 1; an object payload;
- a recorded outcome's reply id is "r-<idempotency_key>/<attempt>" (the same for every delivery
  of that attempt), a transient one "r-<key>/<attempt>/t-<16 hex>" (never the same twice), the
  answer to a malformed command "r-<command message_id>";
- replies are compact JSON in a fixed member order: type, message_id, in_reply_to, saga_id,
  step, kind, attempt, status, then output (success) or error {code, message}.
"""
import dataclasses
import json
import math
import secrets

SUCCESS, FAILURE, RETRY = "success", "failure", "retry"
ACTION, COMPENSATION = "action", "compensation"
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
CODE_MAX_BYTES = 63        # the C library's error_code[64]
MESSAGE_MAX_BYTES = 255    # and error_message[256]


class MalformedCommand(ValueError):
    """A command that cannot be processed; `parsed` holds what could be read (for a failure reply)."""

    def __init__(self, why, parsed):
        super().__init__(why)
        self.parsed = parsed


@dataclasses.dataclass
class Command:
    """One decoded command, as a handler sees it.

    Compensations only: `action_key` is the idempotency key of the action this undoes and
    `action_output` the output recorded for it in this ledger (not the payload's copy, which is
    null when sagad does not know the outcome)."""
    message_id: str
    saga_id: str
    step: str
    kind: str
    action: str
    attempt: int
    idempotency_key: str
    payload: dict
    definition: str = None
    reply_to: str = None
    reply_partition: int = -1   # -1: absent or not a partition number (reply keyed by saga_id)
    action_key: str = None
    action_output: object = None


def cut_utf8(text, max_bytes):
    """text cut to at most max_bytes of UTF-8, on a character boundary (it goes into JSON)."""
    raw = str(text).encode("utf-8", "replace")
    return raw[:max_bytes].decode("utf-8", "ignore") if len(raw) > max_bytes else str(text)


def dumps(obj):
    """Compact JSON, members in insertion order, UTF-8 (as the C library's writer)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate object key '{key}'")
        obj[key] = value
    return obj


def _reject_constant(name):
    raise ValueError(f"'{name}' is not JSON")


def _int64(text):
    v = int(text)
    if not -INT64_MAX - 1 <= v <= INT64_MAX:
        raise ValueError(f"too big integer {text[:30]}")
    return v


def _finite(text):
    v = float(text)
    if math.isinf(v):
        raise ValueError(f"real number overflow {text[:30]}")
    return v


def loads(data):
    """Parses JSON strictly, as jansson does: UTF-8, no duplicate keys, no NaN/Infinity, integers
    within 64 bits, finite reals; anything else is invalid JSON."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data).decode("utf-8")
    return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant,
                      parse_int=_int64, parse_float=_finite)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and -INT64_MAX - 1 <= v <= INT64_MAX


def _nonempty(doc, key):
    v = doc.get(key)
    return v if isinstance(v, str) and v else None


def parse_command(data):
    """Parses the bytes of one record value into a Command; raises MalformedCommand with the reason.

    MalformedCommand.parsed is a (partial) Command or None: fields that could be read stay
    in it (kind/attempt None when invalid) so that a failure reply can still be sent."""
    try:
        doc = loads(data if data is not None else b"")
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedCommand(f"invalid JSON: {e}", None) from None
    if not isinstance(doc, dict):
        raise MalformedCommand("command is not a JSON object", None)
    rp = doc.get("reply_partition")
    kind = doc.get("kind") if doc.get("kind") in (ACTION, COMPENSATION) else None
    attempt = doc.get("attempt") if _is_int(doc.get("attempt")) and doc["attempt"] >= 1 else None
    definition = doc.get("definition") if isinstance(doc.get("definition"), str) else None
    cmd = Command(message_id=_nonempty(doc, "message_id"), saga_id=_nonempty(doc, "saga_id"),
                  step=_nonempty(doc, "step"), kind=kind, action=_nonempty(doc, "action"),
                  attempt=attempt, idempotency_key=_nonempty(doc, "idempotency_key"),
                  payload=doc.get("payload"), definition=definition,
                  reply_to=_nonempty(doc, "reply_to"),
                  reply_partition=rp if _is_int(rp) and 0 <= rp <= INT32_MAX else -1)
    # Only what claims to be a command is answered: a start event or junk has no one waiting.
    claims = doc.get("type") == "saga.command"
    readable = claims and cmd.message_id and cmd.saga_id and cmd.step and cmd.reply_to
    partial = cmd if readable else None
    if not claims:
        t = doc.get("type")
        shown = f'"{cut_utf8(t, 64)}"' if isinstance(t, str) else "missing"
        raise MalformedCommand(f'"type" is {shown}, expected "saga.command"', None)
    for field in ("message_id", "saga_id", "step", "reply_to", "action", "idempotency_key"):
        if _nonempty(doc, field) is None:
            raise MalformedCommand(f'"{field}" is missing or not a non-empty string', partial)
    if kind is None:
        raise MalformedCommand('"kind" must be "action" or "compensation"', partial)
    if attempt is None:
        raise MalformedCommand('"attempt" must be an integer >= 1', partial)
    if not isinstance(cmd.payload, dict):
        raise MalformedCommand('"payload" must be a JSON object', partial)
    return cmd


def recorded_reply_id(cmd):
    """The id of a recorded outcome's reply: the same for every delivery of the same attempt."""
    return f"r-{cmd.idempotency_key}/{cmd.attempt}"


def transient_reply_id(cmd):
    """A retry is no stable answer (the next delivery runs again): a fresh id every time."""
    return f"r-{cmd.idempotency_key or cmd.message_id}/{cmd.attempt}/t-{secrets.token_hex(8)}"


def malformed_reply_id(cmd):
    return f"r-{cmd.message_id}"


def build_reply(cmd, message_id, status, output=None, code=None, message=None):
    """A saga.reply object for cmd; output only for success (None gives {})."""
    reply = {"type": "saga.reply", "message_id": message_id, "in_reply_to": cmd.message_id,
             "saga_id": cmd.saga_id, "step": cmd.step}
    if cmd.kind is not None:
        reply["kind"] = cmd.kind
    if cmd.attempt is not None:
        reply["attempt"] = cmd.attempt
    reply["status"] = status
    if status == SUCCESS:
        reply["output"] = output if output is not None else {}
    else:
        reply["error"] = {"code": code or "UNSPECIFIED", "message": message or ""}
    return reply


def restamp_stored(cmd, stored_text):
    """A stored reply re-rendered for this delivery of cmd: its id, in_reply_to and attempt."""
    reply = loads(stored_text)
    reply["message_id"] = recorded_reply_id(cmd)
    reply["in_reply_to"] = cmd.message_id
    reply["attempt"] = cmd.attempt
    return reply

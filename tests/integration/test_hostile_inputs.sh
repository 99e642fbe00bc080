#!/usr/bin/env bash
# Hostile inputs of issue 13 (items 5, 6, 9, 12), each ending as specified,
# with sagad running throughout, later sagas completing, the outbox drained
# and `sagactl audit` clean:
#  5. a compensation whose payload reads its own step's output: after a
#     timeout (outcome unknown, no output) it runs with the template's
#     default (before: TEMPLATE ... no such value at every attempt); the
#     loader refuses such a payload without a default (sagad --check);
#  6. a start without saga_id, replayed after its dedup row is gone, starts
#     nothing (the saga keeps its start's message id);
#  9. a participant's long non-ASCII error message is cut on a character
#     boundary by the participant and by sagad: valid UTF-8 in the reply,
#     the database and the admin API, no '?';
# 12. sagas whose id has the maximum length (127 bytes) run every step, and
#     every compensation, with their replies accepted (before: the reply ids
#     r-<key>/<attempt> went over 127 bytes and were dead-lettered).
. "$(dirname "$0")/../e2e/e2e_lib.sh"
e2e_env
cp "$(dirname "$0")"/sagas/hostile_timeout.json "$DIR/sagas/"
export PAYMENT_WORKER_TEST_TRIGGERS=1 PAYMENT_WORKER_TEST_SLOW_MS=5000

# ---- 5, at load time: refused without a default, named by file and pointer
mkdir -p "$DIR/bad"
sed 's/output.payment_id:-null}/output.payment_id}/' "$DIR/sagas/hostile_timeout.json" >"$DIR/bad/no_default.json"
"$BUILD_DIR/bin/sagad" --check --sagas "$DIR/bad" >"$DIR/check.out" 2>&1 && fail "sagad --check accepted a compensation without a default"
check "the loader refuses a compensation reading its own output without a default" \
  grep -qF "no_default.json:/steps/1/compensation_payload/payment_id: compensation reads its own step's output without a default" "$DIR/check.out"
check "sagad --check passes on every example and test definition" "$BUILD_DIR/bin/sagad" --check --sagas "$DIR/sagas"

stack_up

# ---- 5. a timed-out charge is compensated with the default
publish_saga slow-1 hostile_timeout c-slow sku-1 2700
check "slow-1 compensated" wait_status slow-1 compensated 90
check "slow-1: the charge's outcome was unknown, its refund ran" in_history slow-1 \
  step.unknown:charge_payment saga.compensating compensation.succeeded:charge_payment \
  compensation.succeeded:create_order saga.compensated
check "slow-1: no TEMPLATE failure anywhere" \
  eq "$(saga_sql "SELECT count(*) FROM history WHERE saga_id='slow-1' AND detail LIKE '%TEMPLATE%'")" 0
check "slow-1: the refund command carried the defaults (null, and the text)" \
  eq "$(sql "$PAYMENT_DB" "SELECT count(*) FROM processed WHERE saga_id='slow-1' AND kind='compensation' AND status='success'")" 1
kcat -b "$BOOTSTRAP" -C -X isolation.level=read_committed -t payment.commands -o beginning -e -q -X fetch.wait.max.ms=10 >"$DIR/payment-commands.txt"
check "slow-1: refund payload has payment_id null and the default note" python3 - "$DIR/payment-commands.txt" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    try: c = json.loads(line)
    except ValueError: continue
    if c.get("saga_id") == "slow-1" and c.get("kind") == "compensation":
        p = c["payload"]
        assert "payment_id" in p and p["payment_id"] is None, p
        assert p["note"] == "refund of an unknown charge", p
        sys.exit(0)
sys.exit("no refund command for slow-1")
PY

# ---- 6. a start without saga_id, replayed after its dedup row is gone
nosid='{"type":"saga.start","message_id":"m-nosid-1","definition":"order_fulfillment","input":{"order_id":"o-nosid-1","customer":"c-1","amount":100,"items":[{"sku":"sku-1","qty":1}]}}'
marker() { # N: a start with a saga id on the same key, to know the one before it was read
  printf 'k-nosid\t{"type":"saga.start","message_id":"m-marker-%s","definition":"order_fulfillment","saga_id":"marker-%s","input":{"order_id":"o-marker-%s","customer":"c-1","amount":100,"items":[{"sku":"sku-1","qty":1}]}}\n' "$1" "$1" "$1"
}
{ printf 'k-nosid\t%s\n' "$nosid"; marker 1; } | kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t'
check "the start without saga_id started one saga" wait_count "SELECT count(*) FROM sagas WHERE start_message_id='m-nosid-1' AND status='completed'" 1 60
check "marker-1 completed" wait_status marker-1 completed 60
# What pruning does after the dedup retention (or what a new consumer group
# or an offset reset meets): the start's dedup row is gone.
saga_sql_each "DELETE FROM dedup WHERE consumer='start' AND message_id='m-nosid-1'"
{ printf 'k-nosid\t%s\n' "$nosid"; marker 2; } | kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t'
check "marker-2 completed (the replayed start before it was read)" wait_status marker-2 completed 60
check "the replayed start started nothing" \
  eq "$(saga_sql "SELECT count(*) FROM sagas WHERE start_message_id='m-nosid-1'")" 1
check "one order for o-nosid-1" eq "$(sql "$ORDER_DB" "SELECT count(*) FROM orders WHERE order_id='o-nosid-1'")" 1

# ---- 9. a long non-ASCII error message (the inventory quotes the SKU)
sku=$(python3 -c 'print("é" * 200)')
printf 'utf8-1\t{"type":"saga.start","message_id":"m-utf8-1","definition":"order_fulfillment","saga_id":"utf8-1","input":{"order_id":"o-utf8-1","customer":"c-1","amount":100,"items":[{"sku":"%s","qty":1}]}}\n' "$sku" |
  kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t'
check "utf8-1 compensated (unknown SKU)" wait_status utf8-1 compensated 60
check "utf8-1: the step's and the saga's error messages are whole characters" python3 - "$SAGA_DB" <<'PY'
import glob, os, sqlite3, sys
# SAGA_DB is sagad's data directory: the saga is in one of its shard files
files = sorted(glob.glob(os.path.join(sys.argv[1], "shard-*.db"))) if os.path.isdir(sys.argv[1]) else [sys.argv[1]]
db = next(c for c in map(sqlite3.connect, files) if c.execute("SELECT 1 FROM sagas WHERE id='utf8-1'").fetchone())
db.text_factory = bytes
step = db.execute("SELECT error_code, error_message FROM steps WHERE saga_id='utf8-1' AND name='reserve_inventory'").fetchone()
saga = db.execute("SELECT error_message FROM sagas WHERE id='utf8-1'").fetchone()
code, msg = step[0].decode(), step[1].decode("utf-8")  # strict: fails on a cut character
assert code == "OUT_OF_STOCK", code
assert msg.startswith("unknown SKU éé") and "?" not in msg and "\ufffd" not in msg, msg
assert len(step[1]) in (254, 255), len(step[1])
smsg = saga[0].decode("utf-8")
assert "unknown SKU éé" in smsg and "?" not in smsg, smsg
PY
check "utf8-1: the admin API shows them whole, without '?'" python3 - "$ADMIN_URL" <<'PY'
import json, sys, urllib.request
doc = json.load(urllib.request.urlopen(sys.argv[1] + "/v1/sagas/utf8-1"))
texts = []
def walk(v):
    if isinstance(v, dict): [walk(x) for x in v.values()]
    elif isinstance(v, list): [walk(x) for x in v]
    elif isinstance(v, str) and "unknown SKU" in v: texts.append(v)
walk(doc)
assert texts, doc
for t in texts:
    assert "?" not in t and "\ufffd" not in t and t.endswith("é"), t
PY
check "utf8-1: the participant's reply was recorded (its failure message cut whole)" \
  eq "$(sql "$INVENTORY_DB" "SELECT count(*) FROM processed WHERE saga_id='utf8-1' AND status='failure'")" 1

# ---- 12. saga ids of the maximum length: all steps, and all compensations
long_ok=$(python3 -c 'print("L" * 122 + "-ok-1")')
long_no=$(python3 -c 'print("L" * 122 + "-no-1")')
check "the long ids have 127 bytes" eq "${#long_ok}/${#long_no}" "127/127"
publish_saga "$long_ok" order_fulfillment c-1 sku-1 500 o-long-ok
publish_saga "$long_no" order_fulfillment c-broke sku-1 500 o-long-no
check "the 127-byte saga completes" wait_status "$long_ok" completed 60
check "the 127-byte saga whose payment is declined is compensated" wait_status "$long_no" compensated 60
check "every step of the long saga succeeded" \
  eq "$(saga_sql "SELECT count(*) FROM steps WHERE saga_id='$long_ok' AND status='succeeded'")" 4
check "the declined long saga ran its compensations" in_history "$long_no" \
  step.failed:charge_payment saga.compensating compensation.succeeded:reserve_inventory \
  compensation.succeeded:create_order saga.compensated
check "no reply of the long sagas was dead-lettered (no retries either)" \
  eq "$(saga_sql "SELECT count(*) FROM steps WHERE saga_id IN ('$long_ok','$long_no') AND attempt > 1")" 0
kcat -b "$BOOTSTRAP" -C -X isolation.level=read_committed -t saga.dlq -o beginning -e -q -X fetch.wait.max.ms=10 -f '%h\n' >"$DIR/dlq.txt" || true
check "saga.dlq is empty" eq "$(grep -c . "$DIR/dlq.txt" || true)" 0

# ---- and sagad goes on
check "sagad is still running" kill -0 "$SAGAD_PID"
publish_starts later 5
check "later sagas complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'later-%' AND status='completed'" 5 60
check "the outbox is drained" wait_count "SELECT count(*) FROM outbox" 0 20
check "sagactl audit passes" audit_passes
finish

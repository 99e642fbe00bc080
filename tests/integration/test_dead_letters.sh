#!/usr/bin/env bash
# Bad messages on saga.start and saga.replies go to saga.dlq with the
# original bytes, source topic/partition/offset and a reason; good messages
# sent between them are processed; nothing blocks a partition.
. "$(dirname "$0")/lib.sh"
stack_up
python3 - "$DIR" <<'PY'
import json, os, sys
d = sys.argv[1]
good = lambda n: json.dumps({"type": "saga.start", "message_id": f"m-good-{n}", "definition": "order_fulfillment",
                             "saga_id": f"good-{n}", "input": {"order_id": f"o-good-{n}", "customer": "c-1",
                             "amount": 100, "items": [{"sku": "sku-1", "qty": 1}]}}).encode()
start_bad = [
    (b'{"type":"saga.start","message_id":"m-x","definition":"order_ful', "invalid JSON"),         # truncated
    (b'{"type":"saga.start","message_id":7,"definition":"order_fulfillment"}', "'message_id' must be a string"),
    (b'{"type":"saga.start","message_id":"m-y","definition":"order_fulfillment","input":[1]}', "'input' must be an object"),
    (b'{"type":"saga.start","message_id":"m-z","definition":"no_such_saga"}', "unknown definition"),
    (b'{"type":"saga.launch","message_id":"m-w","definition":"order_fulfillment"}', "unexpected type"),
    (b'\x00\xff\xfe binary \x01', "invalid JSON"),
    (b'[1,2,3]', "not a JSON object"),
    (b'{"type":"saga.start","message_id":"m-big","definition":"order_fulfillment","input":{"pad":"' + b"x" * 600000 + b'"}', "invalid JSON"),
]
reply_bad = [
    (b'{"type":"saga.reply","message_id":"r-1","saga_id":"nobody","step":"create_order","kind":"action","attempt":1,"status":"success"}', "unknown saga"),
    (b'{"type":"saga.reply","message_id":"r-2","saga_id":"good-1","step":"no_step","kind":"action","attempt":1,"status":"success"}', "has no step"),
    (b'{"type":"saga.reply","message_id":"r-3","saga_id":"good-1","step":"create_order","kind":"action","attempt":"one","status":"success"}', "'attempt'"),
    (b'{"type":"saga.reply","message_id":"r-4","saga_id":"good-1","step":"create_order","kind":"undo","attempt":1,"status":"success"}', "'kind'"),
    (b'not json at all', "invalid JSON"),
]
SEP = b"\x1e"  # record separator: messages may hold newlines and any byte
with open(os.path.join(d, "start.bin"), "wb") as f:
    msgs = []
    for i, (m, _) in enumerate(start_bad):
        msgs += [good(i * 2 + 1), m, good(i * 2 + 2)]
    f.write(SEP.join(msgs))
with open(os.path.join(d, "replies.bin"), "wb") as f:
    f.write(SEP.join(m for m, _ in reply_bad))
with open(os.path.join(d, "expect.txt"), "w") as f:
    for m, why in start_bad + reply_bad:
        f.write(f"{len(m)}\t{why}\n")
print(len(start_bad) * 2, "good starts,", len(start_bad) + len(reply_bad), "bad messages")
PY
kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -D $'\x1e' -X message.max.bytes=2000000 <"$DIR/start.bin"
nbad_start=8; ngood=16
check "the $ngood good starts around the bad ones complete" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'good-%' AND status='completed'" "$ngood" 60
kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.replies -D $'\x1e' <"$DIR/replies.bin"
nbad=$((nbad_start + 5))
# An empty message too: a key with no value ("key:" with -K:).
printf 'empty-1:\n' | kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K:
sleep 2
kcat -b "$BOOTSTRAP" -C -X isolation.level=read_committed -t saga.dlq -o beginning -e -q -X fetch.wait.max.ms=10 \
  -f '%S\t%h\n' >"$DIR/dlq.txt"
python3 - "$DIR" <<'PY'
import sys
d = sys.argv[1]
want = [l.rstrip("\n").split("\t", 1) for l in open(f"{d}/expect.txt")]
got = [l.rstrip("\n").split("\t", 1) for l in open(f"{d}/dlq.txt") if "\t" in l]
missing = []
for size, why in want:
    hit = [g for g in got if g[0] == size and why in g[1]]
    if not hit:
        missing.append((size, why))
for g in got:
    h = g[1]
    assert "dlq_topic=saga." in h and "dlq_partition=" in h and "dlq_offset=" in h, f"incomplete headers: {h}"
if missing:
    print("missing from saga.dlq:", missing, "\ngot:", [g[1][:120] for g in got])
    sys.exit(1)
print(f"{len(want)} bad messages found in saga.dlq with their size and reason; {len(got)} records in all")
PY
check "every bad message is in saga.dlq with the original size, source and reason" true
check "the empty message is dead-lettered too" grep -q "dlq_reason=empty message" "$DIR/dlq.txt"
check "the outbox is drained (dead letters sent)" wait_count "SELECT count(*) FROM outbox" 0 10
check "no saga was created by a bad message" eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id NOT LIKE 'good-%'")" 0
echo "$CHECKS passed, 0 failed"

#!/usr/bin/env bash
# Messages over the size limit (issue 13, item 2): none sits in the outbox,
# no step "times out" waiting for a command that was never sent.
# - a 240 KB start of numbers like 0.1 keeps its size (shortest round-trip
#   form, not %.17g) and completes;
# - a start of about 1 MB (999.7 KB) makes a create_order command over the 1 MB limit:
#   the step fails at once with PAYLOAD_TOO_LARGE (attempt 1), the saga
#   compensates in seconds; its saga.started event is published truncated;
# - a 400 KB reply read three times by a later template (the order worker
#   echoes order_id in its output; reply_thrice reads it three times): the
#   later step fails at once with PAYLOAD_TOO_LARGE, create_order is
#   compensated;
# - a 999 KB invalid start is dead-lettered, cut, with dlq_truncated=999000;
# - a 1 MiB admin POST is refused (413) below the limit;
# then later sagas complete, the outbox drains, the audit is clean and the
# shutdown does not wait for its drain timeout.
. "$(dirname "$0")/lib.sh"
mkdir -p "$DIR/sagas"
cp "$SAGA_SOURCE_DIR/sagas/order_fulfillment.json" "$DIR/sagas/"
cat >"$DIR/sagas/reply_thrice.json" <<'JSON'
{"name": "reply_thrice", "version": 1, "timeout": "5m",
 "defaults": {"timeout": "10s"},
 "steps": [
   {"name": "create_order", "topic": "order.commands", "action": "order.create", "compensation": "order.cancel",
    "payload": {"order_id": "${input.order_id}", "items": "${input.items}"}},
   {"name": "reserve_inventory", "topic": "inventory.commands", "action": "inventory.reserve",
    "compensation": "inventory.release",
    "payload": {"items": "${input.items}", "a": "${steps.create_order.output.order_id}",
                "b": "${steps.create_order.output.order_id}", "c": "${steps.create_order.output.order_id}"}}
 ]}
JSON
export SAGAS_DIR="$DIR/sagas"
stack_up
python3 - "$DIR" <<'PY'
import json, os, sys
d = sys.argv[1]
def start(sid, items, extra=None):
    inp = {"order_id": f"o-{sid}", "customer": "c-1", "amount": 1000, "items": items}
    return json.dumps({"type": "saga.start", "message_id": f"m-{sid}", "definition": "order_fulfillment",
                       "saga_id": sid, "input": inp}, separators=(",", ":"))
with open(f"{d}/num.txt", "w") as f:   # 60,000 x 0.1 = 240 KB
    f.write("num-1\t" + start("num-1", [{"sku": "sku-1", "qty": 1, "weights": [0.1] * 60000}]) + "\n")
with open(f"{d}/huge.txt", "w") as f:  # ~1 MB: the command would be over 1 MB - reserve
    f.write("huge-1\t" + start("huge-1", [{"sku": "sku-1", "qty": 1, "note": "y" * 999500}]) + "\n")
with open(f"{d}/thrice.txt", "w") as f:  # a 400 KB order_id, echoed in create_order's output
    ev = {"type": "saga.start", "message_id": "m-thrice-1", "definition": "reply_thrice", "saga_id": "thrice-1",
          "input": {"order_id": "o-" + "t" * 400000, "items": [{"sku": "sku-1", "qty": 1}]}}
    f.write("thrice-1\t" + json.dumps(ev, separators=(",", ":")) + "\n")
with open(f"{d}/bad.bin", "wb") as f:  # 999 KB, not JSON
    head = b'{"type":"saga.start","message_id":"m-bad","input":"'
    f.write(head + b"z" * (999000 - len(head)))
print(os.path.getsize(f"{d}/num.txt"), os.path.getsize(f"{d}/huge.txt"), os.path.getsize(f"{d}/bad.bin"))
PY
big=(-X message.max.bytes=2000000)
kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t' "${big[@]}" -l "$DIR/num.txt"
kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t' "${big[@]}" -l "$DIR/huge.txt"
kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start "${big[@]}" "$DIR/bad.bin"
kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t' "${big[@]}" -l "$DIR/thrice.txt"
publish_starts ok 10

check "the start of 0.1s completes" \
  wait_count "SELECT status FROM sagas WHERE id='num-1'" completed 60
check "the oversized command fails its step at once: PAYLOAD_TOO_LARGE, attempt 1, compensated" \
  wait_count "SELECT s.status || '/' || st.status || '/' || st.error_code || '/' || st.attempt FROM sagas s
              JOIN steps st ON st.saga_id = s.id AND st.name = 'create_order' WHERE s.id = 'huge-1'" \
  "compensated/failed/PAYLOAD_TOO_LARGE/1" 30
check "the error names the step and the size" \
  eq "$(saga_sql "SELECT error_message LIKE '%step ''create_order''%' AND error_message LIKE '% bytes, over the %-byte message limit%' FROM steps WHERE saga_id='huge-1' AND name='create_order'")" 1
check "no timeout, no retry: the history has no step.retry_scheduled for huge-1" \
  eq "$(saga_sql "SELECT count(*) FROM history WHERE saga_id='huge-1' AND event LIKE '%retry%'")" 0
check "a 400 KB output read three times: the later step fails at once, PAYLOAD_TOO_LARGE; create_order compensated" \
  wait_count "SELECT s.status || '/' || a.status || '/' || b.status || '/' || b.error_code || '/' || b.attempt
              FROM sagas s JOIN steps a ON a.saga_id = s.id AND a.name = 'create_order'
              JOIN steps b ON b.saga_id = s.id AND b.name = 'reserve_inventory' WHERE s.id = 'thrice-1'" \
  "compensated/compensated/failed/PAYLOAD_TOO_LARGE/1" 60
check "the 10 good sagas complete" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'ok-%' AND status='completed'" 10 60
exactly_once ok 10 1000
check "the outbox is drained" wait_count "SELECT count(*) FROM outbox" 0 30
# Every command, event and dead letter fit. The records that cannot:
# saga.changelog records of the sagas near the limit (huge-1's holds its 1 MB
# input and its history, thrice-1's the 400 KB output and the history of its
# failed step): parked, alerted and logged, never replaced by a stub
# (docs/DESIGN.md, "What sagad writes"; such a saga cannot be restored).
check "nothing but changelog records of huge-1 and thrice-1 was parked" eq \
  "$(saga_sql "SELECT count(*) FROM outbox_parked WHERE topic <> 'saga.changelog' OR outcome <> 'dropped' OR key NOT IN ('huge-1', 'thrice-1')")" 0
check "... huge-1's among them" eq "$(saga_sql "SELECT count(*) > 0 FROM outbox_parked WHERE key = 'huge-1'")" 1
check "... and the oversized changelog record was logged, naming the saga" \
  grep -q "the changelog record of huge-1 is [0-9]* bytes, over --max-message-bytes" "$DIR/sagad.log"

fetch=(-X fetch.wait.max.ms=10 -X fetch.message.max.bytes=2000000)
kcat -b "$BOOTSTRAP" -C -X isolation.level=read_committed -t order.commands -o beginning -e -q "${fetch[@]}" -f '%k\t%S\n' >"$DIR/orders.txt"
size=$(awk -F'\t' '$1=="num-1"{print $2}' "$DIR/orders.txt" | head -n1)
check "the 0.1s command keeps its size ($size bytes, not 1.2 MB)" test "${size:-0}" -gt 240000 -a "${size:-0}" -lt 260000
kcat -b "$BOOTSTRAP" -C -X isolation.level=read_committed -t saga.events -o beginning -e -q "${fetch[@]}" -K$'\t' -f '%k\t%S\t%s\n' >"$DIR/events.txt"
check "huge-1's saga.started event is published truncated, with the marker" \
  bash -c "grep -a '^huge-1	' '$DIR/events.txt' | grep -a '\"event\":\"saga.started\"' | grep -aq '\"truncated\":'"
kcat -b "$BOOTSTRAP" -C -X isolation.level=read_committed -t saga.dlq -o beginning -e -q "${fetch[@]}" -f '%S\t%h\n' >"$DIR/dlq.txt"
check "the 999 KB invalid start is dead-lettered, cut, dlq_truncated=999000" \
  bash -c "awk -F'\t' '\$2 ~ /dlq_truncated=999000/ && \$1 < 1000000 && \$1 > 900000' '$DIR/dlq.txt' | grep -q ."

code=$(head -c 1048576 /dev/zero | tr '\0' 'a' | curl -s -o "$DIR/post.out" -w '%{http_code}' \
  -X POST -H 'Content-Type: application/json' --data-binary @- "$ADMIN_URL/v1/sagas")
check "a 1 MiB admin POST is refused with 413 ($code)" eq "$code" 413
check "the limit named is below the message limit" grep -q 'larger than 994880 bytes' "$DIR/post.out"

publish_starts later 5
check "later sagas complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'later-%' AND status='completed'" 5 60
check "sagad still runs" kill -0 "$(cat "$DIR/sagad.pid")"
check "sagactl audit is clean" \
  "$BUILD_DIR/bin/sagactl" audit --saga-db "$SAGA_DB" --order-db "$ORDER_DB" --inventory-db "$INVENTORY_DB" \
    --payment-db "$PAYMENT_DB" --notification-db "$NOTIFICATION_DB"
t0=$(date +%s%N)
"$STACK" down "$DIR" >"$DIR/down.out" 2>&1 || { cat "$DIR/down.out" >&2; fail "stack down"; }
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "the shutdown does not wait for the drain timeout (${ms} ms)" test "$ms" -lt 9000
check "sagad exited 0" eq "$(exit_status_of sagad)" 0
check "sagad's drain left nothing" bash -c "! grep -q 'not acknowledged yet' '$DIR/sagad.log'"
echo "$CHECKS passed, 0 failed"

#!/usr/bin/env bash
# Ids at their documented maximum, end to end (docs/PROTOCOL.md, "Limits"):
# a definition whose name and step names have 127 bytes, and two sagas whose
# ids have 127 bytes of printable ASCII (quotes, backslash, '%', '#', '?',
# ... everything but '/' and blanks): one completes, one is declined and
# compensates. Commands (279-byte message ids at most) reach the workers,
# their replies (r-<key>/<attempt>) are accepted on the first attempt, the
# ledgers and the admin API hold the ids unchanged, nothing is dead-lettered
# and `sagactl audit` passes.
. "$(dirname "$0")/e2e_lib.sh"
e2e_env

# the definition, the two ids and the start events (JSON made by Python: the ids are hostile)
python3 - "$DIR" <<'PY'
import json, sys
d = sys.argv[1]
def pad(prefix, alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-"):
    s = prefix
    while len(s) < 127:
        s += alphabet[len(s) % len(alphabet)]
    return s
steps = {k: pad(k + "_") for k in ("create_order", "reserve_inventory", "charge_payment", "notify")}
name = pad("max_ids.", "abcdefghijklmnopqrstuvwxyz0123456789_.-")
doc = {"name": name, "version": 1, "timeout": "2m",
       "defaults": {"timeout": "10s", "retry": {"max_attempts": 3, "initial_backoff": "100ms", "multiplier": 2,
                                                "max_backoff": "1s", "jitter": "full"}},
       "steps": [
           {"name": steps["create_order"], "topic": "order.commands", "action": "order.create",
            "compensation": "order.cancel", "payload": {"order_id": "${input.order_id}", "items": "${input.items}"}},
           {"name": steps["reserve_inventory"], "topic": "inventory.commands", "action": "inventory.reserve",
            "compensation": "inventory.release", "payload": {"items": "${input.items}"}},
           {"name": steps["charge_payment"], "topic": "payment.commands", "action": "payment.charge",
            "compensation": "payment.refund", "retry": {"max_attempts": 1},
            "payload": {"customer": "${input.customer}", "amount": "${input.amount}"}},
           {"name": steps["notify"], "topic": "notification.commands", "action": "notification.send",
            "payload": {"order_id": "${input.order_id}",
                        "payment": "${steps.%s.output.payment_id}" % steps["charge_payment"]}}]}
json.dump(doc, open(f"{d}/sagas/max_ids.json", "w"), indent=1)
hostile = "\"\\'$%`{}[]<>|&;*?#~!=+^,:@()."
def saga_id(tag):
    s = "max-" + tag + "-"
    i = 0
    while len(s) < 127:
        s += (hostile + "abcXYZ019_-")[i % (len(hostile) + 11)]
        i += 1
    return s
ids = {"ok": saga_id("ok"), "no": saga_id("no")}
for tag, customer in (("ok", "c-1"), ("no", "c-broke")):
    sid = ids[tag]
    start = {"type": "saga.start", "message_id": "m-" + sid, "definition": name, "saga_id": sid,
             "input": {"order_id": "o-max-" + tag, "customer": customer, "amount": 700,
                       "items": [{"sku": "sku-2", "qty": 1}]}}
    open(f"{d}/start-{tag}.txt", "w").write(sid + "\t" + json.dumps(start) + "\n")
    open(f"{d}/id-{tag}", "w").write(sid)
open(f"{d}/def-name", "w").write(name)
for k, v in steps.items():
    open(f"{d}/step-{k}", "w").write(v)
PY
ok=$(cat "$DIR/id-ok"); no=$(cat "$DIR/id-no"); def=$(cat "$DIR/def-name"); charge=$(cat "$DIR/step-charge_payment")
q() { printf '%s' "${1//\'/\'\'}"; } # a value inside '...' in SQL
check "saga ids, definition and step names have 127 bytes" \
  eq "${#ok}/${#no}/${#def}/${#charge}" "127/127/127/127"
check "sagad --check accepts the definition" "$BUILD_DIR/bin/sagad" --check --sagas "$DIR/sagas"

stack_up
for tag in ok no; do
  kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t' <"$DIR/start-$tag.txt"
done
check "the 127-byte saga completes" wait_status "$(q "$ok")" completed 60
check "the 127-byte declined saga is compensated" wait_status "$(q "$no")" compensated 60
check "completed: every step succeeded on its first attempt" \
  eq "$(saga_sql "SELECT group_concat(status || '/' || attempt) FROM (SELECT status, attempt FROM steps WHERE saga_id='$(q "$ok")' ORDER BY idx)")" \
  "succeeded/1,succeeded/1,succeeded/1,succeeded/1"
check "compensated: order and stock compensated, charge failed, notify cancelled" \
  eq "$(saga_sql "SELECT group_concat(status) FROM (SELECT status FROM steps WHERE saga_id='$(q "$no")' ORDER BY idx)")" \
  "compensated,compensated,failed,cancelled"
check "compensated: PAYMENT_DECLINED" eq "$(saga_sql "SELECT error_code FROM sagas WHERE id='$(q "$no")'")" PAYMENT_DECLINED
check "compensations ran on their first attempt" \
  eq "$(saga_sql "SELECT count(*) FROM history WHERE saga_id='$(q "$no")' AND event IN ('compensation.retry_scheduled','step.retry_scheduled')")" 0
check "ledgers: the order of the completed saga, under its exact id" \
  eq "$(sql "$ORDER_DB" "SELECT status FROM orders WHERE saga_id='$(q "$ok")'")" created
check "ledgers: its charge, keyed by <id>/<127-byte step>/action" \
  eq "$(sql "$PAYMENT_DB" "SELECT status FROM charges WHERE idempotency_key='$(q "$ok")/$charge/action'")" charged
check "ledgers: the declined saga's order cancelled, its stock released" \
  eq "$(sql "$ORDER_DB" "SELECT status FROM orders WHERE saga_id='$(q "$no")'")/$(sql "$INVENTORY_DB" "SELECT status FROM reservations WHERE saga_id='$(q "$no")'")" \
  cancelled/released
check "the workers' reply ids fit: at most 400 bytes (longest here: $(sql "$PAYMENT_DB" "SELECT max(length(json_extract(reply, '\$.message_id'))) FROM processed"))" \
  test "$(sql "$PAYMENT_DB" "SELECT max(length(json_extract(reply, '\$.message_id'))) FROM processed")" -le 400
# the admin API: the id percent-encoded in the path, answered unchanged
enc=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$ok")
check "admin API: GET /v1/sagas/<encoded id> answers the saga with its exact id" python3 - "$ADMIN_URL/v1/sagas/$enc" "$ok" <<'PY'
import json, sys, urllib.request
doc = json.load(urllib.request.urlopen(sys.argv[1], timeout=10))
saga = doc.get("saga", doc)
assert saga["id"] == sys.argv[2] and saga["status"] == "completed", (saga.get("id"), saga.get("status"))
PY
check "nothing was dead-lettered" \
  eq "$(kcat -b "$BOOTSTRAP" -C -X isolation.level=read_committed -t saga.dlq -o beginning -e -q -X fetch.wait.max.ms=10 2>/dev/null | wc -l)" 0
check "sagactl audit passes" audit_passes
finish

#!/usr/bin/env bash
# A record the broker refuses for good is parked, not resent forever, and
# nothing delivered after it is sent twice (issue 13, item 1).
#
# On Apache Kafka (KAFKA=real) order.commands gets max.message.bytes=200000,
# as in the report; the dev broker has no topic configs, so there sagad's
# producer gets message.max.bytes=200000 (-X), which refuses the same record
# before it leaves (and the 300 KB saga.started event too: it is replaced by
# a saga.dropped stub). A start with a 300 KB field sits between 20 and 30
# good starts: its create_order command is refused; the step fails at once
# (PAYLOAD_TOO_LARGE), the saga compensates; every other saga completes, no
# message on any topic is delivered twice, the outbox drains, sagad runs on.
. "$(dirname "$0")/lib.sh"
python3 "$SAGA_SOURCE_DIR/tests/integration/webhook_receiver.py" "$DIR/alerts.jsonl" "$DIR/webhook.port" 200 &
RECEIVER=$!
it_on_exit 'kill $RECEIVER'
for _ in $(seq 50); do [ -s "$DIR/webhook.port" ] && break; sleep 0.1; done
export SAGAD_ARGS="${SAGAD_ARGS:-} --alert-webhook http://127.0.0.1:$(cat "$DIR/webhook.port")/hook"
if [ "${KAFKA:-}" != real ]; then
  export SAGAD_ARGS="$SAGAD_ARGS -X message.max.bytes=200000"
fi
stack_up
if [ "${KAFKA:-}" = real ]; then
  cache=${KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sagad/kafka-${KAFKA_VERSION:-3.9.1}}
  java -cp "$cache/libs/*" kafka.admin.ConfigCommand --bootstrap-server "$BOOTSTRAP" --alter \
    --entity-type topics --entity-name order.commands --add-config max.message.bytes=200000 \
    >"$DIR/config.out" 2>&1 || { cat "$DIR/config.out" >&2; fail "cannot set max.message.bytes on order.commands"; }
  sleep 1
fi
publish_starts okA 20
python3 - "$DIR" <<'PY' >"$DIR/big.txt"
import json, sys
ev = {"type": "saga.start", "message_id": "m-big-1", "definition": "order_fulfillment", "saga_id": "big-1",
      "input": {"order_id": "o-big-1", "customer": "c-1", "amount": 1000,
                "items": [{"sku": "sku-1", "qty": 1, "note": "x" * 300000}]}}
print("big-1\t" + json.dumps(ev, separators=(",", ":")))
PY
kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t' -X message.max.bytes=2000000 -l "$DIR/big.txt"
publish_starts okB 30

check "the refused saga compensates at once, its step failed with PAYLOAD_TOO_LARGE" \
  wait_count "SELECT s.status || '/' || st.status || '/' || st.error_code || '/' || st.attempt FROM sagas s
              JOIN steps st ON st.saga_id = s.id AND st.name = 'create_order' WHERE s.id = 'big-1'" \
  "compensated/failed/PAYLOAD_TOO_LARGE/1" 60
check "the error names the topic and the broker's reason" \
  eq "$(saga_sql "SELECT error_message LIKE '%order.commands%' AND error_message LIKE '%too large%' FROM steps WHERE saga_id='big-1' AND name='create_order'")" 1
check "the 50 good sagas around it complete" \
  wait_count "SELECT count(*) FROM sagas WHERE (id LIKE 'okA-%' OR id LIKE 'okB-%') AND status='completed'" 50 120
exactly_once okA 20 1000
exactly_once okB 30 1000
check "the outbox is drained" wait_count "SELECT count(*) FROM outbox" 0 30
check "the refused command is parked, with its reason" \
  eq "$(saga_sql "SELECT count(*) FROM outbox_parked WHERE topic='order.commands' AND key='big-1' AND outcome='step_failed' AND error LIKE '%too large%'")" 1
if [ "${KAFKA:-}" != real ]; then
  check "the refused 300 KB saga.started event is replaced by a stub" \
    eq "$(saga_sql "SELECT count(*) FROM outbox_parked WHERE topic='saga.events' AND key='big-1' AND outcome='stub_sent'")" 1
fi
refusals=$(grep -c "too large" "$DIR/sagad.log" || true)
check "the refusal is logged a few times, not thousands ($refusals)" test "$refusals" -lt 20
check "sagad still runs" kill -0 "$(cat "$DIR/sagad.pid")"
wait_alert() { local start=$SECONDS; until grep -q "$1" "$DIR/alerts.jsonl" 2>/dev/null; do [ $((SECONDS - start)) -lt 20 ] || return 1; sleep 0.2; done; }
check "an outbox_parked alert arrives" wait_alert '"alert":"outbox_parked"'
check "it names the topic, the saga and the outcome" python3 - "$DIR/alerts.jsonl" <<'PY'
import json, sys
hits = [a for a in map(json.loads, open(sys.argv[1])) if a.get("alert") == "outbox_parked"
        and a.get("topic") == "order.commands" and a.get("key") == "big-1" and a.get("outcome") == "step_failed"]
sys.exit(0 if hits else 1)
PY

check "/metrics counts the parked record" \
  bash -c "curl -sf '$ADMIN_URL/metrics' | grep -E '^sagad_outbox_parked_total [1-9]'"

# No record was delivered twice: every message id once per topic. On the
# dev broker only that every message arrived: a refused delivery aborts the
# relay transaction and its rows go out again, and the dev broker does not
# hide the aborted copies (Apache Kafka does, to read_committed).
for t in saga.events order.commands inventory.commands payment.commands notification.commands saga.dlq; do
  kcat -b "$BOOTSTRAP" -C -X isolation.level=read_committed -t "$t" -o beginning -e -q -X fetch.wait.max.ms=10 -X fetch.message.max.bytes=2000000 \
    -f '%s\n' >"$DIR/topic-$t.txt" 2>/dev/null || true
done
python3 - "$DIR" >"$DIR/counts.txt" <<'PY'
import collections, json, sys, glob
d = sys.argv[1]
dups, total = 0, 0
for f in glob.glob(f"{d}/topic-*.txt"):
    ids = collections.Counter()
    for line in open(f, errors="replace"):
        line = line.strip()
        if not line:
            continue
        try:
            ids[json.loads(line).get("message_id")] += 1
        except Exception:
            pass
    total += sum(ids.values())
    extra = {k: v for k, v in ids.items() if v > 1}
    if extra:
        print(f, "duplicates:", list(extra.items())[:5], file=sys.stderr)
        dups += len(extra)
print(total, dups)
PY
read -r total dups <"$DIR/counts.txt"
echo "# $total records read, $dups delivered more than once"
check "every saga's messages arrived (at least 50 x 9)" test "$total" -ge 450
if [ "${KAFKA:-}" = real ]; then check "no record on any topic was delivered twice" eq "$dups" 0; fi
if [ "${KAFKA:-}" != real ]; then
  check "saga.events has the saga.dropped stub in place of big-1's saga.started" \
    bash -c "grep -a '\"type\":\"saga.dropped\"' '$DIR/topic-saga.events.txt' | grep -a '\"original_message_id\":\"big-1/event/1\"' | grep -aq '\"event\":\"saga.started\"'"
fi
check "sagactl audit is clean" \
  "$BUILD_DIR/bin/sagactl" audit --saga-db "$SAGA_DB" --order-db "$ORDER_DB" --inventory-db "$INVENTORY_DB" \
    --payment-db "$PAYMENT_DB" --notification-db "$NOTIFICATION_DB"
publish_starts okC 5
check "later sagas complete" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'okC-%' AND status='completed'" 5 60
echo "$CHECKS passed, 0 failed"

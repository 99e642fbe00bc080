#!/usr/bin/env bash
# The alert webhook: a compensation that gives up (compensation_failed) and
# dead letters are POSTed to --alert-webhook; a receiver that fails at first
# (503) gets the alert again (retried with backoff).
. "$(dirname "$0")/lib.sh"
mkdir -p "$DIR/sagas"
cp "$SAGA_SOURCE_DIR/sagas/order_fulfillment.json" "$SAGA_SOURCE_DIR/tests/fixtures/alerting/unreachable.json" "$DIR/sagas/"
python3 "$SAGA_SOURCE_DIR/tests/integration/webhook_receiver.py" "$DIR/alerts.jsonl" "$DIR/webhook.port" 503,200 &
RECEIVER=$!
it_on_exit 'kill $RECEIVER'
for _ in $(seq 50); do [ -s "$DIR/webhook.port" ] && break; sleep 0.1; done
export SAGAS_DIR="$DIR/sagas" SAGAD_ARGS="--alert-webhook http://127.0.0.1:$(cat "$DIR/webhook.port")/hook"
stack_up
echo "stuck-1	{\"type\":\"saga.start\",\"message_id\":\"m-stuck-1\",\"definition\":\"unreachable\",\"saga_id\":\"stuck-1\"}" |
  kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t'
check "the saga parks in compensation_failed" wait_count "SELECT status FROM sagas WHERE id='stuck-1'" compensation_failed 30
wait_alert() { local start=$SECONDS; until grep -q "$1" "$DIR/alerts.jsonl" 2>/dev/null; do [ $((SECONDS - start)) -lt 20 ] || return 1; sleep 0.2; done; }
check "a compensation_failed alert arrives" wait_alert '"alert":"compensation_failed"'
check "it names the saga and the step" grep -q '"saga_id":"stuck-1".*"step":"call_nobody"\|"step":"call_nobody".*"saga_id":"stuck-1"' "$DIR/alerts.jsonl"
twice() { local start=$SECONDS; until [ "$(grep -c '"alert":"compensation_failed"' "$DIR/alerts.jsonl")" = 2 ]; do [ $((SECONDS - start)) -lt 10 ] || return 1; sleep 0.2; done; }
check "the first delivery got 503 and was retried: it arrived twice" twice
echo 'not json' | kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start
check "dead letters raise an alert (within the 10 s report period)" wait_alert '"alert":"dead_letters"'
python3 - "$DIR/alerts.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    a = json.loads(line)
    assert a["type"] == "saga.alert" and a["at"].endswith("Z"), a
PY
check "every alert is a saga.alert JSON document with a time" true
echo "$CHECKS passed, 0 failed"

#!/usr/bin/env bash
# The 3 a.m. drill: a compensation keeps failing -> the alert arrives ->
# `sagactl list --status compensation_failed` finds the saga -> `sagactl show`
# names the step and the error -> the participant recovers -> `sagactl retry`
# -> the saga ends compensated, with the order cancelled once.
. "$(dirname "$0")/lib.sh"
mkdir -p "$DIR/sagas"
cp "$SAGA_SOURCE_DIR/sagas/order_fulfillment.json" "$SAGA_SOURCE_DIR/tests/fixtures/alerting/drill.json" "$DIR/sagas/"
python3 "$SAGA_SOURCE_DIR/tests/integration/webhook_receiver.py" "$DIR/alerts.jsonl" "$DIR/webhook.port" 200 &
RECEIVER=$!
it_on_exit 'kill $RECEIVER'
for _ in $(seq 50); do [ -s "$DIR/webhook.port" ] && break; sleep 0.1; done
echo "drill-$RANDOM" >"$DIR/token"
export SAGAS_DIR="$DIR/sagas" \
  SAGAD_ARGS="--alert-webhook http://127.0.0.1:$(cat "$DIR/webhook.port")/hook --admin-token-file $DIR/token"
stack_up
ctl() { SAGA_ADMIN_TOKEN_FILE="$DIR/token" "$BUILD_DIR/bin/sagactl" --url "$ADMIN_URL" "$@"; }

echo 'd-1	{"type":"saga.start","message_id":"m-d-1","definition":"drill","saga_id":"d-1","input":{"order_id":"o-d-1","customer":"c-broke","amount":700,"items":[{"sku":"sku-1","qty":1}]}}' |
  kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t'
check "the order is created" wait_count "SELECT status FROM steps WHERE saga_id='d-1' AND name='create_order'" succeeded 30
kill -STOP "$ORDER_WORKER_PID"   # the order service hangs: its compensation cannot run
check "the declined payment parks the saga in compensation_failed" \
  wait_count "SELECT status FROM sagas WHERE id='d-1'" compensation_failed 60
wait_alert() { local start=$SECONDS; until grep -q "$1" "$DIR/alerts.jsonl" 2>/dev/null; do [ $((SECONDS - start)) -lt 20 ] || return 1; sleep 0.2; done; }
check "the operator is alerted" wait_alert '"alert":"compensation_failed".*"saga_id":"d-1"\|"saga_id":"d-1".*"alert":"compensation_failed"'
check "sagactl list --status compensation_failed finds it" grep -q "d-1" <<<"$(ctl list --status compensation_failed)"
show=$(ctl show d-1)
check "sagactl show names the step" grep -q "create_order.*compensation_failed" <<<"$show"
check "and the error" grep -q "STEP_TIMEOUT" <<<"$show"
check "and the reason and the way out" grep -q "Reason .*create_order" <<<"$show"
kill -CONT "$ORDER_WORKER_PID"   # the participant recovers
check "sagactl retry is accepted" ctl retry d-1
check "the saga ends compensated" wait_count "SELECT status FROM sagas WHERE id='d-1'" compensated 60
check "the order was cancelled exactly once" \
  eq "$(sql "$ORDER_DB" "SELECT status || '/' || (SELECT count(*) FROM processed WHERE saga_id='d-1' AND kind='compensation') FROM orders WHERE saga_id='d-1'")" "cancelled/1"
check "the history shows the operator's retry" grep -q "saga.retried" <<<"$(ctl show d-1)"
# The past, rebuilt from history: at the moment it parked, it was compensation_failed.
parked=$(saga_sql "SELECT at FROM history WHERE saga_id='d-1' AND event='saga.compensation_failed'")
at=$(python3 -c "import datetime,sys; print(datetime.datetime.fromtimestamp(int(sys.argv[1])/1000, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]+'Z')" "$parked")
check "GET ?at= the moment it parked shows compensation_failed" \
  grep -q '"status":"compensation_failed"' <<<"$(curl -s "$ADMIN_URL/v1/sagas/d-1?at=$at")"
check "GET ?at= now shows compensated" grep -q '"status":"compensated"' <<<"$(curl -s "$ADMIN_URL/v1/sagas/d-1?at=2100-01-01T00:00:00Z")"
check "GET ?at= before it started is 404" eq "$(curl -s -o /dev/null -w '%{http_code}' "$ADMIN_URL/v1/sagas/d-1?at=2000-01-01T00:00:00Z")" 404
check "GET ?at=garbage is 400" eq "$(curl -s -o /dev/null -w '%{http_code}' "$ADMIN_URL/v1/sagas/d-1?at=yesterday")" 400
echo "$CHECKS passed, 0 failed"

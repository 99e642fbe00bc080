#!/usr/bin/env bash
# The notification worker's webhook (--webhook-url) against a local receiver
# (webhook_receiver.py on 127.0.0.1, random port):
#  - 200: delivered once, delivered_at recorded, the saga completes;
#  - 503 then 200: a `retry` reply, sagad backs off, attempt 2 delivers;
#  - 400: a business failure, the saga compensates (refund, release, cancel).
. "$(dirname "$0")/e2e_lib.sh"
e2e_env
python3 "$E2E_DIR/webhook_receiver.py" "$DIR/webhook.port" "$DIR/webhook.log" &
RECEIVER=$!
# keep the script's exit status for it_cleanup (which reads $?)
trap 'rc=$?; kill -TERM $RECEIVER 2>/dev/null || true; (exit $rc); it_cleanup' EXIT
for _ in $(seq 50); do [ -s "$DIR/webhook.port" ] && break; sleep 0.1; done
[ -s "$DIR/webhook.port" ] || fail "the webhook receiver did not start"
HOOK="http://127.0.0.1:$(cat "$DIR/webhook.port")/hook"
export NOTIFICATION_WORKER_ARGS="--webhook-url $HOOK --webhook-timeout-ms 2000"
stack_up

publish_saga hook-ok order_fulfillment c-1 sku-1 1100 o-hook-ok
publish_saga hook-flaky order_fulfillment c-1 sku-1 1200 o-flaky-1
publish_saga hook-reject order_fulfillment c-1 sku-1 1300 o-reject-1
check "hook-ok completed" wait_status hook-ok completed 60
check "hook-flaky completed" wait_status hook-flaky completed 60
check "hook-reject compensated" wait_status hook-reject compensated 60

posts() { grep -c "\"idempotency_key\": \"$1/notify/action\"" "$DIR/webhook.log" || true; }
statuses() { grep "\"idempotency_key\": \"$1/notify/action\"" "$DIR/webhook.log" | sed 's/.*"status": \([0-9]*\).*/\1/' | paste -sd, -; }
check "hook-ok: one POST, 200" eq "$(statuses hook-ok)" 200
check "hook-ok: the POST carried the notification as JSON" \
  grep -q '"order_id": "o-hook-ok".*"content_type": "application/json".*"notification_id": "ntf-hook-ok/notify"' "$DIR/webhook.log"
check "hook-ok: delivered_at recorded" \
  eq "$(sql "$NOTIFICATION_DB" "SELECT delivered_at IS NOT NULL FROM notifications WHERE saga_id='hook-ok'")" 1
check "hook-ok: output says delivered" \
  eq "$(saga_sql "SELECT json_extract(output, '\$.delivered') || '/' || json_extract(output, '\$.http_status') FROM steps WHERE saga_id='hook-ok' AND name='notify'")" "1/200"

check "hook-flaky: 503 then 200" eq "$(statuses hook-flaky)" "503,200"
check "hook-flaky: retry scheduled on WEBHOOK_UNAVAILABLE, then delivered" in_history hook-flaky \
  step.started:notify step.retry_scheduled:notify step.started:notify step.succeeded:notify saga.completed
check "hook-flaky: notify took 2 attempts" eq "$(saga_sql "SELECT attempt FROM steps WHERE saga_id='hook-flaky' AND name='notify'")" 2
check "hook-flaky: one notification row, delivered" \
  eq "$(sql "$NOTIFICATION_DB" "SELECT count(*) || '/' || sum(delivered_at IS NOT NULL) FROM notifications WHERE saga_id='hook-flaky'")" "1/1"

check "hook-reject: one POST, 400" eq "$(statuses hook-reject)" 400
check "hook-reject: WEBHOOK_REJECTED, then everything compensated" in_history hook-reject \
  step.failed:notify saga.compensating compensation.succeeded:charge_payment \
  compensation.succeeded:reserve_inventory compensation.succeeded:create_order saga.compensated
check "hook-reject: error code" eq "$(saga_sql "SELECT error_code FROM sagas WHERE id='hook-reject'")" WEBHOOK_REJECTED
check "hook-reject: no notification row (rolled back), charge refunded" \
  eq "$(sql "$NOTIFICATION_DB" "SELECT count(*) FROM notifications WHERE saga_id='hook-reject'")/$(sql "$PAYMENT_DB" "SELECT status FROM charges WHERE saga_id='hook-reject'")" "0/refunded"
check "sagactl audit passes" audit_passes
finish

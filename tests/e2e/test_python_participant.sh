#!/usr/bin/env bash
# order_fulfillment with its notify step served by the Python participant
# (workers/python, NOTIFICATION_WORKER_BIN) in place of the C worker, with a
# webhook (webhook_receiver.py) so that its failure and retry replies count:
#  - 3 sagas complete; an out-of-stock and a declined one compensate before
#    notify; o-reject: its WEBHOOK_REJECTED failure compensates the three C
#    steps; o-flaky: its retry reply, then attempt 2 delivers; saga ids of the
#    maximum length (127 bytes) complete and compensate;
#  - 30 more sagas with the participant slowed (--delay-ms 100): kill -9 mid-run,
#    restarted with `scripts/stack start-one`: every saga completes, every
#    notification recorded once (its ledger), sagactl audit passes.
. "$(dirname "$0")/e2e_lib.sh"
e2e_env
# wait_notifications N: until the Python ledger holds N notifications of kill-* sagas (30 s)
wait_notifications() {
  for _ in $(seq 300); do
    [ "$(sql "$NOTIFICATION_DB" "SELECT count(*) FROM notifications WHERE saga_id LIKE 'kill-%'")" -ge "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
export NOTIFICATION_WORKER_BIN="$SAGA_SOURCE_DIR/workers/python/bin/notification-worker"
python3 "$E2E_DIR/webhook_receiver.py" "$DIR/webhook.port" "$DIR/webhook.log" &
RECEIVER=$!
it_on_exit "kill -TERM $RECEIVER"
for _ in $(seq 50); do [ -s "$DIR/webhook.port" ] && break; sleep 0.1; done
[ -s "$DIR/webhook.port" ] || fail "the webhook receiver did not start"
export NOTIFICATION_WORKER_ARGS="--webhook-url http://127.0.0.1:$(cat "$DIR/webhook.port")/hook --delay-ms 100"
stack_up
check "the notification worker is the Python participant" \
  grep -q "examples/notification.py" "/proc/$NOTIFICATION_WORKER_PID/cmdline"

publish_starts py 3 c-1 sku-1 1500
publish_saga py-oos order_fulfillment c-2 sku-empty 1000
publish_saga py-declined order_fulfillment c-broke sku-1 2500
publish_saga py-reject order_fulfillment c-1 sku-2 1300 o-reject-1
publish_saga py-flaky order_fulfillment c-1 sku-1 1200 o-flaky-1
# saga ids of the maximum length (127 bytes, docs/PROTOCOL.md "Limits"): one completes, one compensates
LONG_OK=$(printf 'py-long-ok-%0116d' 1) LONG_REJECT=$(printf 'py-long-rj-%0116d' 2)
publish_saga "$LONG_OK" order_fulfillment c-1 sku-1 1100
publish_saga "$LONG_REJECT" order_fulfillment c-1 sku-1 1100 o-reject-long
check "3 sagas completed" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'py-_' AND status='completed'" 3 60
for n in 1 2 3; do
  check "py-$n: history in order" in_history "py-$n" step.succeeded:charge_payment \
    step.started:notify step.succeeded:notify saga.completed
done
check "py-oos compensated (OUT_OF_STOCK), notify never ran" wait_status py-oos compensated 60
check "py-declined compensated (PAYMENT_DECLINED)" wait_status py-declined compensated 60
check "error codes" eq "$(saga_sql "SELECT group_concat(error_code) FROM (SELECT error_code FROM sagas WHERE id IN ('py-oos','py-declined') ORDER BY id)")" \
  "PAYMENT_DECLINED,OUT_OF_STOCK"
check "py-reject compensated after the Python participant's failure" wait_status py-reject compensated 60
check "py-reject: WEBHOOK_REJECTED, then the C steps compensated in reverse" in_history py-reject \
  step.failed:notify saga.compensating compensation.succeeded:charge_payment \
  compensation.succeeded:reserve_inventory compensation.succeeded:create_order saga.compensated
check "py-reject: charge refunded, stock released, order cancelled" eq \
  "$(sql "$PAYMENT_DB" "SELECT status FROM charges WHERE saga_id='py-reject'")/$(sql "$INVENTORY_DB" "SELECT status FROM reservations WHERE saga_id='py-reject'")/$(sql "$ORDER_DB" "SELECT status FROM orders WHERE saga_id='py-reject'")" \
  "refunded/released/cancelled"
check "py-flaky completed on attempt 2 after a retry reply" wait_status py-flaky completed 60
check "py-flaky: retry scheduled, then succeeded" in_history py-flaky \
  step.started:notify step.retry_scheduled:notify step.started:notify step.succeeded:notify
check "a 127-byte saga id completes" wait_status "$LONG_OK" completed 60
check "a 127-byte saga id compensates after the Python participant's failure" wait_status "$LONG_REJECT" compensated 60
check "127-byte ids: notify answered by the Python participant (success, WEBHOOK_REJECTED)" \
  eq "$(sql "$NOTIFICATION_DB" "SELECT group_concat(length(saga_id) || ':' || status || ':' || coalesce(error_code, '-')) FROM (SELECT * FROM processed WHERE saga_id LIKE 'py-long-%' ORDER BY saga_id)")" \
  "127:success:-,127:failure:WEBHOOK_REJECTED"
check "the Python ledger: a notification for each completed saga, none for the others" \
  eq "$(sql "$NOTIFICATION_DB" "SELECT group_concat(saga_id) FROM (SELECT saga_id FROM notifications ORDER BY saga_id)")" \
  "py-1,py-2,py-3,py-flaky,$LONG_OK"
check "the Python ledger: the rejection recorded as a failure, the retry not at all" \
  eq "$(sql "$NOTIFICATION_DB" "SELECT group_concat(saga_id || ':' || status || ':' || coalesce(error_code, '-') || ':' || attempt) FROM (SELECT * FROM processed WHERE saga_id IN ('py-reject','py-flaky') ORDER BY saga_id)")" \
  "py-flaky:success:-:2,py-reject:failure:WEBHOOK_REJECTED:1"
check "sagactl audit passes" audit_passes

# kill -9 mid-run: some notifications recorded, not all
publish_starts kill 30 c-1 sku-1 1000
check "the participant is under way" wait_notifications 3
pid=$NOTIFICATION_WORKER_PID
kill -KILL "$pid"
at_kill=$(sql "$NOTIFICATION_DB" "SELECT count(*) FROM notifications WHERE saga_id LIKE 'kill-%'")
check "killed mid-run ($at_kill of 30 recorded)" test "$at_kill" -lt 30
check "it died of SIGKILL (status 137)" wait_exit notification-worker 10
check "status 137" eq "$(exit_status_of notification-worker)" 137
"$STACK" start-one notification-worker "$DIR" >"$DIR/start-one.out" 2>&1 ||
  { cat "$DIR/start-one.out" >&2; fail "start-one notification-worker"; }
reload_env
check "the Python participant runs again" grep -q "examples/notification.py" "/proc/$NOTIFICATION_WORKER_PID/cmdline"
check "all 30 sagas completed after the restart" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'kill-%' AND status='completed'" 30 120
exactly_once kill 30 1000
check "the Python ledger: one processed row and one notification per saga" \
  eq "$(sql "$NOTIFICATION_DB" "SELECT (SELECT count(*) || '/' || count(DISTINCT saga_id) FROM processed WHERE saga_id LIKE 'kill-%') || ' ' || (SELECT count(*) || '/' || count(DISTINCT idempotency_key) FROM notifications WHERE saga_id LIKE 'kill-%')")" \
  "30/30 30/30"
check "every kill saga's notification was POSTed (at least once: a kill between POST and commit repeats it)" \
  eq "$(grep -o '"idempotency_key": "kill-[0-9]*/notify/action"' "$DIR/webhook.log" | sort -u | wc -l)" 30
check "sagactl audit passes after the kill" audit_passes
check "audit saw every saga" audit_says "sagas: 39 (completed 35, compensated 4, compensation_failed 0, in flight 0)"
finish

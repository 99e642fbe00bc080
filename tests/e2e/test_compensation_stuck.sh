#!/usr/bin/env bash
# A compensation that keeps failing: the order worker's test trigger
# (ORDER_WORKER_TEST_TRIGGERS=1) answers every cancel of an o-stuck* order
# with `retry`; with 3 compensation attempts (order_short_compensation) the
# saga ends compensation_failed. The worker is then restarted without the
# trigger ("the participant recovers") and an operator retries the saga
# (POST /v1/sagas/ID/retry): it ends compensated.
. "$(dirname "$0")/e2e_lib.sh"
e2e_env
export ORDER_WORKER_TEST_TRIGGERS=1
stack_up
publish_saga stuck-1 order_short_compensation c-broke sku-1 900 o-stuck-1
check "stuck-1 compensation_failed" wait_status stuck-1 compensation_failed 60
check "history: inventory compensated, order cancel retried then failed" in_history stuck-1 \
  step.failed:charge_payment saga.compensating compensation.succeeded:reserve_inventory \
  compensation.started:create_order compensation.retry_scheduled:create_order \
  compensation.failed:create_order saga.compensation_failed
check "3 cancel attempts" eq "$(saga_sql "SELECT comp_attempt FROM steps WHERE saga_id='stuck-1' AND name='create_order'")" 3
check "order still created, stock released" \
  eq "$(sql "$ORDER_DB" "SELECT status FROM orders WHERE saga_id='stuck-1'")/$(sql "$INVENTORY_DB" "SELECT status FROM reservations WHERE saga_id='stuck-1'")" "created/released"
check "audit passes and lists the saga for an operator" audit_passes
check "audit names stuck-1" audit_says "waiting for an operator (compensation_failed) (1): stuck-1"

# the participant recovers: restarted without the trigger
kill -TERM "$ORDER_WORKER_PID"
check "order worker stopped" wait_exit order-worker 30
ORDER_WORKER_TEST_TRIGGERS="" "$STACK" start-one order-worker "$DIR" >"$DIR/start-one.out" 2>&1 ||
  { cat "$DIR/start-one.out" >&2; fail "start-one order-worker"; }
reload_env

code=$(admin_post /v1/sagas/stuck-1/retry)
check "operator retry accepted (202)" eq "$code" 202
check "stuck-1 compensated" wait_status stuck-1 compensated 60
check "history: retried, then the order compensated" in_history stuck-1 \
  saga.compensation_failed saga.retried compensation.succeeded:create_order saga.compensated
check "order cancelled" eq "$(sql "$ORDER_DB" "SELECT status FROM orders WHERE saga_id='stuck-1'")" cancelled
check "a second retry is refused (409)" \
  eq "$(admin_post /v1/sagas/stuck-1/retry)" 409
check "sagactl audit passes, nothing waits for an operator" audit_passes
check "audit: no compensation_failed left" audit_says "compensation_failed 0"
finish

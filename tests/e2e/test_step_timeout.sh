#!/usr/bin/env bash
# Step timeout with the reply arriving late. The payment trigger makes
# attempt 1 of a charge for c-slow take 5 s; the definitions give the
# payment step 2 s (generous: under ASan one hop takes up to a second).
#  - order_slow_payment (5 attempts): attempt 1 times out and is retried; its
#    late reply is stale; a later attempt gets the stored outcome: charged
#    exactly once, completed.
#  - order_timeout_once (1 attempt): the outcome is unknown, so the charge is
#    compensated; the refund runs after the late charge: money restored.
. "$(dirname "$0")/e2e_lib.sh"
e2e_env
export PAYMENT_WORKER_TEST_TRIGGERS=1 PAYMENT_WORKER_TEST_SLOW_MS=5000
stack_up
publish_saga slow-1 order_slow_payment c-slow sku-1 3100
check "slow-1 completed" wait_status slow-1 completed 60
check "slow-1: timeout, retry, success" in_history slow-1 \
  step.started:charge_payment step.retry_scheduled:charge_payment step.started:charge_payment \
  step.succeeded:charge_payment saga.completed
check "slow-1: the retry was a STEP_TIMEOUT" \
  test "$(saga_sql "SELECT count(*) FROM history WHERE saga_id='slow-1' AND event='step.retry_scheduled' AND detail LIKE '%STEP_TIMEOUT%'")" -ge 1
check "slow-1: more than one attempt" test "$(saga_sql "SELECT attempt FROM steps WHERE saga_id='slow-1' AND name='charge_payment'")" -ge 2
check "slow-1: the ledger ran attempt 1 (the late one) and nothing else" \
  eq "$(sql "$PAYMENT_DB" "SELECT count(*) || '/' || min(attempt) FROM processed WHERE saga_id='slow-1'")" "1/1"
check "slow-1: charged exactly once" eq "$(sql "$PAYMENT_DB" "SELECT count(*) || '/' || status FROM charges WHERE saga_id='slow-1'")" "1/charged"

publish_saga once-1 order_timeout_once c-slow sku-1 2700
check "once-1 compensated" wait_status once-1 compensated 60
check "once-1: the payment outcome is unknown, then compensated" in_history once-1 \
  step.started:charge_payment step.unknown:charge_payment saga.compensating \
  compensation.succeeded:charge_payment compensation.succeeded:reserve_inventory \
  compensation.succeeded:create_order saga.compensated
check "once-1: the late charge ran, then was refunded" \
  eq "$(sql "$PAYMENT_DB" "SELECT count(*) || '/' || status FROM charges WHERE saga_id='once-1'")" "1/refunded"
check "once-1: c-slow got its money back (only slow-1 is charged)" \
  eq "$(sql "$PAYMENT_DB" "SELECT initial - balance FROM accounts WHERE customer='c-slow'")" 3100
check "once-1: order cancelled, stock released" \
  eq "$(sql "$ORDER_DB" "SELECT status FROM orders WHERE saga_id='once-1'")/$(sql "$INVENTORY_DB" "SELECT status FROM reservations WHERE saga_id='once-1'")" "cancelled/released"
check "sagactl audit passes" audit_passes
finish

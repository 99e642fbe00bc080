#!/usr/bin/env bash
# A transient payment failure, then success: the payment worker's test
# trigger (PAYMENT_WORKER_TEST_TRIGGERS=1) answers attempt 1 of a charge for
# customer c-flaky with `retry`; sagad backs off and attempt 2 charges once.
. "$(dirname "$0")/e2e_lib.sh"
e2e_env
export PAYMENT_WORKER_TEST_TRIGGERS=1
stack_up
publish_saga flaky-1 order_fulfillment c-flaky sku-1 4200
check "flaky-1 completed" wait_status flaky-1 completed 60
check "history: retry scheduled, then the charge succeeded" in_history flaky-1 \
  step.started:charge_payment step.retry_scheduled:charge_payment step.started:charge_payment \
  step.succeeded:charge_payment step.succeeded:notify saga.completed
check "the retry was for TEST_TRANSIENT" \
  eq "$(saga_sql "SELECT count(*) FROM history WHERE saga_id='flaky-1' AND event='step.retry_scheduled' AND detail LIKE '%TEST_TRANSIENT%'")" 1
check "charge_payment took 2 attempts" eq "$(saga_sql "SELECT attempt FROM steps WHERE saga_id='flaky-1' AND name='charge_payment'")" 2
check "the ledger recorded attempt 2 only" eq "$(sql "$PAYMENT_DB" "SELECT attempt || '/' || status FROM processed WHERE saga_id='flaky-1'")" "2/success"
check "charged once, the right amount" eq "$(sql "$PAYMENT_DB" "SELECT count(*) || '/' || sum(amount) FROM charges WHERE saga_id='flaky-1' AND status='charged'")" "1/4200"
check "balance down by the amount" eq "$(sql "$PAYMENT_DB" "SELECT initial - balance FROM accounts WHERE customer='c-flaky'")" 4200
check "sagactl audit passes" audit_passes
finish

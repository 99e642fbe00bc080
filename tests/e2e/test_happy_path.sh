#!/usr/bin/env bash
# Happy path: three orders complete; every step ran once, in order; the
# ledgers agree (exactly_once, sagactl audit).
. "$(dirname "$0")/e2e_lib.sh"
e2e_env
stack_up
publish_starts happy 3 c-1 sku-1 1999
check "3 sagas completed" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'happy-%' AND status='completed'" 3 60
for n in 1 2 3; do
  check "happy-$n: history in order" in_history "happy-$n" saga.started \
    step.started:create_order step.succeeded:create_order \
    step.started:reserve_inventory step.succeeded:reserve_inventory \
    step.started:charge_payment step.succeeded:charge_payment \
    step.started:notify step.succeeded:notify saga.completed
  check "happy-$n: no retry, no compensation" not_in_history "happy-$n" saga.compensating
done
check "each step attempted once" eq "$(saga_sql "SELECT count(*) FROM steps WHERE saga_id LIKE 'happy-%' AND attempt=1 AND status='succeeded'")" 12
exactly_once happy 3 1999
check "the charge is what the saga says" eq "$(sql "$PAYMENT_DB" "SELECT amount FROM charges WHERE saga_id='happy-2'")" 1999
check "sagactl audit passes" audit_passes
check "audit saw 3 completed sagas" audit_says "sagas: 3 (completed 3, compensated 0, compensation_failed 0, in flight 0)"
finish

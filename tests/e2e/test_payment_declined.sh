#!/usr/bin/env bash
# Payment declined: stock restored, order cancelled, in reverse order
# ("PaymentFailed -> restock").
. "$(dirname "$0")/e2e_lib.sh"
e2e_env
stack_up
before=$(sql "$INVENTORY_DB" "SELECT available FROM stock WHERE sku='sku-2'")
publish_saga declined-1 order_fulfillment c-broke sku-2 2500
check "declined-1 compensated" wait_status declined-1 compensated 60
check "error is PAYMENT_DECLINED" eq "$(saga_sql "SELECT error_code FROM sagas WHERE id='declined-1'")" PAYMENT_DECLINED
check "history: charge failed, inventory then order compensated" in_history declined-1 \
  saga.started step.succeeded:create_order step.succeeded:reserve_inventory step.failed:charge_payment \
  saga.compensating compensation.started:reserve_inventory compensation.succeeded:reserve_inventory \
  compensation.started:create_order compensation.succeeded:create_order saga.compensated
check "steps: compensated, compensated, failed, cancelled" \
  eq "$(saga_sql "SELECT group_concat(status) FROM (SELECT status FROM steps WHERE saga_id='declined-1' ORDER BY idx)")" \
  "compensated,compensated,failed,cancelled"
check "stock restored" eq "$(sql "$INVENTORY_DB" "SELECT available FROM stock WHERE sku='sku-2'")" "$before"
check "reservation released" eq "$(sql "$INVENTORY_DB" "SELECT status FROM reservations WHERE saga_id='declined-1'")" released
check "order cancelled" eq "$(sql "$ORDER_DB" "SELECT status FROM orders WHERE saga_id='declined-1'")" cancelled
check "no charge" eq "$(sql "$PAYMENT_DB" "SELECT count(*) FROM charges WHERE saga_id='declined-1'")" 0
check "balance untouched" eq "$(sql "$PAYMENT_DB" "SELECT balance FROM accounts WHERE customer='c-broke'")" 0
check "sagactl audit passes" audit_passes
finish

#!/usr/bin/env bash
# Out of stock: the reservation fails (business failure, no retry), the
# order is cancelled, payment and notification never run.
. "$(dirname "$0")/e2e_lib.sh"
e2e_env
stack_up
publish_saga oos-1 order_fulfillment c-1 sku-empty 1500
publish_saga ok-1 order_fulfillment c-1 sku-1 1500
check "oos-1 compensated" wait_status oos-1 compensated 60
check "ok-1 completed" wait_status ok-1 completed 60
check "error is OUT_OF_STOCK" eq "$(saga_sql "SELECT error_code FROM sagas WHERE id='oos-1'")" OUT_OF_STOCK
check "history: reserve failed once, order compensated, later steps cancelled" in_history oos-1 \
  saga.started step.succeeded:create_order step.started:reserve_inventory step.failed:reserve_inventory \
  saga.compensating compensation.succeeded:create_order saga.compensated
check "no retry of a business failure" not_in_history oos-1 step.retry_scheduled:reserve_inventory
check "payment and notify never started" eq "$(saga_sql "SELECT group_concat(status) FROM steps WHERE saga_id='oos-1' AND name IN ('charge_payment','notify')")" "cancelled,cancelled"
check "order cancelled" eq "$(sql "$ORDER_DB" "SELECT status FROM orders WHERE saga_id='oos-1'")" cancelled
check "nothing reserved" eq "$(sql "$INVENTORY_DB" "SELECT count(*) FROM reservations WHERE saga_id='oos-1'")" 0
check "the failure is recorded once in the inventory ledger" \
  eq "$(sql "$INVENTORY_DB" "SELECT status || '/' || error_code FROM processed WHERE saga_id='oos-1' AND kind='action'")" "failure/OUT_OF_STOCK"
check "nothing charged, nothing notified" eq "$(sql "$PAYMENT_DB" "SELECT count(*) FROM processed WHERE saga_id='oos-1'")/$(sql "$NOTIFICATION_DB" "SELECT count(*) FROM processed WHERE saga_id='oos-1'")" 0/0
check "sagactl audit passes" audit_passes
check "audit saw 1 compensated saga" audit_says "compensated 1"
finish

#!/usr/bin/env bash
# Business failures through the real stack: out of stock and a declined
# payment compensate in reverse order and restore stock and money.
. "$(dirname "$0")/lib.sh"
stack_up
publish_starts ok 5
publish_starts oos 3 c-1 sku-empty
publish_starts broke 3 c-broke sku-1
check "all 11 sagas ended" wait_count "SELECT count(*) FROM sagas WHERE status IN ('completed','compensated')" 11 60
check "happy sagas completed" eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'ok-%' AND status='completed'")" 5
check "out-of-stock sagas compensated" eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'oos-%' AND status='compensated' AND error_code='OUT_OF_STOCK'")" 3
check "declined sagas compensated" eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'broke-%' AND status='compensated' AND error_code='PAYMENT_DECLINED'")" 3
check "declined: order cancelled" eq "$(sql "$ORDER_DB" "SELECT count(*) FROM orders WHERE saga_id LIKE 'broke-%' AND status='cancelled'")" 3
check "declined: stock released" eq "$(sql "$INVENTORY_DB" "SELECT count(*) FROM reservations WHERE saga_id LIKE 'broke-%' AND status='released'")" 3
check "declined: nothing charged" eq "$(sql "$PAYMENT_DB" "SELECT count(*) FROM charges WHERE saga_id LIKE 'broke-%' AND status='charged'")" 0
check "out of stock: order cancelled, nothing reserved" eq "$(sql "$ORDER_DB" "SELECT count(*) FROM orders WHERE saga_id LIKE 'oos-%' AND status='cancelled'")" 3
check "compensation ran in reverse order (inventory before order)" \
  eq "$(saga_sql "SELECT count(*) FROM sagas s WHERE id LIKE 'broke-%' AND (SELECT seq FROM history WHERE saga_id=s.id AND event='compensation.succeeded' AND step='reserve_inventory') < (SELECT seq FROM history WHERE saga_id=s.id AND event='compensation.succeeded' AND step='create_order')")" 3
check "stock conserved" eq "$(sql "$INVENTORY_DB" "SELECT (SELECT sum(initial - available) FROM stock) = (SELECT coalesce(sum(qty), 0) FROM reservations WHERE status='reserved')")" 1
check "money conserved" eq "$(sql "$PAYMENT_DB" "SELECT (SELECT sum(initial - balance) FROM accounts) = (SELECT coalesce(sum(amount), 0) FROM charges WHERE status='charged')")" 1
check "history gap-free" history_gap_free
echo "$CHECKS passed, 0 failed"

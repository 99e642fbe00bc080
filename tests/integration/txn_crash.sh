# Sourced by test_txn_crash_*.sh with CRASH_AT set (issue 14 item 2): sagad
# dies (_exit 137, SAGAD_CRASH_AT) at that point of the commit sequence
# (docs/DESIGN.md, "The commit sequence") while 200 mixed sagas run; after
# `scripts/stack restart-sagad` every saga ends in the status its input
# determines and `sagactl audit` passes (no step ran twice in effect).
. "$(dirname "$0")/lib.sh"
: "${CRASH_AT:?set by the wrapper}"
SAGACTL="$BUILD_DIR/bin/sagactl"
export SAGAD_CRASH_AT=$CRASH_AT SAGAD_CRASH_AFTER=${CRASH_AFTER:-8}
stack_up
unset SAGAD_CRASH_AT SAGAD_CRASH_AFTER
publish_starts ok 120                         # completes
publish_starts broke 40 c-broke sku-1 5000    # payment declined: compensated
publish_starts empty 40 c-1 sku-empty 999     # out of stock: compensated
check "sagad crashed at $CRASH_AT" wait_exit sagad 90
check "its exit status is the crash point's (137)" eq "$(exit_status_of sagad)" 137
grep -q "crash point $CRASH_AT reached" "$DIR/sagad.log" || fail "no crash-point line in sagad.log"
open=$(saga_sql "SELECT count(*) FROM sagas WHERE status NOT IN ('completed','compensated','compensation_failed')")
total=$(saga_sql "SELECT count(*) FROM sagas")
echo "# at the crash: $total saga(s) stored, $open not finished"
"$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart of sagad"
reload_env
check "all 200 sagas finished after the restart" \
  wait_count "SELECT count(*) FROM sagas WHERE status IN ('completed','compensated','compensation_failed')" 200 180
check "ok-*: 120 completed" eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'ok-%' AND status='completed'")" 120
check "broke-*: 40 compensated (payment declined)" \
  eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'broke-%' AND status='compensated'")" 40
check "empty-*: 40 compensated (out of stock)" \
  eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'empty-%' AND status='compensated'")" 40
exactly_once ok 120 1000
check "the history of every saga is gap-free" history_gap_free
check "outbox drained after recovery" wait_count "SELECT count(*) FROM outbox" 0 30
audit_ok() {
  "$SAGACTL" audit --saga-db "$SAGA_DB" --order-db "$ORDER_DB" --inventory-db "$INVENTORY_DB" \
    --payment-db "$PAYMENT_DB" --notification-db "$NOTIFICATION_DB" >"$DIR/audit.out" 2>&1 || { sed 's/^/  | /' "$DIR/audit.out"; return 1; }
}
check "sagactl audit passes" audit_ok
echo "$CHECKS passed, 0 failed"

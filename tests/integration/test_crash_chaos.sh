#!/usr/bin/env bash
# 2,000 sagas with business failures mixed in while sagad is killed with
# kill -9 twenty times at random moments and restarted each time. Every saga
# must end in the state its input determines (what a run without crashes
# gives: completed, or compensated for the out-of-stock and declined ones),
# and no participant may have applied an action or compensation twice.
. "$(dirname "$0")/lib.sh"
WAVES=${WAVES:-20}
PER=${PER:-100}              # sagas per wave: 80% complete, 10% out of stock, 10% declined
CHAOS_SEED=${CHAOS_SEED:-$RANDOM}
echo "# seed $CHAOS_SEED (CHAOS_SEED=$CHAOS_SEED to repeat)"
RANDOM=$CHAOS_SEED
stack_up
killed_mid_run=0
for wave in $(seq 1 "$WAVES"); do
  publish_starts "ok$wave" $((PER * 8 / 10))
  publish_starts "oos$wave" $((PER / 10)) c-2 sku-empty
  publish_starts "dec$wave" $((PER / 10)) c-broke sku-2
  sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
  kill -9 "$SAGAD_PID"
  wait_exit sagad 10 || fail "sagad did not die"
  open=$(saga_sql "SELECT count(*) FROM sagas WHERE status NOT IN ('completed','compensated','compensation_failed')")
  [ "$open" -gt 0 ] && killed_mid_run=$((killed_mid_run + 1))
  "$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart $wave of sagad"
  reload_env
done
TOTAL=$((WAVES * PER))
echo "ok - $WAVES kills, $killed_mid_run of them with sagas in flight"
check "most kills hit sagas in flight" test "$killed_mid_run" -ge $((WAVES / 2))
mixed_outcomes "$TOTAL"
# beyond mixed_outcomes: the orders, reservations and compensations the participants applied
check "one order per saga, cancelled exactly for the compensated ones" \
  eq "$(sql "$ORDER_DB" "SELECT sum(status='created') || '/' || sum(status='cancelled') FROM orders")" "$((TOTAL * 8 / 10))/$((TOTAL / 5))"
check "no stock reserved twice; declined sagas' stock released" \
  eq "$(sql "$INVENTORY_DB" "SELECT sum(status='reserved') || '/' || sum(status='released') || '/' || count(DISTINCT saga_id) FROM reservations")" "$((TOTAL * 8 / 10))/$((TOTAL / 10))/$((TOTAL * 9 / 10))"
check "no compensation applied twice (one processed row per key)" \
  eq "$(sql "$INVENTORY_DB" "SELECT count(*) FROM processed WHERE kind='compensation'")" "$((TOTAL / 10))"
check "outbox drained" wait_count "SELECT count(*) FROM outbox" 0 30
echo "$CHECKS passed, 0 failed"

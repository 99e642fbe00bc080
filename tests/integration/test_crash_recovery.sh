#!/usr/bin/env bash
# kill -9 of sagad twice while 1,000 sagas run, restarted each time: every
# saga completes once, every worker ran each action exactly once in effect.
. "$(dirname "$0")/lib.sh"
N=${N:-1000}
stack_up
third=$((N / 3))
publish_starts crash1 "$third"
in_flight_at_kill=0
for round in 1 2; do
  # Pull the plug in the middle of wave $round: its sagas move through the
  # four steps in lockstep, so "a third of a step each" is mid-run.
  wait_count "SELECT count(*) >= $((third / 3)) FROM steps WHERE saga_id LIKE 'crash$round-%' AND status='succeeded'" 1 60 || true
  kill -9 "$SAGAD_PID"
  wait_exit sagad 10 || fail "sagad did not die"
  open=$(saga_sql "SELECT count(*) FROM sagas WHERE status NOT IN ('completed','compensated','compensation_failed')")
  in_flight_at_kill=$((in_flight_at_kill + open))
  echo "ok - round $round: sagad killed -9 with $open saga(s) in flight"
  # Starts published while sagad is down wait in Kafka.
  if [ "$round" = 1 ]; then publish_starts crash2 "$third"; else publish_starts crash3 "$((N - 2 * third))"; fi
  "$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart of sagad"
  reload_env
done
check "the crashes hit sagas in flight" test "$in_flight_at_kill" -gt 0
check "all $N sagas completed after two crashes" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'crash%' AND status='completed'" "$N" 180
exactly_once crash1 "$third" 1000
exactly_once crash2 "$third" 1000
exactly_once crash3 "$((N - 2 * third))" 1000
check "outbox drained after recovery" wait_count "SELECT count(*) FROM outbox" 0 30
echo "$CHECKS passed, 0 failed"

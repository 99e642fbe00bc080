#!/usr/bin/env bash
# kill -9 of sagad twice while 1,000 sagas run, restarted each time: every
# saga completes once, every worker ran each action exactly once in effect.
. "$(dirname "$0")/lib.sh"
N=${N:-1000}
stack_up
publish_starts crash "$N"
for round in 1 2; do
  # Let part of the run happen, then pull the plug.
  target=$((N * round / 3))
  wait_count "SELECT count(*) >= $target FROM sagas WHERE status='completed'" 1 120 || true
  kill -9 "$SAGAD_PID"
  wait_exit sagad 10 || fail "sagad did not die"
  echo "ok - round $round: sagad killed with $(saga_sql "SELECT count(*) FROM sagas WHERE status='completed'") completed"
  "$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart of sagad"
  reload_env
done
check "all $N sagas completed after two crashes" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'crash-%' AND status='completed'" "$N" 180
exactly_once crash "$N" 1000
check "outbox drained after recovery" wait_count "SELECT count(*) FROM outbox" 0 30
echo "$CHECKS passed, 0 failed"

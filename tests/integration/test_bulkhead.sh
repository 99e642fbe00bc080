#!/usr/bin/env bash
# The bulkhead on the real stack: with --max-in-flight 5, a stalled
# participant never has more than 5 commands out; the rest wait in order
# (status queued) and all go through once it recovers.
. "$(dirname "$0")/lib.sh"
export SAGAD_ARGS="--max-in-flight 5"
stack_up
kill -STOP "$PAYMENT_WORKER_PID"
publish_starts bulk 20
check "5 payment commands out, 15 queued" \
  wait_count "SELECT sum(status='running') || '/' || sum(status='queued') FROM steps WHERE name='charge_payment'" "5/15" 30
sleep 1
check "still 5 out a second later" \
  eq "$(saga_sql "SELECT sum(status='running') FROM steps WHERE name='charge_payment'")" 5
check "only the running ones had a command sent (attempt 1), queued ones none" \
  eq "$(saga_sql "SELECT sum(attempt) FROM steps WHERE name='charge_payment'")" 5
kill -CONT "$PAYMENT_WORKER_PID"
check "all 20 complete once the participant recovers" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'bulk-%' AND status='completed'" 20 60
check "15 steps were queued and resumed" \
  eq "$(saga_sql "SELECT count(*) FROM history WHERE event='step.queued' AND step='charge_payment'")" 15
exactly_once bulk 20 1000
echo "$CHECKS passed, 0 failed"

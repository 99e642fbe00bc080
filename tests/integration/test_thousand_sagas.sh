#!/usr/bin/env bash
# 1,000 order sagas through the whole stack (Kafka, sagad, four workers):
# all complete, each action ran exactly once, outbox drained.
. "$(dirname "$0")/lib.sh"
N=${N:-1000}
export ORDER_WORKER_ARGS="${ORDER_WORKER_ARGS:-} --metrics-file $DIR/order-worker.prom"
stack_up
publish_starts big "$N"
check "all $N sagas completed within 120 s" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'big-%' AND status='completed'" "$N" 120
exactly_once big "$N" 1000
# A second publication of the same start events starts nothing.
publish_starts big 10
sleep 2
check "re-published starts are idempotent on saga_id" eq "$(saga_sql "SELECT count(*) FROM sagas")" "$N"
check "outbox drained" wait_count "SELECT count(*) FROM outbox" 0 20
sleep 1 # the loop publishes its figures twice a second
curl -s "$ADMIN_URL/metrics" >"$DIR/metrics.txt"
check "/metrics counts the completed sagas" grep -q "^saga_sagas{status=\"completed\"} $N\$" "$DIR/metrics.txt"
check "/metrics has the loop's counters" grep -q "^sagad_sagas_started_total $N\$" "$DIR/metrics.txt"
check "/metrics has commit timings" grep -q "^sagad_commit_duration_seconds_count [1-9]" "$DIR/metrics.txt"
check "/metrics has the consume lag of the replies and starts" grep -q "^sagad_consume_lag_seconds_count [1-9]" "$DIR/metrics.txt"
check "/metrics has the relay passes" grep -q "^sagad_relay_duration_seconds_count [1-9]" "$DIR/metrics.txt"
check "/metrics counts SQLite statements (at least 10 a saga)" awk -v n="$N" '$1 == "sagad_sql_statements_total" { ok = $2 >= 10 * n } END { exit !ok }' "$DIR/metrics.txt"
check "/metrics shows no consumer lag once all is done" grep -q '^sagad_consumer_lag{topic="saga.replies"} 0$' "$DIR/metrics.txt"
check "the order worker's metrics file counts its commands" awk -v n="$N" '$1 == "participant_commands_total" { ok = $2 >= n } END { exit !ok }' "$DIR/order-worker.prom"
check "the order worker's metrics file has the consume lag of every command" awk -v n="$N" '$1 == "participant_consume_lag_seconds_count" { ok = $2 >= n } END { exit !ok }' "$DIR/order-worker.prom"
check "the order worker's metrics file has its batches' reply times" grep -q "^participant_reply_duration_seconds_count [1-9]" "$DIR/order-worker.prom"
check "/readyz says ready" eq "$(curl -s -o /dev/null -w '%{http_code}' "$ADMIN_URL/readyz")" 200
echo "$CHECKS passed, 0 failed"

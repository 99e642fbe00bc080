#!/usr/bin/env bash
# The broker goes away for 30 s in the middle of a run (the dev broker's
# brokers set down, then up, through SIGUSR1; Apache Kafka killed with -9 and
# started again): sagad and the workers keep running, say so in their logs,
# resume, and every saga completes once; no outbox row is lost when the
# producer's delivery attempts run out.
. "$(dirname "$0")/lib.sh"
OUTAGE=${OUTAGE:-30}
stack_up
KAFKA_CTL="$SAGA_SOURCE_DIR/scripts/kafka"
if [ -n "${SAGABROKER_PID:-}" ]; then # the dev broker: its brokers go down and up (SIGUSR1)
  broker_down() { kill -USR1 "$SAGABROKER_PID"; sleep 1; grep -q "now DOWN" "$DIR/sagabroker.log"; }
  broker_up() { kill -USR1 "$SAGABROKER_PID"; }
else # Apache Kafka: the broker process is killed, then started again on its data and ports
  broker_down() { "$KAFKA_CTL" kill "$DIR" >/dev/null && ! "$KAFKA_CTL" status "$DIR" >/dev/null 2>&1; }
  broker_up() { "$KAFKA_CTL" start "$DIR" >/dev/null; }
fi
publish_starts out 300
wait_count "SELECT count(*) >= 50 FROM steps WHERE saga_id LIKE 'out-%' AND status='succeeded'" 1 60 || true
check "the broker goes down" broker_down
open=$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'out-%' AND status != 'completed'")
check "the outage starts with sagas in flight ($open)" test "$open" -gt 0
sleep "$OUTAGE"
for p in sagad order-worker inventory-worker payment-worker notification-worker; do
  check "$p survived the outage" kill -0 "$(cat "$DIR/$p.pid")"
done
check "sagad logged the broker trouble" grep -qE '"level":"(warn|error)".*(bus|flow)' "$DIR/sagad.log"
check "the broker comes back" broker_up
check "all 300 sagas complete after the broker is back" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'out-%' AND status='completed'" 300 180
exactly_once out 300 1000
check "the outbox is drained" wait_count "SELECT count(*) FROM outbox" 0 60
echo "$CHECKS passed, 0 failed"

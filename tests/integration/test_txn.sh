#!/usr/bin/env bash
# Issue 14 (items 2 and 5): Kafka transactions on the broker. Starts a bare
# broker (no sagad, no workers): sagabroker, or with KAFKA=real a single-node
# Apache Kafka (scripts/kafka); BOOTSTRAP=host:port uses a running one (its
# kind from KAFKA). Then tests/integration/txn_probe.c commits, aborts, sends
# consumer offsets in transactions (KIP-447), fences a producer and reads
# with read_committed and read_uncommitted; it asserts what Apache Kafka does
# on the real broker and what librdkafka 2.0.2's mock really does on the dev
# broker (docs/OPERATIONS.md, "Transactions on the dev broker and on Apache
# Kafka").
. "$(dirname "$0")/lib.sh"
PROBE=$BUILD_DIR/bin/txn_probe
[ -x "$PROBE" ] || fail "$PROBE not built"
OUT_TOPIC=txn.probe.out
IN_TOPIC=txn.probe.in
BROKER_PID=""
stop_broker() {
  if [ -n "$BROKER_PID" ]; then kill -TERM "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; fi
  [ -f "$DIR/kafka.pid" ] && "$SAGA_SOURCE_DIR/scripts/kafka" stop "$DIR" >/dev/null 2>&1 || true
}
trap 'stop_broker; it_cleanup' EXIT

if [ "${KAFKA:-}" = real ]; then KIND=kafka; else KIND=dev; fi
if [ -n "${BOOTSTRAP:-}" ]; then
  BS=$BOOTSTRAP
elif [ "$KIND" = kafka ]; then
  KAFKA_TOPICS="$OUT_TOPIC,$IN_TOPIC" "$SAGA_SOURCE_DIR/scripts/kafka" start "$DIR" >"$DIR/kafka-start.out" 2>&1 \
    || { cat "$DIR/kafka-start.out" >&2; fail "scripts/kafka start"; }
  BS=$(cat "$DIR/bootstrap")
else
  "$BUILD_DIR/bin/sagabroker" --bootstrap-file "$DIR/bootstrap" --topics "$OUT_TOPIC,$IN_TOPIC" \
    >/dev/null 2>"$DIR/sagabroker.log" &
  BROKER_PID=$!
  for _ in $(seq 100); do [ -s "$DIR/bootstrap" ] && break; sleep 0.05; done
  [ -s "$DIR/bootstrap" ] || fail "sagabroker wrote no bootstrap file in 5 s"
  BS=$(head -n1 "$DIR/bootstrap")
fi

"$PROBE" "$BS" "$KIND" "$OUT_TOPIC" "$IN_TOPIC" 2>"$DIR/txn_probe.log" | tee "$DIR/txn_probe.out"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || { tail -n 20 "$DIR/txn_probe.log" >&2; fail "txn_probe ($KIND) exit $rc"; }
CHECKS=$(grep -c '^ok - ' "$DIR/txn_probe.out")
echo "$CHECKS passed, 0 failed"

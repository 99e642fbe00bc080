#!/usr/bin/env bash
# Issue 14 (items 2 and 5): Kafka transactions on the broker. Starts a bare
# broker (no sagad, no workers): sagabroker, or with KAFKA=real a single-node
# Apache Kafka (scripts/kafka); BOOTSTRAP=host:port uses a running one (its
# kind from KAFKA). Then tests/integration/txn_probe.c commits, aborts, sends
# consumer offsets in transactions (KIP-447), fences a producer and reads
# with read_committed and read_uncommitted; it asserts what Apache Kafka does
# on the real broker and what librdkafka 2.0.2's mock really does on the dev
# broker (docs/OPERATIONS.md, "Transactions on the dev broker and on Apache
# Kafka"). On the dev broker a second phase runs the probe again on a
# sagabroker that fails 30% of the transaction coordinator's requests
# (--fault-apis initproducerid,addpartitionstotxn,addoffsetstotxn,endtxn,
# txnoffsetcommit): librdkafka must retry them and every check still hold.
. "$(dirname "$0")/lib.sh"
PROBE=$BUILD_DIR/bin/txn_probe
[ -x "$PROBE" ] || fail "$PROBE not built"
OUT_TOPIC=txn.probe.out
IN_TOPIC=txn.probe.in
BROKER_PID=""
TXN_APIS=initproducerid,addpartitionstotxn,addoffsetstotxn,endtxn,txnoffsetcommit
# start_sagabroker LOG [ARGS...]: a fresh sagabroker with the probe's topics.
start_sagabroker() {
  local log=$1; shift
  rm -f "$DIR/bootstrap"
  "$BUILD_DIR/bin/sagabroker" --bootstrap-file "$DIR/bootstrap" --topics "$OUT_TOPIC,$IN_TOPIC" "$@" \
    >/dev/null 2>"$log" &
  BROKER_PID=$!
  for _ in $(seq 100); do [ -s "$DIR/bootstrap" ] && break; sleep 0.05; done
  [ -s "$DIR/bootstrap" ] || fail "sagabroker wrote no bootstrap file in 5 s"
  BS=$(head -n1 "$DIR/bootstrap")
}
# run_probe NAME: txn_probe against $BS; its output in $DIR/NAME.out.
run_probe() {
  local rc=0
  "$PROBE" "$BS" "$KIND" "$OUT_TOPIC" "$IN_TOPIC" >"$DIR/$1.out" 2>"$DIR/$1.log" || rc=$?
  cat "$DIR/$1.out"
  [ "$rc" = 0 ] || { tail -n 20 "$DIR/$1.log" >&2; fail "txn_probe ($KIND, $1) exit $rc"; }
  CHECKS=$((CHECKS + $(grep -c '^ok - ' "$DIR/$1.out")))
}
stop_broker() {
  if [ -n "$BROKER_PID" ]; then kill -TERM "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; fi
  [ -f "$DIR/kafka.pid" ] && "$SAGA_SOURCE_DIR/scripts/kafka" stop "$DIR" >/dev/null 2>&1 || true
}
it_on_exit stop_broker

if [ "${KAFKA:-}" = real ]; then KIND=kafka; else KIND=dev; fi
if [ -n "${BOOTSTRAP:-}" ]; then
  BS=$BOOTSTRAP
elif [ "$KIND" = kafka ]; then
  KAFKA_TOPICS="$OUT_TOPIC,$IN_TOPIC" "$SAGA_SOURCE_DIR/scripts/kafka" start "$DIR" >"$DIR/kafka-start.out" 2>&1 \
    || { cat "$DIR/kafka-start.out" >&2; fail "scripts/kafka start"; }
  BS=$(cat "$DIR/bootstrap")
else
  start_sagabroker "$DIR/sagabroker.log"
fi
run_probe txn_probe

if [ "$KIND" = dev ] && [ -z "${BOOTSTRAP:-}" ]; then
  echo "# again, with 30% of the transaction coordinator's requests failing"
  stop_broker
  BROKER_PID=""
  start_sagabroker "$DIR/sagabroker-faults.log" --faults 0.3 --faults-on --fault-seed 14 --fault-apis "$TXN_APIS"
  run_probe txn_probe_faults
  stop_broker
  BROKER_PID=""
  # The exit line: "exit: faults ON (...); N faults in M requests; per API ..."
  faults=$(sed -n 's/.*exit: faults ON[^;]*; \([0-9]*\) faults in \([0-9]*\) requests.*/\1 \2/p' "$DIR/sagabroker-faults.log")
  echo "# faults/requests on the transaction APIs: ${faults:-none logged}"
  check "sagabroker failed some of the transaction coordinator's requests" \
    test "${faults%% *}" -gt 0 2>/dev/null
fi
echo "$CHECKS passed, 0 failed"

#!/usr/bin/env bash
# The conformance kit (scripts/conformance) against the participants in other
# languages the project ships, on the stack, every rule including the crash:
#   FOREIGN=python  the Python notification participant in the stack's
#                   notification slot (NOTIFICATION_WORKER_BIN) and the Python
#                   tally worker (workers/python/examples/tally.py, an action
#                   and its compensation), started here; dev broker or KAFKA=real
#   FOREIGN=java    the Java payment participant in the stack's payment slot
#                   (PAYMENT_WORKER_BIN); Apache Kafka only (KAFKA=real)
# shellcheck disable=SC1091
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../integration/lib.sh"
KIT="$SAGA_SOURCE_DIR/scripts/conformance"
"$SAGA_SOURCE_DIR/scripts/venv" >/dev/null || fail "no Python venv (scripts/venv)"
case ${FOREIGN:-} in
  python) [ -x "${NOTIFICATION_WORKER_BIN:-}" ] || fail "NOTIFICATION_WORKER_BIN is not the Python participant" ;;
  java) [ -x "${PAYMENT_WORKER_BIN:-}" ] || fail "PAYMENT_WORKER_BIN is not the Java participant"
        [ "${KAFKA:-}" = real ] || fail "the Java participant needs Apache Kafka (KAFKA=real)" ;;
  *) fail "FOREIGN must be python or java" ;;
esac
export SAGABROKER_ARGS="--topics tally.commands ${SAGABROKER_ARGS:-}" KAFKA_TOPICS=tally.commands
stack_up
X=(); [ "${KAFKA:-}" = real ] || X=(-X fetch.wait.max.ms=1)

# kit NAME LABEL ARGS...: the kit's output in $DIR/kit-LABEL.out, its status in $DIR/kit-LABEL.status
kit() {
  local label=$1; shift
  echo "+ scripts/conformance $*" >"$DIR/kit-$label.out"
  local rc=0
  "$KIT" --bootstrap "$BOOTSTRAP" "$@" >>"$DIR/kit-$label.out" 2>&1 || rc=$?
  echo "$rc" >"$DIR/kit-$label.status"
  sed 's/^/  | /' "$DIR/kit-$label.out"
}

if [ "$FOREIGN" = python ]; then
  # the tally worker runs beside the stack: start and kill scripts for the kit's crash rule
  cat >"$DIR/tally-start.sh" <<SH
#!/usr/bin/env bash
rm -f "$DIR/tally.ready"
setsid "$SAGA_SOURCE_DIR/workers/python/bin/tally-worker" --bootstrap "$BOOTSTRAP" --db "$DIR/tally.db" \
  --ready-file "$DIR/tally.ready" ${X[*]} </dev/null >>"$DIR/tally.log" 2>&1 &
echo \$! >"$DIR/tally.pid"
SH
  printf '#!/usr/bin/env bash\nkill -9 "$(cat "%s/tally.pid")"; sleep 0.5\n' "$DIR" >"$DIR/tally-kill.sh"
  chmod +x "$DIR/tally-start.sh" "$DIR/tally-kill.sh"
  it_on_exit 'kill "$(cat "$DIR/tally.pid")"'
  "$DIR/tally-start.sh"
  for _ in $(seq 600); do [ -e "$DIR/tally.ready" ] && break; sleep 0.1; done
  check "the tally worker is ready" test -e "$DIR/tally.ready"
  kit tally --topic tally.commands --action tally.add --compensation tally.remove --payload '{}' \
    --applied-sql "$DIR/tally.db" 'SELECT count(*) FROM tallies WHERE saga_id = ?' \
    --kill-cmd "$DIR/tally-kill.sh" --restart-cmd "$DIR/tally-start.sh" &
  tally_kit=$!
  kit notification --topic notification.commands --action notification.send \
    --payload '{"order_id":"o-${saga_id}","payment":"pay-1"}' \
    --applied-sql "$NOTIFICATION_DB" 'SELECT count(*) FROM notifications WHERE saga_id = ?' \
    --kill-cmd "'$STACK' kill-one notification-worker '$DIR'" --restart-cmd "'$STACK' start-one notification-worker '$DIR'"
  wait "$tally_kit" || true
  check "the Python tally worker passes every rule (exit status 0)" eq "$(cat "$DIR/kit-tally.status")" 0
  check "the Python tally worker: no rule skipped" eq "$(grep -c '^SKIP' "$DIR/kit-tally.out")" 0
  check "the Python tally worker: the crash rule passed" grep -q '^PASS crash:' "$DIR/kit-tally.out"
  check "the Python tally worker: the compensation rules passed" \
    eq "$(grep -cE '^PASS (compensation_first|late_action):' "$DIR/kit-tally.out")" 2
  check "the Python notification participant passes (exit status 0)" eq "$(cat "$DIR/kit-notification.status")" 0
  check "the Python notification participant: crash and maximum-length ids passed" \
    eq "$(grep -cE '^PASS (crash|max_ids):' "$DIR/kit-notification.out")" 2
  check "the Python notification participant (no compensation): only the two compensation rules skipped" \
    eq "$(grep '^SKIP' "$DIR/kit-notification.out" | cut -d: -f1 | tr '\n' ' ')" "SKIP compensation_first SKIP late_action "
else
  check "the stack's payment worker is the Java participant" grep -q "payment-worker-java\|dev.sagad" "$DIR/payment-worker.log"
  kit payment --topic payment.commands --action payment.charge --compensation payment.refund \
    --payload '{"customer":"c-1","amount":100}' \
    --applied-sql "$PAYMENT_DB" 'SELECT count(*) FROM charges WHERE saga_id = ?' \
    --kill-cmd "'$STACK' kill-one payment-worker '$DIR'" --restart-cmd "'$STACK' start-one payment-worker '$DIR'" \
    --ready-timeout 90 --restart-timeout 90
  check "the Java payment participant passes every rule (exit status 0)" eq "$(cat "$DIR/kit-payment.status")" 0
  check "the Java payment participant: no rule skipped" eq "$(grep -c '^SKIP' "$DIR/kit-payment.out")" 0
  check "the Java payment participant: the crash rule passed" grep -q '^PASS crash:' "$DIR/kit-payment.out"
  check "payment: money conserved" eq "$(sql "$PAYMENT_DB" "SELECT count(*) FROM accounts a WHERE a.initial != a.balance +
    COALESCE((SELECT SUM(amount) FROM charges c WHERE c.customer = a.customer AND c.status = 'charged'), 0)")" 0
fi
echo "$CHECKS passed, 0 failed"

#!/usr/bin/env bash
# Soak test (not in ctest; minutes): SOAK_SAGAS (10,000) order sagas through
# the whole stack on the dev broker, with
#   - about 20% declined payments (customer c-broke: compensated),
#   - 5% transient payment failures (payment-worker --retry-rate 0.05),
#   - random worker restarts while it runs: every SOAK_RESTART_EVERY (4) s
#     one of the four workers is killed (SIGTERM or SIGKILL, at random) and
#     started again with scripts/stack start-one;
# then waits for every saga to end, stops the stack and runs sagactl audit,
# which must pass. Prints the figures (duration, sagas/s, restarts, statuses,
# audit summary).
#
#   BUILD_DIR=build tests/soak/soak.sh
#
# Environment: BUILD_DIR (build), SOAK_SAGAS (10000), SOAK_DECLINE_PCT (20),
# SOAK_RETRY_RATE (0.05), SOAK_RESTART_EVERY (4 s), SOAK_WAVES (20) and
# SOAK_WAVE_GAP (3 s): the start events are published in waves this far
# apart, so the run lasts long enough for restarts to hit it;
# SOAK_TIMEOUT (1800 s), SOAK_SEED (random).
set -euo pipefail
SAGA_SOURCE_DIR=${SAGA_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD_DIR=$(readlink -f "${BUILD_DIR:-$SAGA_SOURCE_DIR/build}")
export SAGA_SOURCE_DIR BUILD_DIR
IT_NAME=soak
# shellcheck disable=SC1091
. "$SAGA_SOURCE_DIR/tests/integration/lib.sh"
# A signal ends the script through its EXIT trap (it_cleanup: stack down).
trap 'exit 143' TERM
trap 'exit 130' INT

N=${SOAK_SAGAS:-10000}
DECLINE_PCT=${SOAK_DECLINE_PCT:-20}
RETRY_RATE=${SOAK_RETRY_RATE:-0.05}
RESTART_EVERY=${SOAK_RESTART_EVERY:-4}
WAVES=${SOAK_WAVES:-20}
WAVE_GAP=${SOAK_WAVE_GAP:-3}
TIMEOUT=${SOAK_TIMEOUT:-1800}
SEED=${SOAK_SEED:-$RANDOM}
RANDOM=$SEED

export PAYMENT_WORKER_ARGS="--retry-rate $RETRY_RATE"
# quieter logs: the workers log every command at info
for w in ORDER INVENTORY PAYMENT NOTIFICATION; do export "${w}_WORKER_LOG_LEVEL=warn"; done
echo "soak: $N sagas, ${DECLINE_PCT}% declines, retry rate $RETRY_RATE, a worker restart every ${RESTART_EVERY} s, seed $SEED; $DIR"
stack_up

# ---- start events: soak-1..N, c-broke for DECLINE_PCT% of them
python3 - "$N" "$DECLINE_PCT" "$SEED" "$WAVES" "$DIR" <<'PY'
import json, random, sys
n, pct, seed, waves, d = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rnd = random.Random(seed)
files = [open(f"{d}/wave-{w}.txt", "w") for w in range(waves)]
for i in range(1, n + 1):
    sid = f"soak-{i}"
    declined = rnd.random() * 100 < pct
    k = rnd.randint(1, 3)
    ev = {"type": "saga.start", "message_id": f"m-{sid}", "definition": "order_fulfillment", "saga_id": sid,
          "input": {"order_id": f"o-{sid}", "customer": "c-broke" if declined else f"c-{k}",
                    "amount": rnd.randint(100, 5000), "items": [{"sku": f"sku-{k}", "qty": rnd.randint(1, 3)}]}}
    files[(i - 1) * waves // n].write(f"{sid}\t{json.dumps(ev, separators=(',', ':'))}\n")
PY

# ---- the restarter: kill a random worker, start it again
WORKERS=(order-worker inventory-worker payment-worker notification-worker)
restarter() {
  local n=0 w sig pid
  while [ ! -e "$DIR/soak.stop" ]; do
    sleep "$RESTART_EVERY"
    [ -e "$DIR/soak.stop" ] && break
    w=${WORKERS[$((RANDOM % 4))]}
    if ((RANDOM % 2)); then sig=TERM; else sig=KILL; fi
    pid=$(cat "$DIR/$w.pid")
    kill "-$sig" "$pid" 2>/dev/null || continue
    wait_exit "$w" 60 || { echo "soak: $w (pid $pid) did not exit after SIG$sig" >&2; return 1; }
    local code; code=$(cat "$DIR/$w.exit")
    "$STACK" start-one "$w" "$DIR" >>"$DIR/restarts.log" 2>&1 || { echo "soak: start-one $w failed" >&2; return 1; }
    n=$((n + 1))
    echo "$(date -u +%T) restart $n: $w SIG$sig (exit status $code)" >>"$DIR/restarts.txt"
  done
}
: >"$DIR/restarts.txt"
restarter &
RESTARTER=$!
# On any exit (a failed check, set -e, SIGINT/SIGTERM from ctest or the
# user): stop the restarter first — it may be in the middle of a start-one,
# whose worker would outlive a `stack down` run before it — then the stack
# comes down in it_cleanup, which keeps the logs of a failed run. `set +e`
# first: under set -e, the `(exit $rc)` that hands it_cleanup the status
# ended the trap there, and a failed soak left its whole stack running.
stop_restarter() {
  touch "$DIR/soak.stop"
  local i
  for ((i = 0; i < 150; i++)); do kill -0 "$RESTARTER" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$RESTARTER" 2>/dev/null; then
    pkill -TERM -P "$RESTARTER" 2>/dev/null || true
    kill "$RESTARTER" 2>/dev/null || true
  fi
  wait "$RESTARTER" 2>/dev/null || true
}
trap 'rc=$?; set +e; stop_restarter; (exit $rc); it_cleanup' EXIT

t0=$(date +%s.%N)
for ((w = 0; w < WAVES; w++)); do
  kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t' -X linger.ms=5 -l "$DIR/wave-$w.txt"
  sleep "$WAVE_GAP"
done
echo "soak: $N start events published"
ended() { saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'soak-%' AND status IN ('completed','compensated','compensation_failed')"; }
start=$SECONDS last=-1
while :; do
  got=$(ended 2>/dev/null || echo 0)
  [ "$got" = "$N" ] && break
  if ! kill -0 $RESTARTER 2>/dev/null; then wait $RESTARTER || fail "the restarter failed"; fi
  ((SECONDS - start < TIMEOUT)) || fail "only $got of $N sagas ended after ${TIMEOUT} s"
  if ((SECONDS - start >= last + 30)); then last=$((SECONDS - start)); echo "soak: ${last} s: $got of $N ended, $(wc -l <"$DIR/restarts.txt") restarts"; fi
  sleep 1
done
t1=$(date +%s.%N)
touch "$DIR/soak.stop"
wait $RESTARTER || fail "the restarter failed"
restarts=$(wc -l <"$DIR/restarts.txt")

"$STACK" status "$DIR" >/dev/null || fail "a process of the stack died (stack status)"
"$STACK" down "$DIR" >"$DIR/down.out" 2>&1 || { cat "$DIR/down.out" >&2; fail "stack down"; }

duration=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
rate=$(python3 -c "print(f'{$N / ($t1 - $t0):.1f}')")
echo
echo "soak: $N sagas in $duration s ($rate sagas/s end to end, first publish to last saga ended)"
echo "soak: $restarts worker restarts ($(grep -c SIGTERM "$DIR/restarts.txt" || true) SIGTERM, $(grep -c SIGKILL "$DIR/restarts.txt" || true) SIGKILL):"
sed 's/^/  /' "$DIR/restarts.txt"
echo "soak: statuses: $(saga_sql "SELECT group_concat(status || ' ' || c, ', ') FROM (SELECT status, count(*) c FROM sagas GROUP BY status)")"
echo "soak: declined: $(saga_sql "SELECT count(*) FROM sagas WHERE error_code='PAYMENT_DECLINED'"); payment retries: $(saga_sql "SELECT count(*) FROM history WHERE event='step.retry_scheduled' AND step='charge_payment'"); all retries: $(saga_sql "SELECT count(*) FROM history WHERE event IN ('step.retry_scheduled','compensation.retry_scheduled')"); step timeouts: $(saga_sql "SELECT count(*) FROM history WHERE detail LIKE '%STEP_TIMEOUT%'")"
check "every saga's history is gap-free" history_gap_free
rc=0
"$BUILD_DIR/bin/sagactl" audit --saga-db "$SAGA_DB" --order-db "$ORDER_DB" --inventory-db "$INVENTORY_DB" \
  --payment-db "$PAYMENT_DB" --notification-db "$NOTIFICATION_DB" >"$DIR/audit.txt" 2>&1 || rc=$?
sed 's/^/  | /' "$DIR/audit.txt"
check "sagactl audit passes" eq "$rc" 0
echo "$CHECKS passed, 0 failed"

#!/usr/bin/env bash
# sagabroker's fault injection (--faults, SIGUSR2), quickly, with kcat:
#  1. the options are checked (exit 2 on a bad rate, API or combination);
#  2. without --faults, SIGUSR2 only logs the state (as before);
#  3. with --faults 1 --fault-apis produce, Produce requests fail while the
#     mode is on (kcat cannot deliver) and work again once SIGUSR2 turned it
#     off; the OFF line counts the requests and faults; Fetch is untouched;
#  4. the exit line has the totals.
# Needs: BUILD_DIR (set by ctest), kcat. Exit 77 = skipped (not built).
set -euo pipefail

SRC=${SAGA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD_DIR=$(readlink -f "${BUILD_DIR:-$SRC/build}")
BROKER=$BUILD_DIR/bin/sagabroker
[ -x "$BROKER" ] || { echo "SKIP: $BROKER not built"; exit 77; }
command -v kcat >/dev/null || { echo "FAIL: kcat not installed (scripts/deps)"; exit 1; }

T=$(mktemp -d /tmp/saga-test-broker-faults.XXXXXX)
BPID=""
cleanup() {
  [ -n "$BPID" ] && kill -KILL "$BPID" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$T/broker.log" ] && { echo "--- broker log"; tail -20 "$T/broker.log"; }; exit 1; }
ok() { echo "ok - $*"; }

# start_broker ARGS...: a broker in the background, its bootstrap in $BS
start_broker() {
  rm -f "$T/bootstrap"
  "$BROKER" --bootstrap-file "$T/bootstrap" --log-json false "$@" >/dev/null 2>"$T/broker.log" &
  BPID=$!
  for _ in $(seq 100); do [ -s "$T/bootstrap" ] && break; sleep 0.05; done
  [ -s "$T/bootstrap" ] || fail "no bootstrap file after 5 s"
  BS=$(head -n1 "$T/bootstrap")
}
stop_broker() {
  kill -TERM "$BPID"
  local rc=0
  wait "$BPID" || rc=$?
  BPID=""
  [ $rc = 0 ] || fail "sagabroker exit status $rc"
}
# wait_log PATTERN: up to 5 s for PATTERN in the broker's log
wait_log() {
  for _ in $(seq 50); do grep -q -- "$1" "$T/broker.log" && return 0; sleep 0.1; done
  fail "no '$1' in the broker's log"
}
KCAT=(kcat -X broker.address.family=v4 -m 10)
produce() { # N messages to order.commands; kcat's exit status
  seq 1 "$1" | sed 's/^/k|v/' | timeout 20 "${KCAT[@]}" -b "$BS" -P -X partitioner=murmur2_random -t order.commands -K '|' \
    -X message.timeout.ms=3000 -X retries=2 2>>"$T/kcat.log"
}
consume_count() {
  timeout 20 "${KCAT[@]}" -b "$BS" -C -t order.commands -o beginning -e -q -X fetch.wait.max.ms=10 \
    2>>"$T/kcat.log" | wc -l
}

echo "== 1. options"
for bad in "--faults 2" "--faults x" "--faults -0.1" "--faults 0.5 --fault-apis bogus" "--faults-on true" \
           "--faults 0.5 --fault-delay-ms -1"; do
  # shellcheck disable=SC2086
  rc=0; "$BROKER" --bootstrap-file "$T/never" $bad >/dev/null 2>"$T/err" || rc=$?
  [ $rc = 2 ] || fail "sagabroker $bad: exit status $rc, want 2"
  [ ! -e "$T/never" ] || fail "sagabroker $bad wrote its bootstrap file"
done
"$BROKER" --bootstrap-file "$T/never" --faults 0.5 --fault-apis "produce, bogus" >/dev/null 2>"$T/err" || true
grep -q "fault-apis: unknown API 'bogus' (all, produce, fetch" "$T/err" || fail "unknown API message: $(cat "$T/err")"
ok "bad --faults, --fault-apis, --faults-on and --fault-delay-ms are refused (exit 2)"
"$BROKER" --help 2>&1 | grep -q -- "--faults" || fail "--help does not list --faults"
ok "--help lists the fault options"

echo "== 2. without --faults"
start_broker
kill -USR2 "$BPID"
wait_log "status: $BS, brokers UP"
grep -q "faults" "$T/broker.log" && fail "fault lines without --faults: $(grep faults "$T/broker.log")"
ok "SIGUSR2 logs the state, nothing about faults"
stop_broker

echo "== 3. --faults 1 --fault-apis produce"
start_broker --faults 1 --fault-apis produce --fault-seed 3
wait_log "fault injection armed: rate 1, delay 0 ms, mode OFF"
produce 5 || fail "producing before the fault mode is on"
ok "Produce works while the mode is off"
kill -USR2 "$BPID"
wait_log "SIGUSR2: faults ON (rate 1, 1 period(s))"
if produce 5; then fail "kcat delivered while every Produce fails"; fi
ok "no Produce gets through while the mode is on"
[ "$(consume_count)" = 5 ] || fail "Fetch disturbed (or a failed Produce appended something): $(consume_count) messages"
ok "Fetch is not faulted; the failed Produce requests appended nothing"
kill -USR2 "$BPID"
wait_log "SIGUSR2: faults OFF (rate 1, 1 period(s))"
line=$(grep -o 'SIGUSR2: faults OFF.*' "$T/broker.log")
read -r req err drops < <(sed -E 's/.*produce ([0-9]+)\/([0-9]+)\/([0-9]+).*/\1 \2 \3/' <<<"$line")
[ "$req" -gt 0 ] && [ $((err + drops)) = "$req" ] || fail "counts: $line"
grep -q "fetch" <<<"$line" && fail "fetch counted though not faulted: $line"
ok "the OFF line counts $req Produce requests, $err errors and $drops drops"
# After OFF, at most the one outcome queued per API remains (rate 1: a
# fault), so the first attempt may still fail.
produce 5 || produce 5 || fail "producing after the fault mode is off"
ok "Produce works again once the mode is off"
stop_broker
grep -q "exit: faults OFF (rate 1, 1 period(s)); [0-9]* faults in [0-9]* requests" "$T/broker.log" \
  || fail "no exit line with the totals"
ok "the exit line has the totals"
echo "all passed"

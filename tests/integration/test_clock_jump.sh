#!/usr/bin/env bash
# Issue 13 item 11: wall-clock jumps. sagad runs with its CLOCK_REALTIME
# shifted by an LD_PRELOAD shim (tests/integration/clockshift.c) whose
# offset the test changes while sagas run. A forward jump of 5 s and the
# jump back are each logged with their size and counted in /metrics
# (sagad_clock_jumps_total); after the forward jump the replies already in
# Kafka are read before the timers it made due (a catch-up is logged); every
# saga still completes exactly once. The jump stays below the step timeout
# (10 s) and the saga deadline (5 min): a longer one makes those timers due
# at once, as documented, and which sagas they catch would depend on the
# machine's speed (an hour's jump failed every saga in flight under ASan). What a jump does to timers:
# docs/OPERATIONS.md, "Stalls and wall-clock jumps".
. "$(dirname "$0")/lib.sh"
command -v cc >/dev/null || { echo "SKIP: no C compiler for the shim"; exit 77; }
cc -shared -fPIC -O1 -o "$DIR/clockshift.so" "$SAGA_SOURCE_DIR/tests/integration/clockshift.c" -ldl ||
  fail "cannot build the clock shim"
echo 0 >"$DIR/clockshift"
# A sanitizer build: ASan's runtime must come first in the preload list.
asan=$(ldd "$BUILD_DIR/bin/sagad" | awk '/libasan/ {print $3; exit}')
export SAGAD_WRAPPER="env LD_PRELOAD=${asan:+$asan:}$DIR/clockshift.so CLOCKSHIFT_FILE=$DIR/clockshift"
stack_up
metric() { curl -s "$ADMIN_URL/metrics" | sed -n "s/^sagad_$1_total //p"; }
# metric_is NAME VALUE: within 5 s (the snapshot /metrics reads is refreshed every 0.5 s)
metric_is() { local s=$SECONDS; until [ "$(metric "$1")" = "$2" ]; do [ $((SECONDS - s)) -lt 5 ] || { echo "  $1 = $(metric "$1"), want $2" >&2; return 1; }; sleep 0.2; done; }
publish_starts cj1 300
check "sagas run on the shifted clock" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'cj1-%' AND status='completed'" 300 60
check "no jump before the test makes one" metric_is clock_jumps 0
publish_starts cj2 600
sleep 0.3
echo 5000 >"$DIR/clockshift" # 5 s forward, sagas in flight
wait_log() { local s=$SECONDS; until grep -q "$1" "$DIR/sagad.log"; do [ $((SECONDS - s)) -lt 15 ] || return 1; sleep 0.2; done; }
check "the forward jump is logged with its size" wait_log 'the wall clock jumped forward by 50[0-9][0-9] ms'
grep -m1 'the wall clock jumped forward' "$DIR/sagad.log" | sed 's/^/  | /'
check "... followed by a catch-up on the replies" grep -qE '"msg":"after a clock jump' "$DIR/sagad.log"
check "... and counted in /metrics" metric_is clock_jumps 1
check "the sagas in flight at the jump complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'cj2-%' AND status='completed'" 600 120
echo "  (step timeouts after the forward jump: $(saga_sql "SELECT count(*) FROM history WHERE detail LIKE '%STEP_TIMEOUT%'"))"
echo 0 >"$DIR/clockshift" # back
check "the backward jump is logged" wait_log 'the wall clock jumped backward by [45][0-9][0-9][0-9] ms'
check "... and counted" metric_is clock_jumps 2
publish_starts cj3 300
check "sagas started after the backward jump complete (timers wait on the wall clock)" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'cj3-%' AND status='completed'" 300 60
exactly_once cj1 300 1000
exactly_once cj2 600 1000
exactly_once cj3 300 1000
echo "$CHECKS passed, 0 failed"

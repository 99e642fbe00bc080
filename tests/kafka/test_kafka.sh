#!/usr/bin/env bash
# Test of scripts/kafka (the real Apache Kafka of the *_real tests): fetch is
# cached, start serves saga.start, saga.replies and saga.changelog (compacted) with 8 partitions (sagad's
# default --partitions) and the other default topics with 4, a message
# round-trips with kcat, auto-created topics get 4 partitions, kill + start
# is a restart on the same port that keeps the data, stop exits 0 and removes
# the pid and bootstrap files. Registered as kafka_real when java and mvn exist.
set -euo pipefail
SRC=${SAGA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
K=$SRC/scripts/kafka
KCAT=(kcat -X broker.address.family=v4 -m 10)
T=$(mktemp -d /tmp/saga-test-kafka.XXXXXX)
cleanup() {
  local rc=$?
  "$K" stop "$T" >/dev/null 2>&1 || true
  if [ $rc = 0 ]; then rm -rf "$T"; else echo "FAILED; files kept in $T"; tail -n 30 "$T/kafka.log" 2>/dev/null; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
N=0
ok() { N=$((N + 1)); echo "ok - $*"; }

"$K" available || fail "scripts/kafka available"
"$K" fetch || fail "scripts/kafka fetch"
t0=$(date +%s%3N); "$K" fetch; t1=$(date +%s%3N)
[ $((t1 - t0)) -lt 2000 ] || fail "second fetch took $((t1 - t0)) ms (not cached?)"
ok "fetch cached ($((t1 - t0)) ms)"

s=$SECONDS
BS=$("$K" start "$T") || fail "start"
ok "started in $((SECONDS - s)) s on $BS"
[ "$(cat "$T/bootstrap")" = "$BS" ] || fail "DIR/bootstrap '$(cat "$T/bootstrap")' != '$BS'"
[[ $BS =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "bootstrap '$BS'"
PID=$(cat "$T/kafka.pid"); kill -0 "$PID" || fail "pid $PID not running"
"$K" status "$T" >/dev/null || fail "status"
"$K" start "$T" >/dev/null 2>&1 && fail "a second start in the same DIR succeeded"
ok "pid file, status, no double start"

meta=$("${KCAT[@]}" -b "$BS" -L)
for t in saga.start saga.replies saga.changelog; do
  grep -q "topic \"$t\" with 8 partitions" <<<"$meta" || fail "topic $t missing or not 8 partitions"
done
for t in saga.events saga.dlq order.commands inventory.commands payment.commands notification.commands; do
  grep -q "topic \"$t\" with 4 partitions" <<<"$meta" || fail "topic $t missing or not 4 partitions"
done
ok "saga.start, saga.replies and saga.changelog with 8 partitions, the other default topics with 4"

printf '%s\n' 'k-1|one' 'k-2|two' | "${KCAT[@]}" -b "$BS" -P -X partitioner=murmur2_random -t saga.start -K '|' -X linger.ms=1
got=$("${KCAT[@]}" -b "$BS" -C -t saga.start -o beginning -e -q -f '%k %s\n' | sort | tr '\n' ' ')
[ "$got" = "k-1 one k-2 two " ] || fail "consumed '$got'"
echo 'x|y' | "${KCAT[@]}" -b "$BS" -P -X partitioner=murmur2_random -t auto.created -K '|'
"${KCAT[@]}" -b "$BS" -L -t auto.created | grep -q 'topic "auto.created" with 4 partitions' \
  || fail "auto-created topic has not 4 partitions"
ok "round trip; auto-created topic has 4 partitions"

"$K" kill "$T" >/dev/null 2>&1
kill -0 "$PID" 2>/dev/null && fail "still running after kill"
[ ! -e "$T/bootstrap" ] || fail "bootstrap left after kill"
s=$SECONDS
BS2=$("$K" start "$T") || fail "restart after kill"
[ "$BS2" = "$BS" ] || fail "restart moved from $BS to $BS2"
got=$("${KCAT[@]}" -b "$BS" -C -t saga.start -o beginning -e -q -f '%k %s\n' | sort | tr '\n' ' ')
[ "$got" = "k-1 one k-2 two " ] || fail "after restart consumed '$got'"
ok "kill -9 + start: same port, data kept (restart $((SECONDS - s)) s)"

PID=$(cat "$T/kafka.pid")
s=$SECONDS
"$K" stop "$T" || fail "stop exit status"
kill -0 "$PID" 2>/dev/null && fail "pid $PID still running after stop"
[ ! -e "$T/kafka.pid" ] && [ ! -e "$T/bootstrap" ] || fail "pid or bootstrap file left"
"$K" status "$T" >/dev/null && fail "status says running after stop"
ok "stop in $((SECONDS - s)) s"
echo "$N passed, 0 failed"

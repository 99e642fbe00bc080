#!/usr/bin/env bash
# Integration test of the dev broker and of scripts/stack's process handling:
#  1. sagabroker writes its bootstrap file, has the default topics, a message
#     round-trips through it with kcat, SIGUSR1 takes the brokers down and
#     up again, SIGTERM exits 0 and removes the bootstrap file;
#  2. scripts/stack up/down/restart-sagad with the real sagabroker and
#     stand-in sagad and workers (shell scripts honouring the CLI contract),
#     so the script is tested without the real binaries.
# Needs: BUILD_DIR (set by ctest), kcat.
set -euo pipefail

SRC=${SAGA_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD_DIR=$(readlink -f "${BUILD_DIR:-$SRC/build}")
BROKER=$BUILD_DIR/bin/sagabroker
KCAT=(kcat -X broker.address.family=v4 -m 10)
# The mock answers an empty fetch only after fetch.wait.max.ms (default 500).
KCAT_C=("${KCAT[@]}" -X fetch.wait.max.ms=10)
[ -x "$BROKER" ] || { echo "SKIP: $BROKER not built"; exit 77; }
command -v kcat >/dev/null || { echo "FAIL: kcat not installed (scripts/deps)"; exit 1; }

T=$(mktemp -d /tmp/saga-test-broker.XXXXXX)
BPID=""
cleanup() {
  [ -n "$BPID" ] && kill -KILL "$BPID" 2>/dev/null || true
  [ -f "$T/stack/stack.env" ] && BUILD_DIR=$T/fake "$SRC/scripts/stack" down "$T/stack" >/dev/null 2>&1 || true
  rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$T"/*.log "$T"/stack/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done; exit 1; }
ms() { date +%s%3N; }

echo "== 1. sagabroker"
"$BROKER" --bootstrap-file "$T/bootstrap" --partitions 3 --other-partitions 2 --topics "extra.one, extra.two" \
  >"$T/broker.out" 2>"$T/broker.log" &
BPID=$!
for _ in $(seq 100); do [ -s "$T/bootstrap" ] && break; sleep 0.05; done
[ -s "$T/bootstrap" ] || fail "no bootstrap file after 5 s"
BS=$(head -n1 "$T/bootstrap")
[[ $BS =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "bootstrap file content '$BS'"
[ "$(cat "$T/broker.out")" = "$BS" ] || fail "stdout '$(cat "$T/broker.out")' != bootstrap file '$BS'"
echo "bootstrap $BS"

meta=$("${KCAT[@]}" -b "$BS" -L)
for t in saga.start saga.replies; do # the topics sagad consumes: --partitions
  grep -q "topic \"$t\" with 3 partitions" <<<"$meta" || fail "topic $t missing or not 3 partitions"
done
for t in saga.events saga.dlq order.commands inventory.commands payment.commands notification.commands \
         extra.one extra.two; do
  grep -q "topic \"$t\" with 2 partitions" <<<"$meta" || fail "topic $t missing or not 2 partitions"
done

t0=$(ms)
printf '%s\n' 's-1|{"type":"saga.start","message_id":"m-1","saga_id":"s-1"}' 's-2|{"type":"saga.start","message_id":"m-2","saga_id":"s-2"}' \
  | "${KCAT[@]}" -b "$BS" -P -X partitioner=murmur2_random -t saga.start -K '|' -X linger.ms=1
t1=$(ms)
got=$("${KCAT_C[@]}" -b "$BS" -C -t saga.start -o beginning -e -q -f '%k %s\n' | sort)
t2=$(ms)
[ "$(grep -c '^s-[12] {"type":"saga.start","message_id":"m-[12]"' <<<"$got")" = 2 ] || fail "consumed '$got'"
echo "round trip: produce $((t1 - t0)) ms, consume $((t2 - t1)) ms"

kill -USR1 "$BPID"; sleep 0.3
if timeout 10 "${KCAT[@]}" -b "$BS" -L -m 2 >/dev/null 2>&1; then fail "metadata answered while brokers are down"; fi
grep -q 'now DOWN' "$T/broker.log" || fail "SIGUSR1 (down) not logged"
kill -USR1 "$BPID"; sleep 0.3
"${KCAT[@]}" -b "$BS" -L >/dev/null 2>&1 || fail "brokers not back after the second SIGUSR1"
grep -q 'now UP' "$T/broker.log" || fail "SIGUSR1 (up) not logged"
echo "SIGUSR1 outage toggle ok"

kill -TERM "$BPID"
rc=0; wait "$BPID" || rc=$?
BPID=""
[ "$rc" = 0 ] || fail "sagabroker exited $rc on SIGTERM"
[ ! -e "$T/bootstrap" ] || fail "bootstrap file left behind"
echo "SIGTERM: exit 0"

echo "== 2. scripts/stack with stand-in sagad and workers"
mkdir -p "$T/fake/bin"
ln -s "$BROKER" "$T/fake/bin/sagabroker"
cat >"$T/fake/bin/standin" <<'STANDIN'
#!/usr/bin/env bash
# Stand-in for sagad and the workers: checks the CLI contract, writes the
# ready file, exits 0 on SIGTERM.
name=$(basename "$0"); ready=""; bsf=""
while [ $# -gt 0 ]; do
  case $1 in
    --ready-file) ready=$2; shift ;;
    --bootstrap-file) bsf=$2; shift ;;
    --partitions) [ "$name" = sagad ] && [ "$2" = "${SAGA_PARTITIONS:-8}" ] || { echo "$name: --partitions $2" >&2; exit 2; }; shift ;;
    --db|--sagas|--seed|--admin-port|--bootstrap|-X) shift ;;
    *) echo "$name: unexpected argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -s "$bsf" ] || { echo "$name: no bootstrap file" >&2; exit 2; }
[ -n "$ready" ] || { echo "$name: no --ready-file" >&2; exit 2; }
trap 'exit 0' TERM
if [ "$name" = sagad ]; then printf 'ADMIN_URL=http://127.0.0.1:%d\n' $((20000 + $$ % 10000)) >"$ready.tmp"
else echo READY >"$ready.tmp"; fi
mv "$ready.tmp" "$ready"
sleep 1000 & wait
STANDIN
chmod +x "$T/fake/bin/standin"
for n in sagad order-worker inventory-worker payment-worker notification-worker; do
  ln -s standin "$T/fake/bin/$n"
done
export BUILD_DIR=$T/fake
STACK=$SRC/scripts/stack
"$STACK" up "$T/stack" >/dev/null || fail "stack up"
# shellcheck disable=SC1091
. "$T/stack/stack.env"
[ -n "$ADMIN_URL" ] && [ -n "$BOOTSTRAP" ] && [ "$SAGA_DB" = "$T/stack/sagad.db" ] || fail "stack.env incomplete"
[ "$SAGA_PARTITIONS" = 8 ] || fail "stack.env: SAGA_PARTITIONS='$SAGA_PARTITIONS', expected 8"
tr '\0' ' ' <"/proc/$SAGAD_PID/cmdline" 2>/dev/null | grep -q "/bin/sagad --bootstrap-file" || fail "SAGAD_PID $SAGAD_PID is not the sagad process"
"$STACK" status "$T/stack" >/dev/null || fail "stack status while up"
old=$SAGAD_PID
kill -9 "$SAGAD_PID"
for _ in $(seq 50); do [ -e "$T/stack/sagad.exit" ] && break; sleep 0.05; done
[ "$(cat "$T/stack/sagad.exit")" = 137 ] || fail "sagad.exit after kill -9: $(cat "$T/stack/sagad.exit" 2>/dev/null)"
if "$STACK" status "$T/stack" >/dev/null; then fail "status ok with sagad dead"; fi
"$STACK" restart-sagad "$T/stack" 2>/dev/null || fail "restart-sagad"
. "$T/stack/stack.env"
[ "$SAGAD_PID" != "$old" ] && kill -0 "$SAGAD_PID" || fail "SAGAD_PID not updated"
"$STACK" down "$T/stack" 2>/dev/null || fail "stack down reported a failure"
echo "stack up / kill -9 / restart-sagad / down ok"
echo "PASS"

#!/usr/bin/env bash
# Issue 15: a rolling restart and a scale in and out, under a steady
# open-loop load (sagabench, RATE sagas/s), three instances. First each
# instance in turn gets SIGTERM and is started again once the previous one
# is back; then the cluster shrinks to one instance, grows to three and
# shrinks to one again, the shards moving each time. No saga may fail or be
# lost; every instance ends with its share; the p99 of each phase is printed
# (docs/BENCHMARKS.md has the figures). RATE and SECS make a longer form.
. "$(dirname "$0")/lib.sh"
RATE=${RATE:-80}
SECS=${SECS:-30}
export SAGAD_INSTANCES=3
stack_up
X=(); [ "${KAFKA:-}" = real ] || X=(-X fetch.wait.max.ms=1)
load() { # LABEL: RATE sagas/s for SECS seconds in the background
  "$BUILD_DIR/bin/sagabench" --bootstrap "$BOOTSTRAP" --rate "$RATE" --count $((RATE * SECS)) --warmup 0 \
    --timeout 90 --label "$1" --json "$DIR/bench.jsonl" "${X[@]}" >"$DIR/bench-$1.out" 2>&1 &
  bench_pid=$!
}
field() { python3 -c "import json, sys; r = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)['label'] == sys.argv[2]][-1]; print(r[sys.argv[3]])" "$DIR/bench.jsonl" "$1" "$2"; }
# every instance's admin URL (ready files: stack.env is rewritten by stack verbs only)
all_urls() { sed -n 's/^ADMIN_URL=//p' "$DIR"/sagad.ready "$DIR"/sagad-[0-9].ready 2>/dev/null; }
# wait_shares N: N instances answer, each owns some shards, all P owned
wait_shares() {
  local _ u o sum n zero m
  for _ in $(seq 400); do
    sum=0; n=0; zero=0
    for u in $(all_urls); do
      m=$(curl -sf "$u/metrics") || continue # stopped
      o=$(awk '/^sagad_shard_owned\{/ { n += $2 } END { print n + 0 }' <<<"$m")
      sum=$((sum + o)); n=$((n + 1)); [ "$o" -gt 0 ] || zero=1
    done
    [ "$n" = "$1" ] && [ "$sum" = "$SAGA_PARTITIONS" ] && [ $zero = 0 ] && return 0
    sleep 0.1
  done
  echo "  $n instance(s) own $sum shard(s) (zero somewhere: $zero); want $1 owning all $SAGA_PARTITIONS" >&2
  return 1
}
stop_instance() { # K: SIGTERM, wait for its exit
  local name=sagad; [ "$1" = 1 ] || name=sagad-$1
  local pid; pid=$(cat "$DIR/$name.pid")
  kill -TERM "$pid"
  wait_exit "$name" 30 || fail "instance $1 did not stop on SIGTERM"
  [ "$(exit_status_of "$name")" = 0 ] || fail "instance $1 exited $(exit_status_of "$name") on SIGTERM"
}
check "three instances share the shards" wait_shares 3

# ---- rolling restart
load rolling
sleep 5
for k in 1 2 3; do
  stop_instance "$k"
  "$STACK" restart-sagad "$DIR" "$k" >>"$DIR/stack-up.out" 2>&1 || fail "restart of instance $k"
  check "instance $k restarted (SIGTERM, exit 0); the three share the shards again" wait_shares 3
done
wait "$bench_pid" || { cat "$DIR/bench-rolling.out" >&2; fail "sagabench (rolling restart) failed"; }
check "rolling restart: $((RATE * SECS)) sagas completed, none failed or lost" \
  eq "$(field rolling measured)/$(field rolling failed)/$(field rolling lost)" "$((RATE * SECS))/0/0"
echo "# rolling restart at $RATE sagas/s: p50 $(field rolling p50_ms) ms, p99 $(field rolling p99_ms) ms"

# ---- scale in to one, out to three, in to one
load scale
sleep 3
stop_instance 3; stop_instance 2
check "scaled in: instance 1 owns every shard" wait_shares 1
"$STACK" restart-sagad "$DIR" 2 >>"$DIR/stack-up.out" 2>&1 || fail "start of instance 2"
"$STACK" restart-sagad "$DIR" 3 >>"$DIR/stack-up.out" 2>&1 || fail "start of instance 3"
check "scaled out: the three share the shards" wait_shares 3
stop_instance 3; stop_instance 2
check "scaled in again: instance 1 owns every shard" wait_shares 1
wait "$bench_pid" || { cat "$DIR/bench-scale.out" >&2; fail "sagabench (scale) failed"; }
check "scale 3→1→3→1: $((RATE * SECS)) sagas completed, none failed or lost" \
  eq "$(field scale measured)/$(field scale failed)/$(field scale lost)" "$((RATE * SECS))/0/0"
echo "# scale 3→1→3→1 at $RATE sagas/s: p50 $(field scale p50_ms) ms, p99 $(field scale p99_ms) ms"
check "no shard diverged: SIGTERM hands every shard over clean ($(cat "$DIR"/sagad*.log | grep -c 'its state diverged' || true) diverged)" \
  test "$(cat "$DIR"/sagad*.log | grep -c 'its state diverged' || true)" = 0
SAGA_DBS=$SAGA_DB
check "the audit is clean" "$BUILD_DIR/bin/sagactl" audit --saga-db "$SAGA_DB" --order-db "$ORDER_DB" \
  --inventory-db "$INVENTORY_DB" --payment-db "$PAYMENT_DB" --notification-db "$NOTIFICATION_DB"
echo "$CHECKS passed, 0 failed"

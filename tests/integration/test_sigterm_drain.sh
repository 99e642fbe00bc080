#!/usr/bin/env bash
# SIGTERM to sagad and to each worker while sagas are in flight: each exits
# 0; after a restart nothing is lost and nothing is done twice.
. "$(dirname "$0")/lib.sh"
PER=${PER:-150}
stack_up
i=0
for name in sagad order-worker inventory-worker payment-worker notification-worker; do
  i=$((i + 1))
  publish_starts "term$i" "$PER"
  sleep 0.3 # let the batch get going, then stop the process in the middle of it
  kill -TERM "$(cat "$DIR/$name.pid")"
  wait_exit "$name" 30 || fail "$name did not stop within 30 s of SIGTERM"
  check "$name exits 0 on SIGTERM mid-run" eq "$(exit_status_of "$name")" 0
  "$STACK" start-one "$name" "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart of $name"
  reload_env
done
check "all $((PER * i)) sagas completed" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'term%' AND status='completed'" "$((PER * i))" 180
for k in $(seq 1 $i); do exactly_once "term$k" "$PER" 1000; done
echo "$CHECKS passed, 0 failed"

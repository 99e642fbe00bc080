#!/usr/bin/env bash
# Issue 13 (part): librdkafka 2.0.2 can leave a consumer's assigned
# partitions without a fetcher when the fetch of their committed offsets
# (OffsetFetch) fails with a coordinator error such as NOT_COORDINATOR
# (confluentinc/librdkafka#5586): the worker looks healthy and consumes
# nothing. The participant library re-assigns its partitions on that
# consumer error. Here the dev broker fails every OffsetFetch while the
# order worker restarts; once the faults stop, the worker must consume
# again, and sagas through it complete.
# Dev broker only: the fault injection is sagabroker's.
. "$(dirname "$0")/lib.sh"
if [ "${KAFKA:-}" = real ] || [ -n "${BOOTSTRAP:-}" ]; then
  echo "SKIP: needs sagabroker's fault injection"; exit 77
fi
export SAGABROKER_ARGS="--faults 1 --fault-apis offsetfetch --fault-seed 13 ${SAGABROKER_ARGS:-}"
stack_up
publish_starts before 3
check "sagas before the faults complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'before-%' AND status='completed'" 3 60

# The order worker restarts while every OffsetFetch fails.
kill -TERM "$ORDER_WORKER_PID"
check "the order worker stopped" wait_exit order-worker 30
kill -USR2 "$SAGABROKER_PID" # faults ON
"$STACK" start-one order-worker "$DIR" >"$DIR/start-one.out" 2>&1 || { cat "$DIR/start-one.out" >&2; fail "start-one"; }
reload_env
wait_fetch_error() {
  local start=$SECONDS
  while [ $((SECONDS - start)) -lt 30 ]; do
    grep -q "consumer: .*\(Not coordinator\|Coordinator not available\)" "$DIR/order-worker.log" && return 0
    sleep 0.2
  done
  return 1
}
check "the worker's committed-offset fetch failed with a coordinator error" wait_fetch_error
sleep 2
kill -USR2 "$SAGABROKER_PID" # faults OFF
wait_reassigned() {
  local start=$SECONDS
  while [ $((SECONDS - start)) -lt 30 ]; do
    grep -q "re-assigned [0-9]* partition(s) after a failed fetch of committed offsets" "$DIR/order-worker.log" && return 0
    sleep 0.2
  done
  return 1
}
check "the worker re-assigned its partitions" wait_reassigned
publish_starts after 5
check "sagas after the faults complete through the restarted worker" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'after-%' AND status='completed'" 5 60
check "no step was retried (the worker answered in time)" \
  eq "$(saga_sql "SELECT count(*) FROM steps WHERE saga_id LIKE 'after-%' AND attempt > 1")" 0
check "the outbox is drained" wait_count "SELECT count(*) FROM outbox" 0 20
echo "$CHECKS passed, 0 failed"

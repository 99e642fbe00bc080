#!/usr/bin/env bash
# Issue 15, fencing: two sagad instances share the partitions; instance 2
# stops itself (SIGSTOP, a GC-like pause) with a relay transaction in hand —
# its shards committed in SQLite, its records produced, the Kafka commit not
# done (SAGAD_STALL_DIR, the after_produce stall point). It stays stopped for
# the session timeout + 10 s: the group gives its shards to instance 1. Then
# it is continued: its transaction must be refused for its stale group
# generation (KIP-447) — counted in its log and /metrics — it gives up its
# shards, and every saga still ends exactly once, the audit clean.
# Apache Kafka only: the dev broker has no transactions to fence.
. "$(dirname "$0")/lib.sh"
if [ "${KAFKA:-}" != real ]; then
  echo "# skipped: the dev broker (librdkafka's mock) has no transactions, so nothing to fence"
  exit 77
fi
export SAGAD_INSTANCES=2 SAGAD_STALL_DIR=$DIR
stack_up
SESSION_S=6 # session.timeout.ms (common/saga_kafka.c)
owning() { grep "owning" "$DIR/$1.log" | tail -n1 | sed -n 's/.*owning \([0-9]*\) of.*/\1/p'; }
wait_log() { # NAME PATTERN SECONDS
  local _; for _ in $(seq $(($3 * 10))); do grep -q "$2" "$DIR/$1.log" && return 0; sleep 0.1; done; return 1; }
check "instance 2 owns shards" bash -c "for _ in \$(seq 300); do grep 'owning' '$DIR/sagad-2.log' | tail -n1 | grep -qv 'owning 0 of' && exit 0; sleep 0.1; done; exit 1"
echo "  | instance 1 owns $(owning sagad), instance 2 owns $(owning sagad-2)"
publish_starts zb1 200
touch "$DIR/stall-sagad-2"
publish_starts zb2 200
check "instance 2 stopped itself with a transaction in hand" wait_log sagad-2 "stall point: stopping" 60
check "... it is stopped (state T)" bash -c "ps -o stat= -p $SAGAD_2_PID | grep -q T"
publish_starts zb3 100
sleep $((SESSION_S + 10))
check "instance 1 took every shard while instance 2 was stopped" wait_log sagad "owning $SAGA_PARTITIONS of $SAGA_PARTITIONS" 30
kill -CONT "$SAGAD_2_PID"
check "instance 2, continued, had its transaction refused for a stale generation" \
  wait_log sagad-2 "relay transaction refused: this instance's group generation is stale" 60
read -r -a urls <<<"$ADMIN_URLS"
fenced=$(curl -s "${urls[1]}/metrics" | awk '$1 == "sagad_txn_fenced_total" { print $2 }')
check "... counted in its /metrics (sagad_txn_fenced_total $fenced)" test "${fenced:-0}" -ge 1
check "... and it is still running" kill -0 "$SAGAD_2_PID"
publish_starts zb4 100
check "every saga completes" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'zb%' AND status='completed'" 600 180
exactly_once zb1 200 1000
exactly_once zb2 200 1000
exactly_once zb3 100 1000
exactly_once zb4 100 1000
check "every history gap-free" history_gap_free
check "the audit over both data directories is clean" \
  "$BUILD_DIR/bin/sagactl" audit --order-db "$ORDER_DB" --inventory-db "$INVENTORY_DB" --payment-db "$PAYMENT_DB" --notification-db "$NOTIFICATION_DB"
echo "$CHECKS passed, 0 failed"

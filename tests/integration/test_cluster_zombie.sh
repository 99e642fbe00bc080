#!/usr/bin/env bash
# Issue 15, fencing: two sagad instances share the partitions; instance 2
# stops itself (SIGSTOP, a GC-like pause) with a relay transaction in hand —
# its shards committed in SQLite, its records produced, the Kafka commit not
# done (SAGAD_STALL_DIR, the after_produce stall point). It stays stopped for
# the session timeout + 10 s: the group gives its shards to instance 1. Then
# it is continued: its transaction must be refused for its stale group
# generation (KIP-447) — counted in its log and /metrics — it gives up its
# shards, and every saga still ends exactly once, the audit clean. Then the
# same for an instance that stalls while alone in the group (phase 2).
# Apache Kafka only: the dev broker has no transactions to fence.
. "$(dirname "$0")/lib.sh"
if [ "${KAFKA:-}" != real ]; then
  echo "# skipped: the dev broker (librdkafka's mock) has no transactions, so nothing to fence"
  exit 77
fi
export SAGAD_INSTANCES=2 SAGAD_STALL_DIR=$DIR
# The transactions may outlive every stall here (60 s, not sagad's 10 s): the
# broker then never aborts the stalled one on its own, and only the group
# generation the transaction carries (KIP-447) can refuse it.
export SAGAD_ARGS="-X transaction.timeout.ms=60000"
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
fenced_total() { curl -s "$1/metrics" | awk '$1 == "sagad_txn_fenced_total" { print $2 }'; }
for _ in $(seq 50); do # the loop publishes its counters to the admin API about once a second
  fenced=$(fenced_total "${urls[1]}")
  [ "${fenced:-0}" -ge 1 ] && break
  sleep 0.1
done
check "... counted in its /metrics (sagad_txn_fenced_total $fenced)" test "${fenced:-0}" -ge 1
check "... and it is still running" kill -0 "$SAGAD_2_PID"
publish_starts zb4 100
check "every saga completes" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'zb%' AND status='completed'" 600 180

# Phase 2, alone in the group: instance 2 is killed, instance 1 takes every
# shard and then stalls alone with a transaction in hand (its transactions
# need not carry offsets alone, yet this one must); instance 2 comes back
# meanwhile and takes every shard. Continued, instance 1 is refused too.
log_count() { grep -c "$2" "$DIR/$1.log" || true; }
wait_more() { # NAME PATTERN COUNT_BEFORE SECONDS
  local _; for _ in $(seq $(($4 * 10))); do [ "$(log_count "$1" "$2")" -gt "$3" ] && return 0; sleep 0.1; done; return 1; }
last_owning() { # NAME: the shards its last ownership line names
  grep "owning [0-9]* of" "$DIR/$1.log" | tail -n1 | sed -n 's/.*owning \([0-9]*\) of.*/\1/p'; }
wait_owning_all() { # NAME SECONDS
  local _; for _ in $(seq $(($2 * 10))); do [ "$(last_owning "$1")" = "$SAGA_PARTITIONS" ] && return 0; sleep 0.1; done; return 1; }
"$STACK" kill-sagad "$DIR" 2 >>"$DIR/stack-up.out" 2>&1 || fail "kill-sagad 2"
check "instance 2 killed: instance 1 owns every shard alone" wait_owning_all sagad $((SESSION_S + 30))
stalls=$(log_count sagad "stall point: stopping") refused=$(log_count sagad "group generation is stale")
echo without-offsets >"$DIR/stall-sagad-1" # alone, such a transaction need not carry offsets
publish_starts zc1 200
check "instance 1, alone, stopped itself with a transaction in hand (no new offsets in it)" wait_more sagad "stall point: stopping" "$stalls" 60
check "... it is stopped (state T)" bash -c "ps -o stat= -p $SAGAD_PID | grep -q T"
"$STACK" restart-sagad "$DIR" 2 >>"$DIR/stack-up.out" 2>&1 || fail "restart-sagad 2"
reload_env
check "instance 2, started again, took every shard while instance 1 was stopped" \
  wait_owning_all sagad-2 $((SESSION_S + 40))
kill -CONT "$SAGAD_PID"
check "instance 1, continued, had its transaction refused for a stale generation" \
  wait_more sagad "group generation is stale" "$refused" 60
check "... and it is still running" kill -0 "$SAGAD_PID"
publish_starts zc2 100
check "every saga completes" wait_count "SELECT count(*) FROM sagas WHERE (id LIKE 'zb%' OR id LIKE 'zc%') AND status='completed'" 900 180
exactly_once zb1 200 1000
exactly_once zb2 200 1000
exactly_once zb3 100 1000
exactly_once zb4 100 1000
exactly_once zc1 200 1000
exactly_once zc2 100 1000
check "every history gap-free" history_gap_free
check "the audit over both data directories is clean" \
  "$BUILD_DIR/bin/sagactl" audit --order-db "$ORDER_DB" --inventory-db "$INVENTORY_DB" --payment-db "$PAYMENT_DB" --notification-db "$NOTIFICATION_DB"
echo "$CHECKS passed, 0 failed"

#!/usr/bin/env bash
# A fatal producer error that is not a fencing (e.g. the sequence
# desynchronisation librdkafka 2.0.2 declares after a produce request timed
# out) replaces the transactional producer instead of stopping sagad: the
# open transaction is dropped like an abort and its rows go out again in a
# new one (SAGAD_FATAL_TXN=3, after the third producing transaction's rows
# were produced). A fencing error (SAGAD_FATAL_TXN=N:fenced: the producer's
# epoch was bumped under it, as when the broker aborted a transaction that
# outlived transaction.timeout.ms in a stall) makes sagad give up every shard
# (counted as a fenced transaction), go on with a new producer and take its
# shards again: every saga still completes once.
. "$(dirname "$0")/lib.sh"
SAGACTL="$BUILD_DIR/bin/sagactl"
in_log() { # PATTERN [SECONDS]: waits for a line of sagad.log
  for _ in $(seq $((${2:-60} * 10))); do grep -q "$1" "$DIR/sagad.log" && return 0; sleep 0.1; done; return 1
}
export SAGAD_FATAL_TXN=3
stack_up
unset SAGAD_FATAL_TXN
publish_starts ok 60
publish_starts broke 20 c-broke sku-1 5000
check "sagad hit the fatal error on purpose" in_log "a fatal error on purpose"
check "it replaced the producer" in_log "recreating the producer"
check "all 80 sagas finished" \
  wait_count "SELECT count(*) FROM sagas WHERE status IN ('completed','compensated','compensation_failed')" 80 120
check "sagad is still the first process (not restarted)" kill -0 "$SAGAD_PID"
check "ok-*: 60 completed" eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'ok-%' AND status='completed'")" 60
check "broke-*: 20 compensated" eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'broke-%' AND status='compensated'")" 20
exactly_once ok 60 1000
check "outbox drained" wait_outbox
recreated=$(curl -s -H "Authorization: Bearer $(cat "$SAGA_ADMIN_TOKEN_FILE")" "$ADMIN_URL/metrics" |
  awk '/^sagad_producers_recreated_total/ { print $2 }')
check "/metrics counts the replaced producer (${recreated:-none})" test "${recreated:-0}" -ge 1
audit_ok() {
  "$SAGACTL" audit --saga-db "$SAGA_DB" --order-db "$ORDER_DB" --inventory-db "$INVENTORY_DB" \
    --payment-db "$PAYMENT_DB" --notification-db "$NOTIFICATION_DB" >"$DIR/audit.out" 2>&1 || { sed 's/^/  | /' "$DIR/audit.out"; return 1; }
}
check "sagactl audit passes" audit_ok

# Fenced: sagad gives up its shards and goes on.
kill -TERM "$SAGAD_PID"
check "sagad stopped" wait_exit sagad 30
SAGAD_FATAL_TXN=1:fenced "$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || true
reload_env
publish_starts fenced 5
check "its log says the producer was fenced" in_log "PRODUCER_FENCED" 60
check "... and that it gave up every shard" in_log "giving up every shard until the group assigns again" 30
fenced_total() { curl -s "$ADMIN_URL/metrics" | awk '$1 == "sagad_txn_fenced_total" { print $2 }'; }
# /metrics shows the counters as the loop last published them, and the loop
# is busy giving up the shards (up to 10 s) right after the log line: wait
# (20 s) until the count is there, then it must be exactly 1.
fenced_counted() { local _ n; for _ in $(seq 100); do n=$(fenced_total); [ "${n:-0}" -ge 1 ] && break; sleep 0.2; done; eq "${n:-none}" 1; }
check "counted: sagad_txn_fenced_total 1" fenced_counted
check "sagad is still running" kill -0 "$SAGAD_PID"
check "the sagas started then complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'fenced-%' AND status='completed'" 5 90
exactly_once fenced 5 1000
echo "$CHECKS passed, 0 failed"

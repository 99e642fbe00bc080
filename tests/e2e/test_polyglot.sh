#!/usr/bin/env bash
# order_fulfillment on Apache Kafka with participants in three languages: the
# order and inventory steps in C, the payment step served by the Java
# participant (PAYMENT_WORKER_BIN) and the notify step by the Python one
# (NOTIFICATION_WORKER_BIN). Completions and compensations are right, then a
# kill -9 of each foreign participant in the middle of 60 sagas (the Java one,
# then the Python one), each restarted with `scripts/stack start-one`, changes
# nothing in the outcome: every saga completes, each action ran once, audit clean.
. "$(dirname "$0")/e2e_lib.sh"
[ -x "${PAYMENT_WORKER_BIN:-}" ] || fail "PAYMENT_WORKER_BIN must be the Java payment worker"
[ -x "${NOTIFICATION_WORKER_BIN:-}" ] || fail "NOTIFICATION_WORKER_BIN must be the Python notification participant"
export KAFKA=real
e2e_env
# each foreign participant slowed a little, so a kill lands while sagas are in flight
export PAYMENT_WORKER_ARGS="--delay-ms 40" NOTIFICATION_WORKER_ARGS="--delay-ms 40"
stack_up
check "the payment worker is the Java participant" grep -q 'dev.sagad.payment.PaymentWorker' "/proc/$PAYMENT_WORKER_PID/cmdline"
check "the notification worker is the Python participant" grep -q 'notification.py' "/proc/$NOTIFICATION_WORKER_PID/cmdline"

publish_saga ok-1 order_fulfillment c-1 sku-1 1999
publish_saga ok-2 order_fulfillment c-2 sku-2 2500
publish_saga dec-1 order_fulfillment c-broke sku-2 2500
publish_saga oos-1 order_fulfillment c-1 sku-empty 100
check "ok-1 and ok-2 completed" wait_count "SELECT count(*) FROM sagas WHERE id IN ('ok-1','ok-2') AND status='completed'" 2 90
check "ok-1: every step in order, through C, C, Java and Python" in_history ok-1 saga.started \
  step.succeeded:create_order step.succeeded:reserve_inventory step.succeeded:charge_payment step.succeeded:notify saga.completed
check "ok-1: charged once (Java ledger), notified once (Python ledger)" \
  eq "$(sql "$PAYMENT_DB" "SELECT count(*) FROM charges WHERE saga_id='ok-1' AND status='charged'")/$(sql "$NOTIFICATION_DB" "SELECT count(*) FROM notifications WHERE saga_id='ok-1'")" 1/1
check "dec-1 compensated (declined by the Java participant)" wait_status dec-1 compensated 60
check "dec-1: inventory then order compensated, nothing notified" \
  eq "$(in_history dec-1 step.failed:charge_payment saga.compensating compensation.succeeded:reserve_inventory \
        compensation.succeeded:create_order saga.compensated && echo ok)/$(sql "$NOTIFICATION_DB" "SELECT count(*) FROM notifications WHERE saga_id='dec-1'")" ok/0
check "oos-1 compensated (out of stock, the C inventory worker)" wait_status oos-1 compensated 60
check "sagactl audit passes (before the crashes)" audit_passes

publish_starts crash 60 c-1 sku-1 1000
count_of() { sql "$1" "SELECT count(*) FROM $2 WHERE saga_id LIKE 'crash-%'"; }
# kill_mid_run WORKER WHO DB TABLE WHAT: kill -9 WORKER once 5 of the crash sagas have a row in
# its ledger's TABLE, check it died mid-run, start it again
kill_mid_run() {
  local worker=$1 who=$2 db=$3 table=$4 what=$5 pid_var at_kill
  pid_var="$(echo "${worker//-/_}" | tr a-z A-Z)_PID"
  for _ in $(seq 1200); do [ "$(count_of "$db" "$table")" -ge 5 ] && break; sleep 0.05; done
  kill -9 "${!pid_var}"
  check "the $who participant died of SIGKILL" wait_exit "$worker" 30
  at_kill=$(count_of "$db" "$table")
  check "the $who participant was killed mid-run ($at_kill of 60 $what)" test "$at_kill" -lt 60
  "$STACK" start-one "$worker" "$DIR" >"$DIR/start-one.out" 2>&1 || { cat "$DIR/start-one.out" >&2; fail "start-one $worker"; }
  reload_env
}
kill_mid_run payment-worker Java "$PAYMENT_DB" charges charged
kill_mid_run notification-worker Python "$NOTIFICATION_DB" notifications notified
check "the restarted workers are the foreign ones" \
  eq "$(grep -c 'dev.sagad.payment.PaymentWorker' "/proc/$PAYMENT_WORKER_PID/cmdline")/$(grep -c 'notification.py' "/proc/$NOTIFICATION_WORKER_PID/cmdline")" 1/1
check "all 60 sagas completed after the restarts" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'crash-%' AND status='completed'" 60 180
exactly_once crash 60 1000
check "one recorded action per saga in each foreign ledger" \
  eq "$(sql "$PAYMENT_DB" "SELECT count(*) FROM processed WHERE saga_id LIKE 'crash-%' AND kind='action'")/$(sql "$NOTIFICATION_DB" "SELECT count(*) FROM processed WHERE saga_id LIKE 'crash-%' AND kind='action'")" 60/60
check "sagactl audit passes" audit_passes
finish

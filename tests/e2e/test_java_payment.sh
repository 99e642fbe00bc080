#!/usr/bin/env bash
# order_fulfillment with the payment step served by the Java participant
# (workers/java, PAYMENT_WORKER_BIN) on Apache Kafka (the Java client cannot
# use the dev broker: docs/PARTICIPANTS.md, "Java"): sagas complete; a
# declined charge compensates; a transient failure is retried; a charge whose
# outcome is unknown is refunded by the Java compensation; saga ids of the
# maximum length complete and compensate; a kill -9 of the Java worker in
# the middle of 40 sagas, then `scripts/stack start-one`, changes nothing in
# the outcome (each saga charged once); `sagactl audit` passes.
. "$(dirname "$0")/e2e_lib.sh"
[ -x "${PAYMENT_WORKER_BIN:-}" ] || fail "PAYMENT_WORKER_BIN must be the Java payment worker (scripts/java-participant build)"
export KAFKA=real
e2e_env
# c-slow's first attempt takes 3 s against order_timeout_once's 2 s step timeout;
# --delay-ms spreads the 40 crash sagas' charges over a few seconds, so the kill lands mid-run.
export PAYMENT_WORKER_TEST_TRIGGERS=1 PAYMENT_WORKER_TEST_SLOW_MS=3000 PAYMENT_WORKER_ARGS="--delay-ms 40"
stack_up
check "the payment worker is the Java one" grep -q 'dev.sagad.payment.PaymentWorker' "/proc/$PAYMENT_WORKER_PID/cmdline"

charges() { sql "$PAYMENT_DB" "SELECT count(*) || '/' || coalesce(group_concat(DISTINCT status), '-') FROM charges WHERE saga_id='$1'"; }
long=$(printf 'L%.0s' {1..120})
max_ok=${long}-ok-max # 127 bytes, the longest saga id (docs/PROTOCOL.md, "Limits")
max_slow=${long}-slowmx
check "the long ids have 127 bytes" eq "${#max_ok}/${#max_slow}" 127/127

publish_saga ok-1 order_fulfillment c-1 sku-1 1999
publish_saga ok-2 order_fulfillment c-2 sku-2 2500
publish_saga dec-1 order_fulfillment c-broke sku-2 2500
publish_saga flaky-1 order_fulfillment c-flaky sku-1 1200
publish_saga once-1 order_timeout_once c-slow sku-1 2700
publish_saga "$max_ok" order_fulfillment c-1 sku-1 300 o-max-ok
publish_saga "$max_slow" order_timeout_once c-slow sku-1 400 o-max-slow

check "ok-1 and ok-2 completed" wait_count "SELECT count(*) FROM sagas WHERE id IN ('ok-1','ok-2') AND status='completed'" 2 60
check "ok-1: every step in order" in_history ok-1 saga.started step.succeeded:create_order \
  step.succeeded:reserve_inventory step.succeeded:charge_payment step.succeeded:notify saga.completed
check "ok-1: charged once, the output sagad stored is the Java ledger's" \
  eq "$(charges ok-1)/$(saga_sql "SELECT json_extract(output, '\$.payment_id') FROM steps WHERE saga_id='ok-1' AND name='charge_payment'")" \
  "1/charged/pay-ok-1/charge_payment"
check "ok-2: charged once" eq "$(charges ok-2)" 1/charged

check "dec-1 compensated" wait_status dec-1 compensated 60
check "dec-1: PAYMENT_DECLINED from the Java worker" eq "$(saga_sql "SELECT error_code FROM sagas WHERE id='dec-1'")" PAYMENT_DECLINED
check "dec-1: charge failed, inventory then order compensated" in_history dec-1 step.failed:charge_payment \
  saga.compensating compensation.succeeded:reserve_inventory compensation.succeeded:create_order saga.compensated
check "dec-1: no charge, the failure recorded" \
  eq "$(charges dec-1)/$(sql "$PAYMENT_DB" "SELECT status || '/' || error_code FROM processed WHERE saga_id='dec-1'")" "0/-/failure/PAYMENT_DECLINED"

check "flaky-1 completed" wait_status flaky-1 completed 60
check "flaky-1: retry on attempt 1, charged once on attempt 2" \
  eq "$(saga_sql "SELECT attempt FROM steps WHERE saga_id='flaky-1' AND name='charge_payment'")/$(charges flaky-1)" "2/1/charged"

for id in once-1 "$max_slow"; do
  check "${id:0:12}…: compensated" wait_status "$id" compensated 60
  check "${id:0:12}…: outcome unknown, then the Java refund ran" in_history "$id" step.unknown:charge_payment \
    saga.compensating compensation.succeeded:charge_payment compensation.succeeded:create_order saga.compensated
  check "${id:0:12}…: the late charge ran, then was refunded" eq "$(charges "$id")" 1/refunded
done
check "c-slow got all its money back" eq "$(sql "$PAYMENT_DB" "SELECT initial - balance FROM accounts WHERE customer='c-slow'")" 0
check "the 127-byte saga id completed" wait_status "$max_ok" completed 60
check "the 127-byte saga id: charged once" eq "$(charges "$max_ok")" 1/charged
check "sagactl audit passes (before the crash)" audit_passes

# kill -9 mid-run: some of the 40 charges done, some not.
publish_starts crash 40 c-1 sku-1 1000
crash_charges() { sql "$PAYMENT_DB" "SELECT count(*) FROM charges WHERE saga_id LIKE 'crash-%'"; }
for _ in $(seq 600); do [ "$(crash_charges)" -ge 5 ] && break; sleep 0.05; done
kill -9 "$PAYMENT_WORKER_PID"
check "the Java worker died of SIGKILL" wait_exit payment-worker 30
check "exit status 137" eq "$(exit_status_of payment-worker)" 137
at_kill=$(crash_charges)
check "the kill came mid-run ($at_kill of 40 charged)" test "$at_kill" -ge 5 -a "$at_kill" -lt 40
"$STACK" start-one payment-worker "$DIR" >"$DIR/start-one.out" 2>&1 ||
  { cat "$DIR/start-one.out" >&2; fail "start-one payment-worker"; }
reload_env
check "the restarted worker is the Java one" grep -q 'dev.sagad.payment.PaymentWorker' "/proc/$PAYMENT_WORKER_PID/cmdline"
check "all 40 sagas completed after the restart" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'crash-%' AND status='completed'" 40 120
exactly_once crash 40 1000
check "nothing charged twice: one charge and one recorded action per saga step" \
  eq "$(sql "$PAYMENT_DB" "SELECT (SELECT count(*) FROM (SELECT saga_id FROM charges GROUP BY saga_id HAVING count(*) > 1)) || '/' || (SELECT count(*) FROM processed WHERE saga_id LIKE 'crash-%' AND kind='action')")" 0/40
# Every Java reply on its saga's partition, the one its command named (reply_partition); the unit
# tests (ReplyPartitionTest) show the explicit partition wins over the partitioner.
java_replies_placed() { # prints "replies/misplaced"
  { kcat -b "$BOOTSTRAP" -C -t payment.commands -o beginning -e -q -X isolation.level=read_committed -f 'C\t%p\t%s\n'
    kcat -b "$BOOTSTRAP" -C -t saga.replies -o beginning -e -q -f 'R\t%p\t%s\n'; } | python3 -c '
import json, sys
rows = [l.rstrip("\n").split("\t", 2) for l in sys.stdin if l.count("\t") >= 2]
want = {json.loads(b)["message_id"]: json.loads(b)["reply_partition"] for k, p, b in rows if k == "C"}
got = bad = 0
for k, p, b in rows:
    m = json.loads(b) if k == "R" else {}
    if m.get("in_reply_to") in want:
        got += 1
        if int(p) != want[m["in_reply_to"]]:
            bad += 1
            print("reply", m["message_id"], "on partition", p, "not", want[m["in_reply_to"]], file=sys.stderr)
print(f"{got}/{bad}")'
}
placed=$(java_replies_placed)
check "every Java reply is on its command's reply_partition ($placed replies/misplaced)" \
  test "${placed%/*}" -ge 50 -a "${placed#*/}" = 0
check "sagactl audit passes" audit_passes
finish

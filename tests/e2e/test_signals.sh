#!/usr/bin/env bash
# Signal steps (issue 16): order_approval waits for a manager's approval
# between reserving the items and charging the customer.
#  - ap-1 is approved over HTTP (sagactl signal): charged, notified, completed;
#  - rj-1 is rejected by a saga.signal on Kafka: compensated, nothing charged;
#  - to-1 (order_approval_quick, a 3 s window) gets no answer: SIGNAL_TIMEOUT;
#  - early-1, a delayed start, gets its signal while it is still scheduled:
#    the signal is kept and used when the step is reached;
#  - duplicates change nothing: the same Kafka message again (dedup), a
#    second signal on Kafka (dead-lettered, "already received"), a second
#    one over HTTP (409); unknown signal names are 404 / dead-lettered.
# Ledgers: orders, reservations and charges match; sagactl audit is clean.
. "$(dirname "$0")/e2e_lib.sh"
e2e_env
stack_up
step_status() { saga_sql "SELECT status FROM steps WHERE saga_id='$1' AND name='manager_approval'"; }
publish_approval() { # ID [DEFINITION] [EXTRA_JSON_MEMBERS]
  printf '%s\t{"type":"saga.start","message_id":"m-%s","definition":"%s","saga_id":"%s",%s"input":{"order_id":"o-%s","customer":"c-1","amount":700,"items":[{"sku":"sku-1","qty":1}]}}\n' \
    "$1" "$1" "${2:-order_approval}" "$1" "${3:-}" "$1" |
    kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t'
}
kafka_signal() { # MESSAGE_ID SAGA_ID NAME STATUS_AND_MORE
  printf '%s\t{"type":"saga.signal","message_id":"%s","saga_id":"%s","signal":"%s",%s}\n' "$2" "$1" "$2" "$3" "$4" |
    kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.replies -K $'\t'
}

publish_approval ap-1
publish_approval rj-1
publish_approval to-1 order_approval_quick
publish_approval early-1 order_approval '"delay":"4s",'
check "early-1 is scheduled" wait_status early-1 scheduled 20
kafka_signal sig-early-1 early-1 manager_approval '"status":"success","output":{"approver":"early-bird"}'
check "early-1 keeps its signal" wait_count "SELECT count(*) FROM steps WHERE saga_id='early-1' AND signal IS NOT NULL" 1 20
kafka_signal sig-early-1b early-1 manager_approval '"status":"failure"'   # a second one on Kafka: dead-lettered
check "a second signal for early-1 over HTTP: 409 already received" \
  eq "$(admin_post /v1/sagas/early-1/signals/manager_approval '{"status":"failure"}')/$(grep -c 'already received' "$DIR/resp")" "409/1"
check "ap-1 waits for its approval" wait_count "SELECT status FROM steps WHERE saga_id='ap-1' AND name='manager_approval'" waiting 30
check "rj-1 waits for its approval" wait_count "SELECT status FROM steps WHERE saga_id='rj-1' AND name='manager_approval'" waiting 30
check "nothing is charged while they wait" eq "$(sql "$PAYMENT_DB" "SELECT count(*) FROM charges WHERE saga_id IN ('ap-1','rj-1')")" 0

# approved over HTTP
"$SAGACTL" --url "$ADMIN_URL" signal ap-1 manager_approval '{"approver":"ann"}' >"$DIR/signal.out"
check "sagactl signal is accepted" grep -q "signal 'manager_approval' (success) accepted" "$DIR/signal.out"
check "ap-1 completed" wait_status ap-1 completed 60
check "ap-1: the approval's output reached the payment command" \
  eq "$(saga_sql "SELECT json_extract(output, '$.approver') FROM steps WHERE saga_id='ap-1' AND name='manager_approval'")" ann
check "ap-1: history" in_history ap-1 step.succeeded:reserve_inventory step.waiting:manager_approval \
  step.succeeded:manager_approval step.succeeded:charge_payment saga.completed
# rejected on Kafka
kafka_signal sig-rj-1 rj-1 manager_approval '"status":"failure","error":{"code":"REJECTED","message":"over budget"}'
check "rj-1 compensated" wait_status rj-1 compensated 60
check "rj-1: rejected, then the reservation and the order undone" in_history rj-1 \
  step.waiting:manager_approval step.failed:manager_approval saga.compensating \
  compensation.succeeded:reserve_inventory compensation.succeeded:create_order saga.compensated
check "rj-1: error REJECTED, no charge, order cancelled" \
  eq "$(saga_sql "SELECT error_code FROM sagas WHERE id='rj-1'")/$(sql "$PAYMENT_DB" "SELECT count(*) FROM charges WHERE saga_id='rj-1'")/$(sql "$ORDER_DB" "SELECT status FROM orders WHERE saga_id='rj-1'")" \
     "REJECTED/0/cancelled"
# no answer in time
check "to-1 compensated after its 3 s window" wait_status to-1 compensated 60
check "to-1: SIGNAL_TIMEOUT" eq "$(saga_sql "SELECT error_code FROM steps WHERE saga_id='to-1' AND name='manager_approval'")" SIGNAL_TIMEOUT
# the early signal
check "early-1 completed with the signal it got while scheduled" wait_status early-1 completed 60
check "early-1: signal.received before its step started, used when it did" in_history early-1 \
  signal.received:manager_approval saga.started step.succeeded:reserve_inventory step.waiting:manager_approval \
  step.succeeded:manager_approval saga.completed
check "early-1: its output" \
  eq "$(saga_sql "SELECT json_extract(output, '$.approver') FROM steps WHERE saga_id='early-1' AND name='manager_approval'")" early-bird

# duplicates and mistakes change nothing
before=$(saga_sql "SELECT group_concat(id || ':' || status || ':' || seq) FROM (SELECT * FROM sagas ORDER BY id)")
kafka_signal sig-rj-1 rj-1 manager_approval '"status":"success"'              # the same message id: dedup
kafka_signal sig-ap-1-again ap-1 manager_approval '"status":"success"'        # a second signal
kafka_signal sig-nope ap-1 no_such_signal '"status":"success"'               # a name it does not wait for
kafka_signal sig-ghost ghost-1 manager_approval '"status":"success"'         # no such saga
check "an approval for the completed saga over HTTP: 409" \
  eq "$(admin_post /v1/sagas/ap-1/signals/manager_approval '{"status":"success"}')/$(grep -c 'is completed' "$DIR/resp")" "409/1"
check "an unknown signal over HTTP: 404" eq "$(admin_post /v1/sagas/ap-1/signals/nope '{"status":"success"}')" 404
set +e; "$SAGACTL" --url "$ADMIN_URL" signal rj-1 manager_approval >"$DIR/sagactl.out" 2>&1; rc=$?; set -e
check "sagactl signal to a finished saga: exit 1, the API's reason" \
  eq "$rc/$(grep -c 'is compensated' "$DIR/sagactl.out")" "1/1"
sleep 2
kcat -b "$BOOTSTRAP" -C -X isolation.level=read_committed -t saga.dlq -o beginning -e -q -f '%h\n' >"$DIR/dlq.txt"
check "a second Kafka signal for a waiting step is dead-lettered: already received" \
  grep -q "signal 'manager_approval' of saga 'early-1' was already received" "$DIR/dlq.txt"
check "a Kafka signal for a finished saga is dead-lettered" grep -q "signal for saga 'ap-1' which is completed" "$DIR/dlq.txt"
check "the unknown name is dead-lettered" grep -q "waits for no signal 'no_such_signal'" "$DIR/dlq.txt"
check "the unknown saga is dead-lettered" grep -q "unknown saga 'ghost-1'" "$DIR/dlq.txt"
check "the duplicate message was dropped, not dead-lettered" eq "$(grep -c "sig-rj-1\|'rj-1'" "$DIR/dlq.txt" || true)" 0
check "no saga changed" eq "$(saga_sql "SELECT group_concat(id || ':' || status || ':' || seq) FROM (SELECT * FROM sagas ORDER BY id)")" "$before"
check "one charge per approved saga, none for the others" \
  eq "$(sql "$PAYMENT_DB" "SELECT group_concat(saga_id) FROM (SELECT saga_id FROM charges WHERE status='charged' ORDER BY saga_id)")" "ap-1,early-1"
check "sagactl audit passes" audit_passes
finish

#!/usr/bin/env bash
# Issue 15, operator commands in a cluster: they reach the instance owning
# the saga through Kafka (saga.control, same partitioning as the sagas), so
# they survive a failover. Two instances; the payment worker is paused so
# sagas wait at charge_payment. An abort sent to instance 1 for a saga
# instance 2 owns is redirected (307) to instance 2, accepted (202) and
# applied. Then instance 2 is killed with kill -9 and an abort for another
# of its sagas is handed to saga.control while it is down: the instance that
# takes the shard applies it, once.
. "$(dirname "$0")/lib.sh"
export SAGAD_INSTANCES=2
stack_up
token=$(cat "$SAGA_ADMIN_TOKEN_FILE")
read -r -a urls <<<"$ADMIN_URLS"
kill -STOP "$PAYMENT_WORKER_PID"
publish_starts held 16
check "the 16 sagas wait at charge_payment" \
  wait_count "SELECT count(*) FROM steps WHERE saga_id LIKE 'held-%' AND name='charge_payment' AND status='running'" 16 60
owned_by_2=()
for n in $(seq 16); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "${urls[1]}/v1/sagas/held-$n")" = 200 ] && owned_by_2+=("held-$n")
done
check "instance 2 owns some of them (${owned_by_2[*]})" test "${#owned_by_2[@]}" -ge 2
a=${owned_by_2[0]} b=${owned_by_2[1]}

# ---- through instance 1: 307 to the owner, 202 there, applied
check "instance 1 redirects the abort of $a (307)" \
  eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{}' "${urls[0]}/v1/sagas/$a/abort")" 307
check "sagactl abort $a through instance 1 is accepted" \
  "$BUILD_DIR/bin/sagactl" --url "${urls[0]}" abort "$a" "operator said so"
check "... and applied by its owner" wait_count "SELECT status FROM sagas WHERE id = '$a'" compensating 30

# ---- a command handed to Kafka while the owner is down
"$STACK" kill-sagad "$DIR" 2 >>"$DIR/stack-up.out" 2>&1 || fail "kill-sagad 2"
printf '%s\t%s\n' "$b" "{\"type\":\"saga.control\",\"message_id\":\"ctl-failover-1\",\"command\":\"abort\",\"saga_id\":\"$b\",\"reason\":\"failover\"}" \
  >"$DIR/control.txt"
kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.control -K $'\t' -l "$DIR/control.txt"
kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.control -K $'\t' -l "$DIR/control.txt" # once more: dedup
owning_all() { grep -q "owning $SAGA_PARTITIONS of $SAGA_PARTITIONS" "$DIR/sagad.log"; }
check "instance 1 takes instance 2's shards" bash -c "for _ in \$(seq 300); do grep -q 'owning $SAGA_PARTITIONS of $SAGA_PARTITIONS' '$DIR/sagad.log' && exit 0; sleep 0.1; done; exit 1"
SAGA_DBS=$SAGA_DB # instance 1 holds every shard now
check "the abort of $b, sent while its owner was down, is applied by instance 1" \
  wait_count "SELECT status || '/' || error_message FROM sagas WHERE id = '$b'" "compensating/failover" 60
kill -CONT "$PAYMENT_WORKER_PID"
check "both aborted sagas compensate" \
  wait_count "SELECT count(*) FROM sagas WHERE id IN ('$a', '$b') AND status = 'compensated' AND error_code = 'ABORTED'" 2 90
check "the other 14 complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'held-%' AND status = 'completed'" 14 90
check "the abort of $b was applied once (one saga.compensating in its history)" \
  eq "$(saga_sql "SELECT count(*) FROM history WHERE saga_id = '$b' AND event = 'saga.compensating'")" 1
echo "$CHECKS passed, 0 failed"

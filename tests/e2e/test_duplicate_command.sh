#!/usr/bin/env bash
# Duplicate delivery: copies of a finished saga's commands (and of its start
# event) are published again with kcat. The workers run nothing, re-send the
# stored replies (same message ids), and sagad's dedup drops them.
. "$(dirname "$0")/e2e_lib.sh"
e2e_env
stack_up
publish_saga dup-1 order_fulfillment c-2 sku-1 1234
check "dup-1 completed" wait_status dup-1 completed 60
seq_before=$(saga_sql "SELECT max(seq) FROM history WHERE saga_id='dup-1'")
balance_before=$(sql "$PAYMENT_DB" "SELECT balance FROM accounts WHERE customer='c-2'")

# the exact bytes sagad sent (key TAB value)
dump() { kcat -b "$BOOTSTRAP" -C -X isolation.level=read_committed -t "$1" -o beginning -e -q -f '%k\t%s\n' 2>/dev/null; }
dump payment.commands | grep -F '"message_id":"dup-1/charge_payment/action/1"' >"$DIR/dup-charge.txt"
dump order.commands | grep -F '"message_id":"dup-1/create_order/action/1"' >"$DIR/dup-order.txt"
check "found the charge command" eq "$(wc -l <"$DIR/dup-charge.txt")" 1
check "found the order command" eq "$(wc -l <"$DIR/dup-order.txt")" 1
for _ in 1 2; do
  kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t payment.commands -K $'\t' -l "$DIR/dup-charge.txt"
done
kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t order.commands -K $'\t' -l "$DIR/dup-order.txt"
publish_saga dup-1 order_fulfillment c-2 sku-1 1234 # the start again: same saga id

replies() { dump saga.replies | grep -cF "\"in_reply_to\":\"$1\"" || true; }
wait_replies() { # IN_REPLY_TO COUNT
  local start=$SECONDS
  while [ $((SECONDS - start)) -lt 30 ]; do [ "$(replies "$1")" -ge "$2" ] && return 0; sleep 0.3; done
  echo "  $(replies "$1") replies to $1, want $2" >&2; return 1
}
check "the payment worker answered both copies (3 replies in all)" wait_replies dup-1/charge_payment/action/1 3
check "the order worker answered the copy (2 replies)" wait_replies dup-1/create_order/action/1 2
check "the replies are identical (one message id)" \
  eq "$(dump saga.replies | grep -F '"in_reply_to":"dup-1/charge_payment/action/1"' | sed 's/.*"message_id":"\([^"]*\)".*/\1/' | sort -u | wc -l)" 1
sleep 1 # let sagad consume them
check "charged once" eq "$(sql "$PAYMENT_DB" "SELECT count(*) FROM charges WHERE saga_id='dup-1'")" 1
check "balance unchanged by the copies" eq "$(sql "$PAYMENT_DB" "SELECT balance FROM accounts WHERE customer='c-2'")" "$balance_before"
check "one order" eq "$(sql "$ORDER_DB" "SELECT count(*) FROM orders WHERE saga_id='dup-1'")" 1
check "one saga" eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id='dup-1'")" 1
check "the saga's history did not change" eq "$(saga_sql "SELECT max(seq) FROM history WHERE saga_id='dup-1'")" "$seq_before"
check "still completed" eq "$(status_of dup-1)" completed
check "sagactl audit passes" audit_passes
finish

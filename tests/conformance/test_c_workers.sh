#!/usr/bin/env bash
# The conformance kit (scripts/conformance) against the four C workers on the
# stack: every rule, the crash rule included (scripts/stack kill-one and
# start-one), the ledgers queried for how many times each action ran. The four
# kits run side by side (their own topics, ledgers and saga ids).
# shellcheck disable=SC1091
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../integration/lib.sh"
KIT="$SAGA_SOURCE_DIR/scripts/conformance"
"$SAGA_SOURCE_DIR/scripts/venv" >/dev/null || fail "no Python venv (scripts/venv)"
stack_up

# conform NAME ACTION COMPENSATION PAYLOAD APPLIED_SQL: the kit against NAME-worker, output in $DIR/kit-NAME.out
conform() {
  local name=$1 action=$2 comp=$3 payload=$4 sqlq=$5 db
  db=$(eval echo "\$${name^^}_DB")
  local args=(--bootstrap "$BOOTSTRAP" --topic "$name.commands" --action "$action" --payload "$payload"
              --applied-sql "$db" "$sqlq"
              --kill-cmd "'$STACK' kill-one $name-worker '$DIR'" --restart-cmd "'$STACK' start-one $name-worker '$DIR'")
  [ -z "$comp" ] || args+=(--compensation "$comp")
  echo "+ scripts/conformance ${args[*]}" >"$DIR/kit-$name.out"
  "$KIT" "${args[@]}" >>"$DIR/kit-$name.out" 2>&1
}

declare -A pids
conform order order.create order.cancel '{"order_id":"o-${saga_id}","items":[{"sku":"sku-1","qty":1}]}' \
  'SELECT count(*) FROM orders WHERE saga_id = ?' & pids[order]=$!
conform inventory inventory.reserve inventory.release '{"items":[{"sku":"sku-2","qty":1}]}' \
  'SELECT count(*) FROM reservations WHERE saga_id = ?' & pids[inventory]=$!
conform payment payment.charge payment.refund '{"customer":"c-1","amount":100}' \
  'SELECT count(*) FROM charges WHERE saga_id = ?' & pids[payment]=$!
conform notification notification.send "" '{"order_id":"o-${saga_id}","payment":"pay-1"}' \
  'SELECT count(*) FROM notifications WHERE saga_id = ?' & pids[notification]=$!
declare -A status
for name in order inventory payment notification; do
  status[$name]=0; wait "${pids[$name]}" || status[$name]=$?
  sed 's/^/  | /' "$DIR/kit-$name.out"
done
for name in order inventory payment notification; do
  check "$name-worker passes the conformance kit (exit status 0)" eq "${status[$name]}" 0
  check "$name-worker: the crash rule ran and passed" grep -q '^PASS crash:' "$DIR/kit-$name.out"
  check "$name-worker: maximum-length ids passed" grep -q '^PASS max_ids:' "$DIR/kit-$name.out"
done
check "order, inventory, payment: no rule skipped" eq "$(cat "$DIR"/kit-{order,inventory,payment}.out | grep -c '^SKIP')" 0
check "notification (no compensation): only its two compensation rules skipped" \
  eq "$(grep '^SKIP' "$DIR/kit-notification.out" | cut -d: -f1 | tr '\n' ' ')" "SKIP compensation_first SKIP late_action "
# what the kits did to stock and money adds up (docs/PARTICIPANTS.md, "Audit queries")
check "inventory: stock conserved" eq "$(sql "$INVENTORY_DB" "SELECT count(*) FROM stock s WHERE s.initial != s.available +
  COALESCE((SELECT SUM(qty) FROM reservations r WHERE r.sku = s.sku AND r.status = 'reserved'), 0)")" 0
check "payment: money conserved" eq "$(sql "$PAYMENT_DB" "SELECT count(*) FROM accounts a WHERE a.initial != a.balance +
  COALESCE((SELECT SUM(amount) FROM charges c WHERE c.customer = a.customer AND c.status = 'charged'), 0)")" 0
check "payment: the kit's charges are there (basic + crash: at least 40)" \
  test "$(sql "$PAYMENT_DB" "SELECT count(*) FROM charges WHERE saga_id LIKE 'cf-%'")" -ge 40
echo "$CHECKS passed, 0 failed"

#!/usr/bin/env bash
# Child sagas (issue 16): bundle runs two child sagas in parallel —
# bundle_order (create the order, then notify and reserve a gift in
# parallel) and bundle_payment (reserve, charge) — then charges a fee.
#  - bd-ok-N: the fee is paid: parent and children complete, the parent's
#    steps carry the children's outputs;
#  - bd-no-N: the fee is declined: the parent compensates, which compensates
#    both completed children (their steps in reverse), and ends compensated;
#  - sagad is killed (-9) in the middle of the run and started again: the
#    outcome is the same, every action once in effect, audit clean.
# With SAGAD_INSTANCES=3 parents and children live on different instances.
. "$(dirname "$0")/e2e_lib.sh"
N=${CHILD_BUNDLES:-10}
e2e_env
stack_up
publish_bundle() { # ID FEE_CUSTOMER
  printf '%s\t{"type":"saga.start","message_id":"m-%s","definition":"bundle","saga_id":"%s","input":{"order_id":"o-%s","customer":"c-1","fee_customer":"%s","amount":300,"items":[{"sku":"sku-1","qty":1}]}}\n' \
    "$1" "$1" "$1" "$1" "$2" | kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t'
}
for n in $(seq "$N"); do publish_bundle "bd-ok-$n" c-1; publish_bundle "bd-no-$n" c-broke; done
# kill -9 while the children run
wait_count "SELECT count(*) >= $N FROM sagas WHERE id LIKE 'bd-%.%'" 1 60 || true
kill -9 "$SAGAD_PID"
wait_exit sagad 10 || fail "sagad did not die"
echo "ok - sagad killed with $(saga_sql "SELECT count(*) FROM sagas WHERE status NOT IN ('completed','compensated')") saga(s) open"
"$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart of sagad"
reload_env

check "the $N paid bundles completed" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'bd-ok-%' AND id NOT LIKE '%.%' AND status='completed'" "$N" 120
check "the $N declined bundles compensated" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'bd-no-%' AND id NOT LIKE '%.%' AND status='compensated'" "$N" 120
check "each bundle had its two children, once" \
  eq "$(saga_sql "SELECT count(*) || '/' || count(DISTINCT id) FROM sagas WHERE id LIKE 'bd-%.order' OR id LIKE 'bd-%.payment'")" "$((4 * N))/$((4 * N))"
check "children of paid bundles completed" \
  eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'bd-ok-%.%' AND status='completed'")" "$((2 * N))"
check "children of declined bundles compensated after completing" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'bd-no-%.%' AND status='compensated' AND error_code='PARENT_COMPENSATING'" "$((2 * N))" 60
check "a child knows its parent" \
  eq "$(saga_sql "SELECT json_extract(parent, '$.saga_id') || '/' || json_extract(parent, '$.step') FROM sagas WHERE id='bd-ok-1.payment'")" "bd-ok-1/payment"
check "the parent's step carries the child's output" \
  eq "$(saga_sql "SELECT json_extract(output, '$.payment') IS NOT NULL FROM steps WHERE saga_id='bd-ok-1' AND name='payment'")" 1
check "a declined bundle: fee failed, its payment child compensated, then compensated" in_history bd-no-1 \
  step.failed:fee saga.compensating compensation.succeeded:payment saga.compensated
check "...and its order child" in_history bd-no-1 step.failed:fee compensation.started:order compensation.succeeded:order saga.compensated
check "its order child undid its steps in reverse" in_history bd-no-1.order \
  saga.completed saga.compensating compensation.succeeded:create_order saga.compensated
curl -sL "$ADMIN_URL/v1/sagas/bd-ok-1" >"$DIR/parent.json"
check "GET /v1/sagas/{id}: the parent lists its children" \
  eq "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(c["saga_id"] for c in d["children"]))' "$DIR/parent.json")" \
     "bd-ok-1.order bd-ok-1.payment"
curl -sL "$ADMIN_URL/v1/sagas/bd-ok-1.order" >"$DIR/child.json"
check "GET /v1/sagas/{id}: the child names its parent" \
  eq "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["parent"]["saga_id"], d["parent"]["step"])' "$DIR/child.json")" "bd-ok-1 order"
"$SAGACTL" --url "$ADMIN_URL" show bd-ok-1 >"$DIR/show-parent.txt"
check "sagactl show: the parent's children" grep -q '^Children *bd-ok-1.order (step order)$' "$DIR/show-parent.txt"
"$SAGACTL" --url "$ADMIN_URL" show bd-ok-1.payment >"$DIR/show-child.txt"
check "sagactl show: the child's parent" grep -q '^Parent *bd-ok-1 (step payment)$' "$DIR/show-child.txt"
check "ledgers: one order per bundle, the declined ones cancelled" \
  eq "$(sql "$ORDER_DB" "SELECT sum(saga_id LIKE 'bd-ok-%' AND status='created') || '/' || sum(saga_id LIKE 'bd-no-%' AND status='cancelled') FROM orders WHERE saga_id LIKE 'bd-%'")" "$N/$N"
check "ledgers: the paid bundles charged once each (and their fee), the declined ones refunded" \
  eq "$(sql "$PAYMENT_DB" "SELECT sum(saga_id LIKE 'bd-ok-%.payment' AND status='charged') || '/' || sum(saga_id LIKE 'bd-no-%.payment' AND status='refunded') || '/' || sum(saga_id LIKE 'bd-ok-%' AND saga_id NOT LIKE '%.%' AND status='charged') FROM charges WHERE saga_id LIKE 'bd-%'")" "$N/$N/$N"
check "ledgers: stock conserved" \
  eq "$(sql "$INVENTORY_DB" "SELECT (SELECT sum(initial - available) FROM stock) = (SELECT coalesce(sum(qty), 0) FROM reservations WHERE status='reserved')")" 1
check "every saga's history is gap-free" history_gap_free
check "sagactl audit passes" audit_passes
finish

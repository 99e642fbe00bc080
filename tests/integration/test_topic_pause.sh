#!/usr/bin/env bash
# Topic pause (issue 16): an operator pauses payment.commands (sagactl
# pause); 20 order sagas run up to their payment and wait there, queued, no
# charge made, while the other topics go on; the pause shows in /v1/stats,
# /metrics and sagactl stats, and survives a kill -9 of sagad; after sagactl
# resume every saga completes, each action once, and the audit is clean.
. "$(dirname "$0")/../e2e/e2e_lib.sh"
N=20
stack_up
"$SAGACTL" --url "$ADMIN_URL" pause payment.commands provider maintenance >"$DIR/pause.out"
check "sagactl pause is accepted" grep -q "payment.commands: paused" "$DIR/pause.out"
check "every shard records the pause" \
  wait_count "SELECT count(*) FROM (SELECT 1 FROM paused_topics)" "$(ls "$SAGA_DB"/shard-*.db | wc -l)" 20
publish_starts pz "$N"
check "the $N sagas reach their payment and wait there, queued" \
  wait_count "SELECT count(*) FROM steps WHERE saga_id LIKE 'pz-%' AND name='charge_payment' AND status='queued'" "$N" 60
sleep 1
check "no payment command went out: nothing charged" eq "$(sql "$PAYMENT_DB" "SELECT count(*) FROM charges")" 0
check "the other steps ran: orders created, items reserved" \
  eq "$(sql "$ORDER_DB" "SELECT count(*) FROM orders WHERE saga_id LIKE 'pz-%'")/$(sql "$INVENTORY_DB" "SELECT count(*) FROM reservations WHERE saga_id LIKE 'pz-%'")" "$N/$N"
check "/v1/stats lists the paused topic with its reason" \
  eq "$(curl -s "$ADMIN_URL/v1/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["paused_topics"]["payment.commands"]["reason"])')" "provider maintenance"
for _ in $(seq 20); do curl -s "$ADMIN_URL/metrics" >"$DIR/metrics.txt"; grep -q '^sagad_topic_paused{topic="payment.commands"} 1$' "$DIR/metrics.txt" && break; sleep 0.5; done
check "/metrics: sagad_topic_paused{topic=\"payment.commands\"} 1" grep -q '^sagad_topic_paused{topic="payment.commands"} 1$' "$DIR/metrics.txt"
"$SAGACTL" --url "$ADMIN_URL" stats >"$DIR/stats.txt"
check "sagactl stats prints it" grep -q "payment.commands  since .*: provider maintenance" "$DIR/stats.txt"

# the pause is durable: sagad killed and started again still holds the payments
kill -9 "$SAGAD_PID"
wait_exit sagad 10 || fail "sagad did not die"
"$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart of sagad"
reload_env
sleep 2
check "after a restart: still paused, nothing charged" \
  eq "$(curl -s "$ADMIN_URL/metrics" | grep -c '^sagad_topic_paused{topic="payment.commands"} 1$')/$(sql "$PAYMENT_DB" "SELECT count(*) FROM charges")" "1/0"
check "the sagas still wait" \
  eq "$(saga_sql "SELECT count(*) FROM steps WHERE saga_id LIKE 'pz-%' AND name='charge_payment' AND status='queued'")" "$N"

"$SAGACTL" --url "$ADMIN_URL" resume payment.commands >"$DIR/resume.out"
check "sagactl resume is accepted" grep -q "payment.commands: resumed" "$DIR/resume.out"
check "all $N complete once resumed" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'pz-%' AND status='completed'" "$N" 60
check "no shard holds the pause any more" eq "$(saga_sql "SELECT count(*) FROM paused_topics")" 0
check "/v1/stats lists no paused topic" \
  eq "$(curl -s "$ADMIN_URL/v1/stats" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["paused_topics"]))')" 0
exactly_once pz "$N" 1000
check "sagactl audit passes" audit_passes
finish

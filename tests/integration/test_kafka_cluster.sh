#!/usr/bin/env bash
# KAFKA=real KAFKA_BROKERS=3 scripts/stack up: a three-node Apache Kafka
# (KRaft, every node broker and controller) on loopback, every topic on 3
# replicas with min.insync.replicas 2; stack.env names each node's pid.
# One broker (KILL_NODE, else 1 to 3 by the clock: over runs each node,
# coordinators and the controller among them, gets its turn) is killed with
# -9 while sagas run and started again 5 s later (scripts/kafka kill/start
# DIR K): every saga completes once and the audit passes. Three sagad
# instances share the partitions (SAGAD_INSTANCES, 3 by default): the group
# coordinator, the transaction coordinator or a partition leader each of
# them uses may be the node that goes. Apache Kafka only
# (it_kafka_cluster_real).
. "$(dirname "$0")/lib.sh"
export KAFKA=real KAFKA_BROKERS=3 SAGAD_INSTANCES=${SAGAD_INSTANCES:-3}
KAFKA_CTL="$SAGA_SOURCE_DIR/scripts/kafka"
KCAT=(kcat -X broker.address.family=v4 -m 10)
stack_up
check "stack.env says three nodes" eq "${KAFKA_BROKERS:-}" 3
for k in 1 2 3; do
  v=KAFKA_${k}_PID
  check "node $k runs (pid ${!v:-none})" kill -0 "${!v:-0}"
done
check "KAFKA_PID is node 1's" eq "${KAFKA_PID:-}" "${KAFKA_1_PID:-}"
check "the bootstrap names the three nodes" eq "$(tr ',' '\n' <<<"$BOOTSTRAP" | wc -l)" 3
check "the metadata shows three brokers" grep -q '^ 3 brokers:' <<<"$("${KCAT[@]}" -b "$BOOTSTRAP" -L)"
replicated() { # TOPIC: every partition on 3 replicas, all in sync
  local meta all full
  meta=$("${KCAT[@]}" -b "$BOOTSTRAP" -L -t "$1")
  all=$(grep -c ' partition [0-9]*,' <<<"$meta")
  full=$(grep -cE 'replicas: [0-9]+,[0-9]+,[0-9]+, isrs: [0-9]+,[0-9]+,[0-9]+$' <<<"$meta")
  [ "$all" -gt 0 ] && [ "$all" = "$full" ] || { echo "  $1: $full of $all partitions on 3 in-sync replicas" >&2; return 1; }
}
for t in saga.start saga.replies saga.changelog saga.events order.commands; do
  check "$t: every partition on 3 in-sync replicas" replicated "$t"
done
check "min.insync.replicas is 2 on every node" \
  eq "$(cat "$DIR"/kafka-[123]/server.properties | grep -cx 'min.insync.replicas=2')" 3

[ "$SAGAD_INSTANCES" = 1 ] ||
  check "the $SAGA_PARTITIONS shards are shared by the $SAGAD_INSTANCES sagad instances" wait_cluster_owned "$SAGAD_INSTANCES"
publish_starts kc 300
wait_count "SELECT count(*) >= 60 FROM steps WHERE saga_id LIKE 'kc-%' AND status='succeeded'" 1 120 || true
K=${KILL_NODE:-$(($(date +%s) % 3 + 1))}
check "node $K is killed with -9" "$KAFKA_CTL" kill "$DIR" "$K"
check "node $K is down" eval '! "$KAFKA_CTL" status "$DIR" "$K" >/dev/null'
open=$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'kc-%' AND status != 'completed'")
check "sagas are in flight when it goes ($open of 300 not completed)" test "$open" -gt 0
sleep 5
check "node $K starts again on its ports and data" "$KAFKA_CTL" start "$DIR" "$K"
check "all 300 sagas complete" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'kc-%' AND status='completed'" 300 180
exactly_once kc 300 1000
audit() { # every instance's data directory (SAGA_DBS, from stack.env)
  "$BUILD_DIR/bin/sagactl" audit --order-db "$ORDER_DB" --inventory-db "$INVENTORY_DB" \
    --payment-db "$PAYMENT_DB" --notification-db "$NOTIFICATION_DB" >"$DIR/audit.out" 2>&1 ||
    { sed 's/^/  | /' "$DIR/audit.out"; return 1; }
}
check "sagactl audit passes" audit
sagads=(sagad); for ((k = 2; k <= SAGAD_INSTANCES; k++)); do sagads+=("sagad-$k"); done
for p in "${sagads[@]}" order-worker inventory-worker payment-worker notification-worker; do
  check "$p ran through the broker's loss" kill -0 "$(cat "$DIR/$p.pid")"
done
echo "$CHECKS passed, 0 failed"

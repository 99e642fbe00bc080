#!/usr/bin/env bash
# Issue 15, failover under chaos (short form): three sagad instances share
# the partitions of one consumer group (SAGAD_INSTANCES=3). While waves of
# sagas with business failures mixed in run, a random instance is killed
# with kill -9 every few seconds — every other time its data directory is
# deleted too — and started again a few seconds later. Every saga must end
# in the status its input determines, no participant may apply an action or
# compensation twice, saga.events must show no step attempt acted on by two
# owners, the audit over the three data directories (each shard
# from its newest copy) must be clean, and the shards must have moved.
# On Apache Kafka (the _real twin) on three brokers. WAVES, PER, KILL_EVERY,
# DOWN_FOR and CHAOS_SEED make the long form (docs/BENCHMARKS.md).
. "$(dirname "$0")/lib.sh"
WAVES=${WAVES:-6}
PER=${PER:-100}              # sagas per wave: 80% complete, 10% out of stock, 10% declined
KILL_EVERY=${KILL_EVERY:-6}  # seconds between kills
DOWN_FOR=${DOWN_FOR:-3}      # seconds an instance stays down
CHAOS_SEED=${CHAOS_SEED:-$RANDOM}
echo "# seed $CHAOS_SEED (CHAOS_SEED=$CHAOS_SEED to repeat)"
RANDOM=$CHAOS_SEED
export SAGAD_INSTANCES=3
# On Apache Kafka: three brokers, replication factor 3 (scripts/kafka).
[ "${KAFKA:-}" != real ] || export KAFKA_BROKERS=${KAFKA_BROKERS:-3}
stack_up
read -r -a dirs <<<"$SAGA_DBS"
check "three data directories in SAGA_DBS" eq "${#dirs[@]}" 3
check "the $SAGA_PARTITIONS shards are shared by the three instances" wait_cluster_owned 3
o=$(cluster_owned)
check "... each owns some ($o)" test "$(tr ' ' '\n' <<<"$o" | grep -c '^0$' || true)" = 0

kills=0 wiped=0
for wave in $(seq 1 "$WAVES"); do
  publish_starts "ok$wave" $((PER * 8 / 10))
  publish_starts "oos$wave" $((PER / 10)) c-2 sku-empty
  publish_starts "dec$wave" $((PER / 10)) c-broke sku-2
  sleep "$((KILL_EVERY - DOWN_FOR)).$((RANDOM % 10))"
  k=$((RANDOM % 3 + 1))
  "$STACK" kill-sagad "$DIR" "$k" >>"$DIR/stack-up.out" 2>&1 || fail "kill-sagad $k"
  kills=$((kills + 1))
  if ((wave % 2 == 0)); then
    rm -rf "${dirs[k - 1]}"
    wiped=$((wiped + 1))
  fi
  sleep "$DOWN_FOR"
  "$STACK" restart-sagad "$DIR" "$k" >>"$DIR/stack-up.out" 2>&1 || fail "restart of instance $k"
  reload_env
done
echo "ok - $kills kills, $wiped with the data directory deleted"
TOTAL=$((WAVES * PER))
mixed_outcomes "$TOTAL" $((TOTAL / 20 > 300 ? TOTAL / 20 : 300)) # the long form needs longer to end
# beyond mixed_outcomes: the orders and the compensations the participants applied
check "one order per saga, cancelled exactly for the compensated ones" \
  eq "$(sql "$ORDER_DB" "SELECT sum(status='created') || '/' || sum(status='cancelled') FROM orders")" "$((TOTAL * 8 / 10))/$((TOTAL / 5))"
check "no compensation applied twice (one processed row per key)" \
  eq "$(sql "$INVENTORY_DB" "SELECT count(*) FROM processed WHERE kind='compensation'")" "$((TOTAL / 10))"
n=$(one_actor_per_attempt)
check "saga.events: no step attempt acted on by two owners ($n events)" bash -c "[[ '$n' =~ ^[0-9]+$ ]] && [ $n -ge $((TOTAL * 8)) ]"
check "every shard owned again after the last restart" wait_cluster_owned 3
moved=$(cat "$DIR"/sagad*.log | grep -c 'owning [0-9]* of' || true)
check "shards moved between instances ($moved ownership changes logged)" test "$moved" -gt 6
check "the audit over the three data directories is clean" \
  "$BUILD_DIR/bin/sagactl" audit --order-db "$ORDER_DB" --inventory-db "$INVENTORY_DB" --payment-db "$PAYMENT_DB" --notification-db "$NOTIFICATION_DB"

# ---- one cluster for operators: any instance answers for any saga
read -r -a urls <<<"$ADMIN_URLS"
token=$(cat "$SAGA_ADMIN_TOKEN_FILE")
for id in ok1-1 ok3-7 dec2-5 oos4-9 "ok$WAVES-80"; do
  want=$(saga_sql "SELECT status FROM sagas WHERE id = '$id'")
  codes=""
  for u in "${urls[@]}"; do
    codes+="$(curl -s -o /dev/null -w '%{http_code}' "$u/v1/sagas/$id") "
    got=$(curl -sL "$u/v1/sagas/$id" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("status"))')
    check "GET /v1/sagas/$id on $u says $want (its owner answers, the others send there)" eq "$got" "$want"
    check "... and sagactl show against $u" bash -c "'$BUILD_DIR/bin/sagactl' --url '$u' show '$id' | grep -q '$want'"
  done
  check "... one instance answers 200, the two others 307 ($codes)" eq "$(tr ' ' '\n' <<<"$codes" | sort | tr '\n' ' ')" " 200 307 307 "
  code=$(curl -s -o /dev/null -w '%{http_code}' --location-trusted -X POST -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d '{"reason": "test"}' "${urls[0]}/v1/sagas/$id/abort")
  check "POST abort of the finished saga $id through instance 1 reaches its owner: 409" eq "$code" 409
done
stats_total() { # URL: "total completed" of its GET /v1/stats, "" while it answers 503
  curl -sf "$1/v1/stats" | python3 -c 'import json, sys; s = json.load(sys.stdin)["sagas"]; print(s["total"], s["by_status"]["completed"])' 2>/dev/null || true
}
for u in "${urls[@]}"; do
  for _ in $(seq 100); do # an instance's registry may learn of a new owner a moment late: 503 meanwhile
    got=$(stats_total "$u")
    [ -n "$got" ] && break
    sleep 0.1
  done
  check "GET /v1/stats on $u counts every shard ($got)" eq "$got" "$TOTAL $((TOTAL * 8 / 10))"
done
"$BUILD_DIR/bin/sagactl" --url "${urls[1]}" stats >"$DIR/stats.txt"
check "sagactl stats shows the cluster: three instances and their shards" \
  eq "$(sed -n '/^Cluster/,/^$/p' "$DIR/stats.txt" | grep -c 'http://')" 3
sed -n '/^Cluster/,/^$/p' "$DIR/stats.txt" | sed 's/^/  | /'
echo "$CHECKS passed, 0 failed"

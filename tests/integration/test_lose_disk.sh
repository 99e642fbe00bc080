#!/usr/bin/env bash
# Issue 14 item 3, end to end: sagad loses its whole data directory (kill -9
# mid-run, `rm -rf $SAGA_DB`) and restarts; its shards come back from
# saga.changelog, which sagad itself produces (the relay's changelog rows,
# in the relay's Kafka transactions). 1,000 mixed sagas (80% complete, 10% out of stock, 10%
# declined, as sagas/examples): every saga ends in the status its input
# determines, each participant applied each action at most once in effect,
# `sagactl audit` passes, and GET of the sagas finished before the loss
# answers the same after it. LOSSES (default 1) losses in one run; the
# variant it_lose_disk_thrice runs LOSSES=3.
. "$(dirname "$0")/lib.sh"
LOSSES=${LOSSES:-1}
PER=$((1000 / LOSSES / 10 * 10)) # a multiple of 10: 80/10/10 of it are whole
stack_up
get() { curl -s -H "Authorization: Bearer $(cat "$SAGA_ADMIN_TOKEN_FILE")" "$ADMIN_URL$1" | jq -S .; }
mkdir -p "$DIR/before"
total=0
for loss in $(seq 1 "$LOSSES"); do
  publish_starts "ok$loss" $((PER * 8 / 10))
  publish_starts "oos$loss" $((PER / 10)) c-2 sku-empty
  publish_starts "dec$loss" $((PER / 10)) c-broke sku-2
  total=$((total + PER))
  # some sagas finished, others in flight
  wait_count "SELECT count(*) >= $((total - PER + 50)) FROM sagas WHERE status IN ('completed','compensated')" 1 120 ||
    fail "sagas do not finish before loss $loss"
  for id in $(saga_sql "SELECT id FROM sagas WHERE status IN ('completed','compensated') ORDER BY random() LIMIT 10"); do
    get "/v1/sagas/$id" >"$DIR/before/$id.json"
  done
  kill -9 "$SAGAD_PID"
  wait_exit sagad 10 || fail "sagad did not die"
  open=$(saga_sql "SELECT count(*) FROM sagas WHERE status NOT IN ('completed','compensated','compensation_failed')")
  echo "ok - loss $loss: sagad killed with $open saga(s) in flight; deleting $SAGA_DB"
  rm -rf "$SAGA_DB"
  "$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart-sagad after loss $loss"
  reload_env
  check "loss $loss: every shard was restored" eq "$(ls "$SAGA_DB"/shard-*.db | wc -l)" "$SAGA_PARTITIONS"
done
TOTAL=$((LOSSES * PER))
mixed_outcomes "$TOTAL"
audit() {
  "$BUILD_DIR/bin/sagactl" audit --saga-db "$SAGA_DB" --order-db "$ORDER_DB" --inventory-db "$INVENTORY_DB" \
    --payment-db "$PAYMENT_DB" --notification-db "$NOTIFICATION_DB" >"$DIR/audit.out" 2>&1 ||
    { sed 's/^/  | /' "$DIR/audit.out"; return 1; }
}
check "sagactl audit passes" audit
same=0
for f in "$DIR"/before/*.json; do
  id=$(basename "$f" .json)
  diff -q "$f" <(get "/v1/sagas/$id") >/dev/null || { echo "  GET /v1/sagas/$id differs after the loss" >&2; diff "$f" <(get "/v1/sagas/$id") | head -20 >&2; exit 1; }
  same=$((same + 1))
done
check "GET of the $same sagas finished before a loss answers the same" test "$same" -gt 0
echo "$CHECKS checks passed"

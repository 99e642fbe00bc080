#!/usr/bin/env bash
# Bulk retry after an outage, and bulk abort (POST /v1/sagas/retry, /abort):
# the order service's cancel keeps failing (ORDER_WORKER_TEST_TRIGGERS=1: a
# cancel of an o-stuck* order is a transient failure) so 500 sagas park in
# compensation_failed, beside 10 of another definition that park too and 20
# that complete. `sagactl retry --dry-run` counts the 500; the worker is
# restarted without the trigger ("the participant recovers"); one bulk retry
# selected by definition compensates all 500 and nothing else changes. The
# loop's longest iteration meanwhile is read from /metrics. Then 5 delayed
# starts (scheduled) are aborted with `sagactl abort --status scheduled`,
# and 30 sagas held at their payment with `sagactl abort --status running`.
# With SAGAD_INSTANCES=3 (it_bulk_retry_cluster) the same on a cluster: the
# first instance is asked, the loop figures are its own.
. "$(dirname "$0")/lib.sh"
N=500
mkdir -p "$DIR/sagas"
cp "$SAGA_SOURCE_DIR"/sagas/*.json "$SAGA_SOURCE_DIR/tests/e2e/sagas/order_short_compensation.json" "$DIR/sagas/"
sed 's/"name": "order_short_compensation"/"name": "order_short_compensation_b"/' \
  "$SAGA_SOURCE_DIR/tests/e2e/sagas/order_short_compensation.json" >"$DIR/sagas/order_short_compensation_b.json"
# 500 compensations retried 3 times each would open order.commands' circuit
# (50 consecutive retries by default): this test is about the bulk retry.
export SAGAS_DIR="$DIR/sagas" ORDER_WORKER_TEST_TRIGGERS=1 SAGAD_ARGS="--breaker-failures 0"
stack_up
if [ "${SAGAD_INSTANCES:-1}" -gt 1 ]; then
  check "$SAGAD_INSTANCES instances own the shards between them" wait_cluster_owned "$SAGAD_INSTANCES"
fi
ctl() { "$BUILD_DIR/bin/sagactl" --url "$ADMIN_URL" "$@"; }

# starts PREFIX COUNT DEFINITION CUSTOMER ORDER_PREFIX [DELAY]
starts() {
  python3 - "$@" >"$DIR/starts-$1.txt" <<'PY'
import json, sys
prefix, count, definition, customer, order = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
for n in range(1, count + 1):
    sid = f"{prefix}-{n}"
    ev = {"type": "saga.start", "message_id": f"m-{sid}", "definition": definition, "saga_id": sid,
          "input": {"order_id": f"{order}-{sid}", "customer": customer, "amount": 900, "items": [{"sku": "sku-1", "qty": 1}]}}
    if len(sys.argv) > 6:
        ev["delay"] = sys.argv[6]
    print(f"{sid}\t{json.dumps(ev, separators=(',', ':'))}")
PY
  kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t' -X linger.ms=5 -l "$DIR/starts-$1.txt"
}
starts b $N order_short_compensation c-broke o-stuck
starts x 10 order_short_compensation_b c-broke o-stuck
starts ok 20 order_fulfillment c-1 o
check "$N + 10 sagas park in compensation_failed, 20 complete" wait_count \
  "SELECT sum(id LIKE 'b-%' AND status='compensation_failed') || '/' || sum(id LIKE 'x-%' AND status='compensation_failed') || '/' || sum(id LIKE 'ok-%' AND status='completed') FROM sagas" \
  "$N/10/20" 60
before=$(saga_sql "SELECT id || ':' || status || ':' || updated_at FROM sagas WHERE id NOT LIKE 'b-%' ORDER BY id")

# the dry run, through sagactl
d0=$(date +%s.%N)
dry=$(ctl --json retry --status compensation_failed --definition order_short_compensation --dry-run)
d1=$(date +%s.%N)
check "the dry run matches the $N sagas" eq "$(jq -r '.matched' <<<"$dry")" $N
check "and names 20 of them first" eq "$(jq -r '[.first_ids[] | select(startswith("b-"))] | length' <<<"$dry")" 20
check "more: false" eq "$(jq -r '.more' <<<"$dry")" false
check "a dry run changes nothing" eq "$(saga_sql "SELECT count(*) FROM sagas WHERE status='compensation_failed'")" $((N + 10))
check "max caps the count and says more matched" \
  eq "$(ctl --json retry --definition order_short_compensation --max 100 --dry-run | jq -r '"\(.matched)/\(.more)"')" "100/true"
check "retry of running sagas is refused (400)" \
  eq "$(admin_post /v1/sagas/retry '{"status":"running"}')/$(jq -r .error.parameter "$DIR/resp")" 400/status

# the participant recovers: restarted without the trigger
kill -TERM "$ORDER_WORKER_PID"
check "order worker stopped" wait_exit order-worker 30
ORDER_WORKER_TEST_TRIGGERS="" "$STACK" start-one order-worker "$DIR" >"$DIR/start-one.out" 2>&1 ||
  { cat "$DIR/start-one.out" >&2; fail "start-one order-worker"; }
reload_env

# iterations of the loop before the retry: the longest during it comes from the difference
iterations() { curl -s "$ADMIN_URL/metrics" | awk '/^sagad_iteration_duration_seconds_(bucket|count)/ { print $1, $2 }'; }
iterations >"$DIR/iter-before"
t0=$(date +%s.%N)
code=$(admin_post /v1/sagas/retry '{"definition":"order_short_compensation","reason":"order service is back"}')
t1=$(date +%s.%N)
check "the bulk retry is accepted (202)" eq "$code" 202
check "it queued the $N" eq "$(jq -r '"\(.matched)/\(.queued)/\(.dry_run)"' "$DIR/resp")" "$N/$N/false"
check "all $N end compensated" wait_count \
  "SELECT count(*) FROM sagas WHERE id LIKE 'b-%' AND status='compensated'" $N 60
t2=$(date +%s.%N)
sleep 1 # sagad publishes its figures for /metrics every 0.5 s
iterations >"$DIR/iter-after"
check "each was retried once" \
  eq "$(saga_sql "SELECT count(*) FROM history WHERE saga_id LIKE 'b-%' AND event='saga.retried'")" $N
check "every order cancelled, once" \
  eq "$(sql "$ORDER_DB" "SELECT count(*) || '/' || sum(status='cancelled') FROM orders WHERE saga_id LIKE 'b-%'")" "$N/$N"
check "nothing else changed" eq "$(saga_sql "SELECT id || ':' || status || ':' || updated_at FROM sagas WHERE id NOT LIKE 'b-%' ORDER BY id")" "$before"
check "GET /v1/stats agrees" eq "$(curl -s "$ADMIN_URL/v1/stats" | jq -r '.sagas.by_definition.order_short_compensation.by_status | "\(.compensated)/\(.compensation_failed)"')" "$N/0"
longest=$(python3 - "$DIR/iter-before" "$DIR/iter-after" <<'PY'
import re, sys
def read(path):
    b, n = {}, 0
    for line in open(path):
        name, v = line.split()
        m = re.search(r'le="([^"]+)"', name)
        if m: b[m.group(1)] = int(v)
        else: n = int(v)
    return b, n
(b0, n0), (b1, n1) = read(sys.argv[1]), read(sys.argv[2])
# the smallest bound every iteration of the window fits under
le = next((k for k in b1 if b1[k] - b0.get(k, 0) == n1 - n0), "+Inf")
le0 = next((k for k in b0 if b0[k] == n0), "+Inf")
print(f"{n1 - n0} iterations, the longest <= {le} s (before, while the 530 sagas ran: {n0} iterations, the longest <= {le0} s)")
PY
)
printf 'bulk retry of %d: dry run (sagactl) %.2f s, answered in %.2f s, all compensated %.2f s after the request; loop: %s\n' \
  $N "$(echo "$d1 - $d0" | bc)" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t0" | bc)" "$longest"

# bulk abort of running sagas, through sagactl; 5 delayed starts wait as scheduled
kill -STOP "$PAYMENT_WORKER_PID"
it_on_exit 'kill -CONT $PAYMENT_WORKER_PID'
starts run 30 order_fulfillment c-1 o
starts later 5 order_fulfillment c-1 o 1h
check "30 sagas wait at their payment" wait_count \
  "SELECT count(*) FROM steps WHERE saga_id LIKE 'run-%' AND name='charge_payment' AND status='running'" 30 30
check "5 sagas are scheduled" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'later-%' AND status='scheduled'" 5 30
out=$(ctl abort --status running,scheduled --definition order_fulfillment --dry-run)
check "sagactl abort --dry-run counts running and scheduled ones" grep -q "dry run: 35 saga(s) match" <<<"$out"
out=$(ctl abort --status scheduled --reason "not needed")
check "sagactl abort --status scheduled queues the 5" grep -q "abort: 5 of 5 saga(s) queued" <<<"$out"
check "they end compensated, aborted, no step run" wait_count \
  "SELECT count(*) FROM sagas WHERE id LIKE 'later-%' AND status='compensated' AND error_code='ABORTED' AND error_message='not needed' AND NOT EXISTS (SELECT 1 FROM steps WHERE steps.saga_id = sagas.id AND steps.status != 'cancelled')" 5 30
out=$(ctl abort --status running --definition order_fulfillment --dry-run)
check "sagactl abort --dry-run counts the running ones" grep -q "dry run: 30 saga(s) match" <<<"$out"
out=$(ctl abort --status running --definition order_fulfillment --reason "bulk abort test")
check "sagactl abort queues the 30" grep -q "abort: 30 of 30 saga(s) queued" <<<"$out"
kill -CONT "$PAYMENT_WORKER_PID"
check "the 30 compensate, aborted with the reason" wait_count \
  "SELECT count(*) FROM sagas WHERE id LIKE 'run-%' AND status='compensated' AND error_code='ABORTED' AND error_message='bulk abort test'" 30 60
check "the completed and parked ones were left alone" \
  eq "$(saga_sql "SELECT sum(id LIKE 'ok-%' AND status='completed') || '/' || sum(id LIKE 'x-%' AND status='compensation_failed') FROM sagas")" "20/10"
echo "$CHECKS passed, 0 failed"

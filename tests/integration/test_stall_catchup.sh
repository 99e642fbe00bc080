#!/usr/bin/env bash
# Issue 13 item 8: after a stall, the replies already in Kafka win over
# their timeouts. Under load, sagad is stopped (SIGSTOP) for longer than
# the step timeout (STALL_S, 15 s, vs a 5 s step timeout; the consumer's
# 6 s session expires too, so the wake-up also brings a rebalance) while
# the workers go on answering the commands they already had. While it is
# stopped, the test notes the steps whose reply waits in saga.replies and
# whose timer is overdue. After SIGCONT none of those steps may time out
# (no STEP_TIMEOUT, no step.retry_scheduled in their history), every saga
# completes and sagactl audit is clean.
. "$(dirname "$0")/lib.sh"
N=${N:-2000}
STALL_S=${STALL_S:-15}
STEP_TIMEOUT=${STEP_TIMEOUT:-5s}
mkdir -p "$DIR/sagas"
sed 's/"defaults": {"timeout": "10s"/"defaults": {"timeout": "'"$STEP_TIMEOUT"'"/' "$SAGA_SOURCE_DIR/sagas/order_fulfillment.json" \
  >"$DIR/sagas/order_fulfillment.json"
grep -q "\"timeout\": \"$STEP_TIMEOUT\"" "$DIR/sagas/order_fulfillment.json" || fail "could not shorten the step timeout"
export SAGAS_DIR="$DIR/sagas"
stack_up
publish_starts stall "$N"
wait_count "SELECT count(*) >= $((N / 5)) FROM sagas WHERE id LIKE 'stall-%' AND status='completed'" 1 120 ||
  fail "the load did not get going"
kill -STOP "$SAGAD_PID"
stopped_at=$(date +%s%3N)
echo "ok - sagad stopped (SIGSTOP) with $(saga_sql "SELECT count(*) FROM sagas WHERE status='running'") saga(s) running"
sleep "$STALL_S"
# What waits in Kafka: every reply on saga.replies (sagad is stopped, its
# database holds the state of the stop; SQLite readers do not need it).
kcat -b "$BOOTSTRAP" -C -X isolation.level=read_committed -t saga.replies -o beginning -e -q -f '%s\n' >"$DIR/replies.jsonl" 2>"$DIR/kcat.err" ||
  fail "cannot read saga.replies: $(cat "$DIR/kcat.err")"
python3 - "$DIR/replies.jsonl" >"$DIR/replies.csv" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("kind") == "action":
        print(f'{r["saga_id"]},{r["step"]},{r["attempt"]}')
PY
woke_at=$(date +%s%3N)
sqlite3 -batch -cmd "$(shard_prelude "$SAGA_DB")" "$DIR/waiting.db" <<SQL
CREATE TABLE replies (saga_id TEXT, step TEXT, attempt INTEGER);
.mode csv
.import $DIR/replies.csv replies
CREATE TABLE waiting AS
  SELECT st.saga_id, st.name AS step, st.attempt,
         (SELECT count(*) FROM timers t WHERE t.saga_id = st.saga_id AND t.slot = st.idx AND t.due_at < $woke_at) AS overdue
  FROM steps st JOIN replies r ON r.saga_id = st.saga_id AND r.step = st.name AND r.attempt = st.attempt
  WHERE st.status = 'running';
SQL
waiting=$(sql "$DIR/waiting.db" "SELECT count(*) FROM waiting")
overdue=$(sql "$DIR/waiting.db" "SELECT count(*) FROM waiting WHERE overdue > 0")
echo "ok - during the stop: $waiting running step(s) have their reply waiting in saga.replies, $overdue of them with an overdue timer"
check "the stall left replies waiting behind overdue timers (the case under test)" test "$overdue" -gt 0
kill -CONT "$SAGAD_PID"
echo "ok - SIGCONT after $(((woke_at - stopped_at) / 1000)) s"
check "all $N sagas complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'stall-%' AND status='completed'" "$N" 240
timed_out=$(sqlite3 -batch -cmd "$(shard_prelude "$SAGA_DB")" "$DIR/waiting.db" "SELECT count(DISTINCT w.saga_id || '/' || w.step) FROM waiting w JOIN history h ON h.saga_id = w.saga_id AND h.step = w.step WHERE h.event = 'step.retry_scheduled' OR h.detail LIKE '%STEP_TIMEOUT%'")
check "no step whose reply waited in Kafka timed out or was retried ($timed_out of $waiting did)" eq "$timed_out" 0
echo "  (all step timeouts in the run: $(saga_sql "SELECT count(*) FROM history WHERE detail LIKE '%STEP_TIMEOUT%'"); catch-ups: $(grep -c 'due timers wait until they are read' "$DIR/sagad.log" || true))"
# At the wake-up itself ("after a stall"), or, when librdkafka found the
# session expired first and revoked the partitions (then the loop is not
# consuming and checks nothing), after the re-assignment ~3 s later.
checks_after_start() { [ "$(grep -cE '"msg":"after (a stall|an assignment)' "$DIR/sagad.log")" -ge 2 ]; }
for _ in $(seq 1 100); do checks_after_start && break; sleep 0.2; done
grep -E '"msg":"after (a stall|an assignment)' "$DIR/sagad.log" | tail -n 3 | sed 's/^/  | /'
check "sagad checked the replies' high watermark after the wake-up" checks_after_start
check "sagad is still running" kill -0 "$SAGAD_PID"
check "every saga's history is gap-free" history_gap_free
"$STACK" down "$DIR" >"$DIR/down.out" 2>&1 || { cat "$DIR/down.out" >&2; fail "stack down"; }
rc=0
"$BUILD_DIR/bin/sagactl" audit --saga-db "$SAGA_DB" --order-db "$ORDER_DB" --inventory-db "$INVENTORY_DB" \
  --payment-db "$PAYMENT_DB" --notification-db "$NOTIFICATION_DB" >"$DIR/audit.txt" 2>&1 || rc=$?
sed 's/^/  | /' "$DIR/audit.txt" | tail -n 5
check "sagactl audit is clean" eq "$rc" 0
[ -z "${KEEP_LOG:-}" ] || cp "$DIR/sagad.log" "$KEEP_LOG"
echo "$CHECKS passed, 0 failed"

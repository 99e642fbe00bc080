#!/usr/bin/env bash
# Delayed starts (issue 16): N order sagas (1,000) whose starts carry
# "not_before" (half) or "delay" (half), spread over 60 s. Each is stored
# at once as `scheduled` (visible in /v1/stats, abortable), and begins at its
# time from a durable timer, across a kill -9 and restart of sagad in the
# middle of the window. Every saga begins within 1 s of its time (or, when
# its time fell while sagad was down, within 1 s of sagad being back), none
# early; all complete, each action once in effect; the aborted one never
# ran a step.
. "$(dirname "$0")/../e2e/e2e_lib.sh"
N=${DELAYED_SAGAS:-1000}
SPREAD_MS=${DELAYED_SPREAD_MS:-60000}
LEAD_MS=8000   # the first begins this long after publication: all are stored before
stack_up

now_ms() { date +%s%3N; }
T0=$(now_ms)
python3 - "$N" "$T0" "$LEAD_MS" "$SPREAD_MS" >"$DIR/starts.txt" <<'PY'
import datetime, json, sys
n, t0, lead, spread = (int(a) for a in sys.argv[1:])
for k in range(1, n + 1):
    sid = f"dl-{k}"
    at = t0 + lead + spread * k // n
    ev = {"type": "saga.start", "message_id": f"m-{sid}", "definition": "order_fulfillment", "saga_id": sid,
          "input": {"order_id": f"o-{sid}", "customer": "c-1", "amount": 1000, "items": [{"sku": "sku-1", "qty": 1}]}}
    if k % 2:  # an absolute time, with an offset other than Z
        tz = datetime.timezone(datetime.timedelta(hours=1))
        ev["not_before"] = datetime.datetime.fromtimestamp(at / 1000, tz).isoformat(timespec="milliseconds")
    else:      # a duration from now (sagad reads it within the lead time)
        ev["delay"] = f"{at - t0}ms"
    print(f"{sid}\t{json.dumps(ev, separators=(',', ':'))}")
# one more, due after the window, which an operator aborts before its time
ev = {"type": "saga.start", "message_id": "m-dlx-1", "definition": "order_fulfillment", "saga_id": "dlx-1",
      "delay": f"{lead + spread}ms", "input": {"order_id": "o-dlx-1", "customer": "c-1", "amount": 1000,
                                                "items": [{"sku": "sku-1", "qty": 1}]}}
print(f"dlx-1\t{json.dumps(ev, separators=(',', ':'))}")
PY
kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t' -X linger.ms=5 -l "$DIR/starts.txt"
check "all $N stored as scheduled before the first is due" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'dl-%' AND status='scheduled'" "$N" $((LEAD_MS / 1000 - 2))
check "/v1/stats counts them as scheduled" \
  eq "$(curl -s "$ADMIN_URL/v1/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sagas"]["by_status"]["scheduled"])')" "$((N + 1))"
check "not_before is kept to the millisecond" \
  eq "$(saga_sql "SELECT json_extract(detail, '$.begin_at') FROM history WHERE saga_id='dl-1' AND event='saga.scheduled'")" \
     "$((T0 + LEAD_MS + SPREAD_MS / N))"
"$SAGACTL" --url "$ADMIN_URL" abort dlx-1 "not needed" >/dev/null
check "the aborted scheduled saga ends compensated, every step cancelled" \
  wait_count "SELECT status || '/' || error_code || '/' || (SELECT count(*) FROM steps WHERE saga_id='dlx-1' AND status='cancelled') FROM sagas WHERE id='dlx-1'" "compensated/ABORTED/4" 20

# kill -9 in the middle of the window, back a moment later
while [ "$(now_ms)" -lt $((T0 + LEAD_MS + SPREAD_MS / 2)) ]; do sleep 0.2; done
kill -9 "$SAGAD_PID"
DOWN_AT=$(now_ms)
wait_exit sagad 10 || fail "sagad did not die"
sleep 2
"$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart of sagad"
BACK_AT=$(now_ms)
reload_env
echo "sagad down from +$((DOWN_AT - T0)) ms to +$((BACK_AT - T0)) ms (ready)"

check "all $N completed" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'dl-%' AND status='completed'" "$N" $(((LEAD_MS + SPREAD_MS) / 1000 + 90))
# lateness: saga.started's time minus the begin time (or sagad's return, for a time it was down)
saga_sql "SELECT s.saga_id, json_extract(s.detail, '$.begin_at'), b.at FROM history s JOIN history b
          ON b.saga_id = s.saga_id AND b.event = 'saga.started' WHERE s.event = 'saga.scheduled' AND s.saga_id LIKE 'dl-%'" >"$DIR/begins.txt"
python3 - "$DIR/begins.txt" "$DOWN_AT" "$BACK_AT" >"$DIR/lateness.txt" 2>"$DIR/lateness.err" <<'PY'
import sys
rows = [l.split("|") for l in open(sys.argv[1]).read().split()]
down, back = int(sys.argv[2]), int(sys.argv[3])
late, early, during = [], 0, 0
for sid, due, at in rows:
    due, at = int(due), int(at)
    if at < due:
        early += 1
    ref = due
    if down <= due < back:
        during += 1
        ref = back
    late.append(max(0, at - ref))
late.sort()
q = lambda p: late[min(len(late) - 1, int(p * len(late)))]
print(f"{len(rows)} {early} {late[-1]} {q(0.5)} {q(0.99)} {during}")
on_time = sorted(max(0, int(at) - int(due)) for _, due, at in rows if not down <= int(due) < back)
print(f"due while sagad ran: {len(on_time)}, lateness p50 {on_time[len(on_time) // 2]} ms, max {on_time[-1]} ms",
      file=sys.stderr)
PY
cat "$DIR/lateness.err" 2>/dev/null || true
read -r begun early worst p50 p99 during <"$DIR/lateness.txt"
echo "began: $begun; lateness p50 ${p50} ms, p99 ${p99} ms, max ${worst} ms; $during were due while sagad was down"
check "every saga began" eq "$begun" "$N"
check "none began before its time" eq "$early" 0
check "each began within 1 s of its time (or of sagad's return)" test "$worst" -le 1000
check "the window covered the restart: some were due while sagad was down" test "$during" -gt 0
exactly_once dl "$N" 1000
check "the aborted saga ran no step" \
  eq "$(sql "$ORDER_DB" "SELECT count(*) FROM orders WHERE saga_id='dlx-1'")/$(saga_sql "SELECT count(*) FROM history WHERE saga_id='dlx-1' AND event='step.started'")" "0/0"
check "audit: clean" audit
echo "$CHECKS passed, 0 failed"

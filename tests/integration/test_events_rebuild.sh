#!/usr/bin/env bash
# saga.events alone tells every saga's story: after 1,000 mixed sagas, each
# saga's events carry a gap-free seq (1..n, duplicates only as exact
# repeats) and the last one's status equals sagad's database.
. "$(dirname "$0")/lib.sh"
stack_up
publish_starts mix 800
publish_starts oos 100 c-1 sku-empty
publish_starts dec 100 c-broke sku-1
check "all 1,000 sagas ended" wait_count "SELECT count(*) FROM sagas WHERE status IN ('completed','compensated')" 1000 180
check "the outbox is drained" wait_count "SELECT count(*) FROM outbox" 0 30
kcat -b "$BOOTSTRAP" -C -X isolation.level=read_committed -t saga.events -o beginning -e -q -X fetch.wait.max.ms=10 >"$DIR/events.jsonl"
saga_sql "SELECT id || ' ' || status FROM sagas" >"$DIR/db.txt"
python3 - "$DIR" <<'PY'
import json, sys
d = sys.argv[1]
events, by_id = {}, {}
for line in open(f"{d}/events.jsonl"):
    ev = json.loads(line)
    if ev["message_id"] in by_id:
        assert by_id[ev["message_id"]] == ev, f"two different events share {ev['message_id']}"
        continue
    by_id[ev["message_id"]] = ev
    events.setdefault(ev["saga_id"], {})[ev["seq"]] = ev
db = dict(l.split() for l in open(f"{d}/db.txt"))
assert set(events) == set(db), f"sagas in events but not in the db: {set(events) - set(db)}; the reverse: {set(db) - set(events)}"
for sid, seqs in events.items():
    n = max(seqs)
    assert sorted(seqs) == list(range(1, n + 1)), f"{sid}: seq has gaps: {sorted(seqs)}"
    assert seqs[1]["event"] == "saga.started", f"{sid}: first event is {seqs[1]['event']}"
    assert seqs[n]["status"] == db[sid], f"{sid}: events say {seqs[n]['status']}, the db says {db[sid]}"
print(f"{len(events)} sagas rebuilt from {len(by_id)} events: all match the database")
PY
check "every saga's status rebuilt from saga.events matches the database" true
echo "$CHECKS passed, 0 failed"

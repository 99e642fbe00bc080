#!/usr/bin/env bash
# Issue 14 item 1 (migration): a database written by the previous release —
# one file, schema version 4 — is converted into the data directory's P
# shards when sagad starts with --db on it. Sagas caught mid-run by kill -9
# finish after the conversion, each exactly once; starts read again are
# recognised in the shard their saga was moved to; the old file is kept as
# sagad.db.converted and a later start does not convert again. Routing, before
# and after: every saga is in the shard of its id's partition; a start without
# saga_id is in the shard of the partition it was read from. The old-format
# file is made from the shards of this run (their rows in one file, without
# shard_meta, no outbox partition or tombstone column, user_version 4), which is what the previous release wrote.
. "$(dirname "$0")/lib.sh"
stack_up
N=300
publish_starts conv "$N"
check "some sagas completed before the crash" wait_count "SELECT count(*) > 20 FROM sagas WHERE id LIKE 'conv-%' AND status='completed'" 1 60
kill -9 "$SAGAD_PID"
for _ in $(seq 100); do [ -e "$DIR/sagad.exit" ] && break; sleep 0.05; done
running=$(saga_sql "SELECT count(*) FROM sagas WHERE status <> 'completed'")
echo "ok - sagad killed with $running saga(s) not finished"

# misplaced: sagas whose shard file is not the partition of their id (Kafka's
# murmur2 of the id, mod 8), the loop's and the conversion's placement alike
misplaced() {
  python3 - "$SAGA_DB" <<'PY'
import glob, os, sqlite3, sys
def murmur2(data):
    m, r, h = 0x5bd1e995, 24, (0x9747b28c ^ len(data)) & 0xffffffff
    n = len(data) // 4
    for i in range(n):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xffffffff; k ^= k >> r; k = (k * m) & 0xffffffff
        h = (h * m) & 0xffffffff; h ^= k
    rest = data[4 * n:]
    if len(rest) >= 3: h ^= rest[2] << 16
    if len(rest) >= 2: h ^= rest[1] << 8
    if len(rest) >= 1: h ^= rest[0]; h = (h * m) & 0xffffffff
    h ^= h >> 13; h = (h * m) & 0xffffffff; h ^= h >> 15
    return h
bad = 0
for f in sorted(glob.glob(os.path.join(sys.argv[1], "shard-*.db"))):
    p = int(os.path.basename(f)[6:9])
    for (sid,) in sqlite3.connect(f).execute("SELECT id FROM sagas"):
        bad += (murmur2(sid.encode()) & 0x7fffffff) % 8 != p
print(bad)
PY
}
check "before: every saga the loop started is in the shard of its id" eq "$(misplaced)" 0

# ---- the previous release's single file, from this run's shards
old=$DIR/sagad.db
first=$(ls "$SAGA_DB"/shard-*.db | head -n1)
sqlite3 "$first" .schema | grep -v -e sqlite_sequence -e shard_meta | sqlite3 "$old"
# the outbox as migration 4 left it (migration 6 added these columns), and
# without what migrations 8-11 added (search attributes, kept signals,
# paused topics, a child saga's parent)
sqlite3 "$old" "ALTER TABLE outbox DROP COLUMN kafka_partition; ALTER TABLE outbox DROP COLUMN tombstone;
  DROP TRIGGER sagas_search_insert; DROP TRIGGER sagas_search_delete; DROP TABLE saga_search; DROP TABLE paused_topics;
  ALTER TABLE sagas DROP COLUMN search; ALTER TABLE sagas DROP COLUMN parent; ALTER TABLE steps DROP COLUMN signal;"
saga_cols="id, definition, version, status, input, traceparent, start_message_id, created_at, updated_at, deadline_at, seq, completions, error_code, error_message"
step_cols="saga_id, idx, name, status, attempt, comp_attempt, comp_budget_base, outcome_unknown, output, error_code, error_message, started_at, finished_at, updated_at, completion_order"
for f in "$SAGA_DB"/shard-*.db; do
  sqlite3 -cmd ".timeout 5000" "$old" "ATTACH '$f' AS s; INSERT OR IGNORE INTO definitions SELECT * FROM s.definitions;
    INSERT INTO sagas ($saga_cols) SELECT $saga_cols FROM s.sagas; INSERT INTO steps ($step_cols) SELECT $step_cols FROM s.steps;
    INSERT INTO history SELECT * FROM s.history; INSERT INTO timers SELECT * FROM s.timers;
    INSERT OR IGNORE INTO dedup SELECT * FROM s.dedup;
    INSERT INTO outbox (topic, key, headers, payload, created_at) SELECT topic, key, headers, payload, created_at FROM s.outbox WHERE kafka_partition < 0 ORDER BY id;"
done
sql "$old" "PRAGMA user_version = 4" >/dev/null
sagas_before=$(sql "$old" "SELECT count(*) FROM sagas")
check "the old file holds the run's sagas" test "$sagas_before" -gt 20
rm -rf "$SAGA_DB"

# ---- restart: the stack passes --db DIR/sagad.db, sagad converts it
"$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart-sagad with the old file"
reload_env
check "sagad said it converted the file" grep -q "converting the single-file database $old into 8 shards" "$DIR/sagad.log"
check "the old file is kept as sagad.db.converted" test -f "$old.converted" -a ! -e "$old"
check "the data directory has 8 shards" eq "$(ls "$SAGA_DB"/shard-*.db | wc -l)" 8
check "every saga is in the shard of its id (none elsewhere)" eq "$(misplaced)" 0
check "all $N sagas complete after the conversion" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'conv-%' AND status='completed'" "$N" 120
publish_starts conv "$N"
publish_starts conv2 50
# starts without saga_id, each to a partition of its own: the saga gets an id
# of that partition and lives in that partition's shard
for p in 0 1 2 3; do
  printf '{"type":"saga.start","message_id":"m-keyless-%s","definition":"order_fulfillment","input":{"order_id":"o-keyless-%s","customer":"c-1","amount":100,"items":[{"sku":"sku-1","qty":1}]}}\n' "$p" "$p" |
    kcat -b "$BOOTSTRAP" -P -t saga.start -p "$p"
done
check "the keyless starts complete" wait_count "SELECT count(*) FROM sagas WHERE start_message_id LIKE 'm-keyless-%' AND status='completed'" 4 60
for p in 0 1 2 3; do
  check "the start read from partition $p is in shard-00$p.db" \
    eq "$(sql "$SAGA_DB/shard-00$p.db" "SELECT count(*) FROM sagas WHERE start_message_id='m-keyless-$p'")" 1
done
check "new sagas complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'conv2-%' AND status='completed'" 50 60
check "the re-published starts started nothing (found in their shards)" eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'conv-%'")" "$N"
exactly_once conv "$N" 1000
exactly_once conv2 50 1000
check "after: the sagas started since are in the shards of their ids too" eq "$(misplaced)" 0

# ---- a second start with the same --db does not convert again
kill -9 "$SAGAD_PID"
for _ in $(seq 100); do [ -e "$DIR/sagad.exit" ] && break; sleep 0.05; done
SAGAD_ARGS="--db $old" "$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart-sagad with --db of a converted file"
reload_env
check "converted once only" eq "$(grep -c 'converting the single-file database' "$DIR/sagad.log")" 1
check "the sagas are still there, once" eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'conv%'")" "$((N + 50))"
echo "$CHECKS checks passed"

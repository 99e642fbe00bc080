#!/usr/bin/env bash
# Issue 14 item 3: sagad restores its shards from saga.changelog at start.
# The changelog records are those sagad wrote during a real run (its outbox
# drained before each kill; changelog_dump shows the codec's records of the
# shards, which the restored rows must match). Then:
#  1. the whole data directory deleted: every shard is rebuilt, row-identical,
#     and GET /v1/sagas/{id} and ?at= answer as before; /metrics counts it;
#  2. a corrupt shard file is moved aside (.corrupt-<time>) and rebuilt;
#  3. a shard behind its changelog (marker lowered, its last sagas deleted)
#     catches up in place; killed mid-catch-up, it goes on from its marker;
#  4. SAGAD_CRASH_AT=during_restore kills sagad mid-restore (a .restoring file
#     is left): the next start deletes it, restores again, ends identical;
#  5. a corrupt changelog record: sagad refuses to start, naming the shard,
#     the offset and the key.
. "$(dirname "$0")/lib.sh"
stack_up
P=$SAGA_PARTITIONS
N=120
publish_starts rs "$N"
check "all $N sagas complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'rs-%' AND status='completed'" "$N" 120

# rows: every restored table of every shard, in a stable order (dedup and
# outbox rows are not in the changelog on purpose; a definition has a record
# in a shard once a saga of that shard runs on it: the others are loaded
# again from the definitions directory at start, with a new loaded_at)
rows() {
  local f out=""
  for f in "$1"/shard-*.db; do
    echo "== $(basename "$f")"
    sqlite3 -batch -noheader -cmd ".timeout 5000" "$f" \
      "SELECT * FROM definitions WHERE (name, version) IN (SELECT definition, version FROM sagas) ORDER BY name, version; SELECT * FROM sagas ORDER BY id;
       SELECT * FROM steps ORDER BY saga_id, 2; SELECT * FROM history ORDER BY saga_id, seq;
       SELECT * FROM timers ORDER BY 1, 2"
  done
}
get() { curl -s -H "Authorization: Bearer $(cat "$SAGA_ADMIN_TOKEN_FILE")" "$ADMIN_URL$1"; }
# answers: GET of some sagas, now and at a time in the middle of each one's run
answers() {
  local id at
  for id in rs-1 rs-7 rs-33 rs-64 rs-120; do
    get "/v1/sagas/$id" | jq -S 'del(.shard?)'
    at=$(saga_sql "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', (created_at + (updated_at - created_at) / 2) / 1000.0, 'unixepoch') FROM sagas WHERE id='$id'")
    get "/v1/sagas/$id?at=$at" | jq -S .
  done
}
# the log of sagad's latest start
last_log() { awk '/stack: starting/ { n = 0 } { line[n++] = $0 } END { for (i = 0; i < n; i++) print line[i] }' "$DIR/sagad.log"; }
log_has() { grep -q "$1" <(last_log); } # not a pipe: grep -q would SIGPIPE awk (pipefail)
stop_sagad() {
  kill -9 "$SAGAD_PID" 2>/dev/null || true
  for _ in $(seq 100); do [ -e "$DIR/sagad.exit" ] && break; sleep 0.05; done
}
restart() {
  "$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || return 1
  reload_env
}

"$BUILD_DIR/bin/changelog_dump" "$SAGA_DB" "$P" >"$DIR/changelog.tsv"
check "the dump holds every saga" eq "$(awk -F'\t' '$2 ~ /^rs-/' "$DIR/changelog.tsv" | wc -l)" "$N"
# sagad wrote the changelog itself (changelog_out.c): PARTITION's committed
# records as OFFSET<TAB>KEY lines, and its end offset
records() { kcat -b "$BOOTSTRAP" -C -t saga.changelog -p "$1" -o beginning -e -q -X isolation.level=read_committed \
  -f '%o\t%k\n' 2>/dev/null; }
end_offset() { kcat -b "$BOOTSTRAP" -Q -t "saga.changelog:$1:-1" 2>/dev/null | awk '{ print $NF }'; }
drained() { [ "$(saga_sql_each "SELECT count(*) FROM outbox" | awk '{ n += $1 } END { print n + 0 }')" = 0 ]; }
wait_drained() { for _ in $(seq 200); do drained && return 0; sleep 0.1; done; return 1; }
check "sagad delivered its outbox (the changelog records)" wait_drained
rows "$SAGA_DB" >"$DIR/rows.before"
answers >"$DIR/answers.before"
check "the answers are real sagas" grep -q '"status": "completed"' "$DIR/answers.before"
stop_sagad
cp -a "$SAGA_DB" "$DIR/original-data"

# ---- 1. the whole data directory lost
rm -rf "$SAGA_DB"
check "sagad starts on an empty data directory" restart
if [ "${KAFKA:-}" = real ]; then # scripts/kafka made it compacted; sagad read it back (DescribeConfigs)
  check "sagad found saga.changelog compacted" log_has "the changelog topic 'saga.changelog' is compacted"
fi
check "sagad logged the restore of every shard" eq "$(last_log | grep -c 'shard [0-9]* restored:')" "$P"
check "the shards are row-identical to the originals" diff "$DIR/rows.before" <(rows "$SAGA_DB")
answers >"$DIR/answers.after"
check "GET and ?at= answer as before" diff "$DIR/answers.before" "$DIR/answers.after"
get /metrics >"$DIR/metrics"
# (a saga has one record per iteration that changed it until compaction: at least N)
check "/metrics counts the restored sagas" test "$(awk '/^sagad_restore_sagas_total/ { s += $2 } END { print s }' "$DIR/metrics")" -ge "$N"
check "/metrics says each shard was rebuilt" eq "$(grep -c '^sagad_restore_rebuilt{shard="[0-9]*"} 1' "$DIR/metrics")" "$P"
check "no restore in progress" eq "$(grep -c '^sagad_restore_in_progress{.*} 1' "$DIR/metrics")" 0
stop_sagad
# the restored shards (with their changelog markers): what the cases below start from
cp -a "$SAGA_DB" "$DIR/restored-data"
reset_data() { rm -rf "$SAGA_DB"; cp -a "$DIR/restored-data" "$SAGA_DB"; }

# ---- 2. a corrupt shard file
reset_data
head -c 8192 /dev/urandom >"$SAGA_DB/shard-003.db"
rm -f "$SAGA_DB"/shard-003.db-wal "$SAGA_DB"/shard-003.db-shm
check "sagad starts with a corrupt shard" restart
check "the corrupt shard was moved aside" compgen -G "$SAGA_DB/shard-003.db.corrupt-*"
check "sagad said so" log_has 'shard-003.db is corrupt'
check "the shards are row-identical to the originals" diff "$DIR/rows.before" <(rows "$SAGA_DB")
stop_sagad

# ---- 3. a shard behind its changelog
records 5 >"$DIR/records-5.tsv"
check "shard 5 has records" test "$(wc -l <"$DIR/records-5.tsv")" -gt 3
o1=$(tail -n 3 "$DIR/records-5.tsv" | head -n 1 | cut -f1)
o2=$(tail -n 2 "$DIR/records-5.tsv" | head -n 1 | cut -f1)
# lag_shard5: the restored data, then shard 5 without the sagas of its
# partition's last 3 records and with its marker just before them
lag_shard5() {
  reset_data
  tail -n 3 "$DIR/records-5.tsv" | cut -f2 | sort -u >"$DIR/lost"
  { echo "INSERT OR REPLACE INTO shard_meta (key, value) VALUES ('changelog_offset', $((o1 - 1)));"
    while read -r id; do
      for t in "steps WHERE saga_id" "history WHERE saga_id" "timers WHERE saga_id" "sagas WHERE id"; do
        echo "DELETE FROM $t = '$id';"
      done
    done <"$DIR/lost"; } | sqlite3 "$SAGA_DB/shard-005.db"
}
lag_shard5
check "shard 5 lost 3 sagas" test "$(rows "$SAGA_DB" | diff - "$DIR/rows.before" | grep -c '^>' || true)" -gt 0
check "sagad starts with a shard behind" restart
check "sagad caught shard 5 up" log_has 'shard 5 caught up: 3 records'
check "the shards are row-identical to the originals" diff "$DIR/rows.before" <(rows "$SAGA_DB")
stop_sagad
# the same, killed after 2 of the 3 records: durable batches, the next start
# goes on from the marker (1 record left)
lag_shard5
export SAGAD_CRASH_AT=during_restore SAGAD_CRASH_AFTER=2
restart || true
unset SAGAD_CRASH_AT SAGAD_CRASH_AFTER
check "sagad died mid-catch-up (137)" eq "$(exit_status_of sagad)" 137
check "shard 5's marker moved by the 2 records applied" \
  eq "$(sqlite3 "$SAGA_DB/shard-005.db" "SELECT value FROM shard_meta WHERE key='changelog_offset'")" "$o2"
check "sagad starts again" restart
check "it caught up the last record only" log_has 'shard 5 caught up: 1 records'
check "the shards are row-identical to the originals" diff "$DIR/rows.before" <(rows "$SAGA_DB")
stop_sagad

# ---- 4. a crash during the restore
rm -rf "$SAGA_DB"
export SAGAD_CRASH_AT=during_restore SAGAD_CRASH_AFTER=5
restart || true
unset SAGAD_CRASH_AT SAGAD_CRASH_AFTER
check "sagad died mid-restore (137)" eq "$(exit_status_of sagad)" 137
check "it left an unfinished .restoring file" compgen -G "$SAGA_DB/shard-*.db.restoring"
check "sagad starts again" restart
check "the unfinished file was deleted" log_has 'left by a restore that did not finish'
check "no .restoring file is left" eq "$(compgen -G "$SAGA_DB/shard-*.db.restoring" | wc -l)" 0
check "the shards are row-identical to the originals" diff "$DIR/rows.before" <(rows "$SAGA_DB")
stop_sagad

# (after the cases above: new sagas add records to the changelog)
reset_data
check "sagad starts on its restored shards" restart
check "nothing to restore the second time" eq "$(last_log | grep -c 'restored:\|caught up:')" 0
publish_starts rs2 20
check "new sagas complete after the restore" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'rs2-%' AND status='completed'" 20 60
check "sagad delivered its outbox" wait_drained
stop_sagad

# ---- 5. a corrupt changelog record refuses the shard
bad_key=$(records 2 | awk -F'\t' '$2 !~ /^def\// { print $2; exit }')
bad_offset=$(end_offset 2)
printf '%s\t{"v":1,"saga":' "$bad_key" | kcat -b "$BOOTSTRAP" -P -t saga.changelog -p 2 -K $'\t'

rm -f "$SAGA_DB/shard-002.db"
restart || true
check "sagad refused to start" wait_exit sagad 30
check "with exit status 1" eq "$(exit_status_of sagad)" 1
check "the error names the shard, the offset and the key" \
  grep -q "shard 2: the changelog record at saga.changelog\[2\] offset $bad_offset (key '$bad_key') cannot be applied" "$DIR/sagad.log"
check "no shard-002.db was published" test ! -e "$SAGA_DB/shard-002.db"
echo "$CHECKS checks passed"

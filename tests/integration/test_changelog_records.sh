#!/usr/bin/env bash
# Issue 14: sagad writes saga.changelog itself (orchestrator/changelog_out.c).
# After a run of 200 mixed sagas, read with a read_committed consumer, the
# topic holds for every saga a latest record equal to saga_changelog_encode
# of the shard's saga (changelog_dump), in the shard's partition; each
# partition's definition records come before its first saga record; each
# shard's changelog marker is the last offset delivered to its partition.
# Then retention (--retention 3s) deletes the sagas: each gets a tombstone
# (a NULL value) as its latest record.
. "$(dirname "$0")/lib.sh"
export SAGAD_ARGS="--retention 3s ${SAGAD_ARGS:-}"
stack_up
P=$SAGA_PARTITIONS
publish_starts ok 160
publish_starts oos 20 c-2 sku-empty
publish_starts dec 20 c-broke sku-2
outbox_empty() { [ "$(saga_sql_each "SELECT count(*) FROM outbox" | awk '{ n += $1 } END { print n + 0 }')" = 0 ]; }
wait_outbox() { for _ in $(seq 200); do outbox_empty && return 0; sleep 0.1; done; return 1; }
# Records read committed; NULL values printed as NULL.
topic() { kcat -b "$BOOTSTRAP" -C -t saga.changelog -o beginning -e -q -Z -X isolation.level=read_committed \
  -f '%p\t%o\t%k\t%s\n' 2>/dev/null; }
latest() { awk -F'\t' '{ last[$3] = $1 "\t" $3 "\t" $4 } END { for (k in last) print last[k] }' | sort; }

# While the sagas run (before the retention takes them): sagad is stopped
# with SIGSTOP once they all finished, so that the shards hold still.
check "all 200 sagas finish" wait_count "SELECT count(*) FROM sagas WHERE status IN ('completed','compensated')" 200 120
check "the outboxes drain" wait_outbox
kill -STOP "$SAGAD_PID"
trap 'kill -CONT "$SAGAD_PID" 2>/dev/null; it_cleanup' EXIT
left=$(saga_sql "SELECT count(*) FROM sagas")
"$BUILD_DIR/bin/changelog_dump" "$SAGA_DB" "$P" | sort >"$DIR/dump.tsv"
topic >"$DIR/topic.tsv"
latest <"$DIR/topic.tsv" >"$DIR/latest.tsv"
kill -CONT "$SAGAD_PID"
check "some sagas are still stored (not all pruned yet)" test "$left" -gt 0
# the sagas stored at the dump: their latest record is the dump's line
join -t $'\t' -1 1 -2 1 <(awk -F'\t' '$2 !~ /^def\// { print $2 "\t" $1 "\t" $3 }' "$DIR/dump.tsv" | sort) \
  <(awk -F'\t' '{ print $2 "\t" $1 "\t" $3 }' "$DIR/latest.tsv" | sort) >"$DIR/joined.tsv"
check "every stored saga has a record" eq "$(wc -l <"$DIR/joined.tsv")" "$left"
check "each latest record equals saga_changelog_encode of the shard's saga, in its shard's partition" \
  eq "$(awk -F'\t' '$2 != $4 || $3 != $5' "$DIR/joined.tsv" | wc -l)" 0
check "definition records: those of the dump, in each partition holding sagas" \
  eq "$(awk -F'\t' '$2 ~ /^def\// { print $1 "\t" $2 }' "$DIR/latest.tsv" | sort)" \
  "$(awk -F'\t' '$2 ~ /^def\// { print $1 "\t" $2 }' "$DIR/dump.tsv" | sort)"
check "every partition holding saga records holds a definition record" \
  eq "$(awk -F'\t' '$3 ~ /^def\// { print $1 }' "$DIR/topic.tsv" | sort -u | tr '\n' ' ')" \
  "$(awk -F'\t' '$3 !~ /^def\// { print $1 }' "$DIR/topic.tsv" | sort -u | tr '\n' ' ')"
check "some definition records" test "$(awk -F'\t' '$3 ~ /^def\//' "$DIR/topic.tsv" | wc -l)" -gt 0
check "a definition record comes before the partition's first saga record" \
  eq "$(awk -F'\t' '!($1 in seen) { seen[$1] = 1; if ($3 !~ /^def\//) bad++ } END { print bad + 0 }' "$DIR/topic.tsv")" 0
markers_ok() {
  local p want got
  for p in $(seq 0 $((P - 1))); do
    want=$(awk -F'\t' -v p="$p" '$1 == p { o = $2 } END { print (o == "" ? "none" : o) }' "$DIR/topic.tsv")
    got=$(sqlite3 "$SAGA_DB/shard-$(printf %03d "$p").db" "SELECT value FROM shard_meta WHERE key='changelog_offset'")
    [ "$want" = none ] || [ "$got" -ge "$want" ] || { echo "  shard $p: marker '$got', last offset $want" >&2; return 1; }
  done
}
check "each shard's marker reached the last offset delivered to its partition" markers_ok
# retention: every saga goes, with a tombstone
check "retention deletes every saga" wait_count "SELECT count(*) FROM sagas" 0 60
check "the outboxes drain" wait_outbox
topic | latest >"$DIR/latest2.tsv"
check "every saga's latest record is a tombstone (NULL value)" \
  eq "$(awk -F'\t' '$2 !~ /^def\// && $3 != "NULL"' "$DIR/latest2.tsv" | wc -l)" 0
check "200 tombstones" eq "$(awk -F'\t' '$2 !~ /^def\// && $3 == "NULL"' "$DIR/latest2.tsv" | wc -l)" 200
echo "$CHECKS checks passed"

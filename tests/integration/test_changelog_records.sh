#!/usr/bin/env bash
# Issue 14: sagad writes saga.changelog itself (orchestrator/changelog_out.c).
# After a run of 200 mixed sagas, read with a read_committed consumer, the
# topic holds for every saga a latest record equal to saga_changelog_encode
# of the shard's saga (changelog_dump), in the shard's partition; each
# partition's definition records come before its first saga record; each
# shard's changelog marker is the last offset delivered to its partition.
# Once they finished, events that change nothing are sent (the starts
# again, starts of existing saga ids under new message ids, every reply
# again under a new message id: duplicates and stale replies): they write no
# record, so no record (partition, key, value) appears twice, and no saga
# record (key, value) at all (only a definition record is in every
# partition that holds sagas).
# Then retention (--retention 10s) deletes the sagas: each gets a tombstone
# (a NULL value) as its latest record.
. "$(dirname "$0")/lib.sh"
export SAGAD_ARGS="--retention 10s ${SAGAD_ARGS:-}"
stack_up
P=$SAGA_PARTITIONS
publish_starts ok 160
publish_starts oos 20 c-2 sku-empty
publish_starts dec 20 c-broke sku-2
# Records read committed; NULL values printed as NULL.
topic() { kcat -b "$BOOTSTRAP" -C -t saga.changelog -o beginning -e -q -Z -X isolation.level=read_committed \
  -f '%p\t%o\t%k\t%s\n' 2>/dev/null; }
latest() { awk -F'\t' '{ last[$3] = $1 "\t" $3 "\t" $4 } END { for (k in last) print last[k] }' | sort; }

# While the sagas run (before the retention takes them): sagad is stopped
# with SIGSTOP once they all finished, so that the shards hold still.
check "all 200 sagas finish" wait_count "SELECT count(*) FROM sagas WHERE status IN ('completed','compensated')" 200 120
check "the outboxes drain" wait_outbox
metric() { curl -s "$ADMIN_URL/metrics" | sed -n "s/^sagad_$1_total //p"; }
metric_at_least() { for _ in $(seq 100); do [ "$(metric "$1")" -ge "$2" ] 2>/dev/null && return 0; sleep 0.2; done
  echo "  sagad_$1_total is '$(metric "$1")', not >= $2" >&2; return 1; }
dups0=$(metric duplicate_message) starts0=$(metric duplicate_start) stale0=$(($(metric stale_reply) + $(metric dead_letters)))
kcat -b "$BOOTSTRAP" -P -t saga.start -K $'\t' -l "$DIR/starts-oos.txt"  # the same messages: dedup
sed 's/"message_id":"m-/"message_id":"again-/' "$DIR/starts-dec.txt" >"$DIR/starts-again.txt"
kcat -b "$BOOTSTRAP" -P -t saga.start -K $'\t' -l "$DIR/starts-again.txt"  # existing saga ids
kcat -b "$BOOTSTRAP" -C -t saga.replies -o beginning -e -q -f '%k\t%s\n' 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    key, _, value = line.rstrip("\n").partition("\t")
    r = json.loads(value)
    r["message_id"] = "again-" + r["message_id"]  # not a duplicate: a stale reply for the engine
    print(key + "\t" + json.dumps(r, separators=(",", ":")))' >"$DIR/replies-again.txt"
replies=$(wc -l <"$DIR/replies-again.txt")
kcat -b "$BOOTSTRAP" -P -t saga.replies -K $'\t' -l "$DIR/replies-again.txt"
check "sagad saw the 20 starts again (dedup)" metric_at_least duplicate_message $((dups0 + 20))
check "sagad ignored 20 starts of existing sagas" metric_at_least duplicate_start $((starts0 + 20))
ignored() { # stale replies, and dead letters (replies to sagas the retention deleted)
  for _ in $(seq 100); do [ $(($(metric stale_reply) + $(metric dead_letters))) -ge "$1" ] && return 0; sleep 0.2; done
  echo "  stale replies and dead letters: $(metric stale_reply) + $(metric dead_letters), not >= $1" >&2; return 1; }
check "sagad ignored the $replies replies sent again" ignored $((stale0 + replies))
check "the outboxes drain" wait_outbox
kill -STOP "$SAGAD_PID"
it_on_exit 'kill -CONT "$SAGAD_PID"'
left=$(saga_sql "SELECT count(*) FROM sagas")
"$BUILD_DIR/bin/changelog_dump" "$SAGA_DB" "$P" | sort >"$DIR/dump.tsv"
topic >"$DIR/topic.tsv"
latest <"$DIR/topic.tsv" >"$DIR/latest.tsv"
kill -CONT "$SAGAD_PID"
check "some sagas are still stored (not all pruned yet)" test "$left" -gt 0
echo "# saga.changelog: $(wc -l <"$DIR/topic.tsv") record(s), $(cut -f1,3,4 "$DIR/topic.tsv" | sort -u | wc -l) distinct (partition, key, value), $(cut -f3,4 "$DIR/topic.tsv" | sort -u | wc -l) distinct (key, value)"
check "no record (partition, key, value) appears twice" eq "$(cut -f1,3,4 "$DIR/topic.tsv" | sort | uniq -d | wc -l)" 0
check "no saga record (key, value) appears twice" \
  eq "$(awk -F'\t' '$3 !~ /^def\//' "$DIR/topic.tsv" | cut -f3,4 | sort | uniq -d | wc -l)" 0
# the sagas stored at the dump: their latest record is the dump's line
join -t $'\t' -1 1 -2 1 <(awk -F'\t' '$2 !~ /^def\// { print $2 "\t" $1 "\t" $3 }' "$DIR/dump.tsv" | sort) \
  <(awk -F'\t' '{ print $2 "\t" $1 "\t" $3 }' "$DIR/latest.tsv" | sort) >"$DIR/joined.tsv"
check "every stored saga has a record" eq "$(wc -l <"$DIR/joined.tsv")" "$left"
check "each latest record equals saga_changelog_encode of the shard's saga, in its shard's partition" \
  eq "$(awk -F'\t' '$2 != $4 || $3 != $5' "$DIR/joined.tsv" | wc -l)" 0
# PARTITION def/NAME/VERSION of every definition a saga record runs on
runs_on() { python3 -c '
import json, sys
for line in sys.stdin:
    p, o, k, v = line.rstrip("\n").split("\t", 3)
    if not k.startswith("def/") and v != "NULL":
        s = json.loads(v)["saga"]
        print(p, "def/%s/%d" % (s["definition"], s["version"]), sep="\t")' | sort -u; }
check "definition records: one in each partition per definition its saga records run on" \
  eq "$(awk -F'\t' '$3 ~ /^def\// { print $1 "\t" $3 }' "$DIR/topic.tsv" | sort)" "$(runs_on <"$DIR/topic.tsv")"
check "each definition record equals the dump's (saga_changelog_encode_definition)" \
  eq "$(comm -23 <(awk -F'\t' '$3 ~ /^def\// { print $1 "\t" $3 "\t" $4 }' "$DIR/topic.tsv" | sort) \
        <(awk -F'\t' '$2 ~ /^def\// { print $1 "\t" $2 "\t" $3 }' "$DIR/dump.tsv" | sort) | wc -l)" 0
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

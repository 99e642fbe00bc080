#!/usr/bin/env bash
# The dev broker keeps only the last 5 MB of each partition (librdkafka's
# mock): with one partition, 200 sagas and then 800 more push
# saga.changelog past that, so the first sagas' records are gone. sagad
# loses its data directory and restarts: the restore must say so (an ERROR
# naming the shard, the topic's first offset and why;
# sagad_restore_changelog_truncated 1 in /metrics), restore every saga the
# partition still holds a record of, and keep running. On Apache Kafka the changelog is compacted, never
# truncated: dev broker only.
. "$(dirname "$0")/lib.sh"
export SAGA_PARTITIONS=1
stack_up
publish_starts early 200
check "200 early sagas completed" wait_count "SELECT count(*) FROM sagas WHERE status='completed'" 200 120
publish_starts late 800
check "800 late sagas completed" wait_count "SELECT count(*) FROM sagas WHERE status='completed'" 1000 180
low=$(kcat -b "$BOOTSTRAP" -Q -t saga.changelog:0:-2 2>/dev/null | awk '{print $NF}')
check "the dev broker dropped the changelog's first records (first offset $low)" test "${low:-0}" -gt 0
kill -9 "$SAGAD_PID"
wait_exit sagad 10 || fail "sagad did not die"
# the sagas the partition still holds a record of: what the restore can bring back
kept=$(kcat -b "$BOOTSTRAP" -C -t saga.changelog -p 0 -o beginning -e -q -f '%k\n' -X fetch.wait.max.ms=10 2>/dev/null |
  grep -v '^def/' | sort -u | wc -l)
rm -rf "$SAGA_DB"
"$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart-sagad after the loss"
reload_env
check "the restore names the truncation" \
  grep -q "shard 0: saga.changelog\[0\] starts at offset $low, but the restore needs its records from offset 0" "$DIR/sagad.log"
metrics() { curl -s "$ADMIN_URL/metrics"; }
check "/metrics: sagad_restore_changelog_truncated 1" eval 'metrics | grep -qx "sagad_restore_changelog_truncated{shard=\"0\"} 1"'
early=$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'early-%'")
check "early sagas whose records were dropped are missing ($early of 200 back)" test "$early" -lt 200
check "every saga the partition still holds a record of is back ($kept)" \
  eq "$(saga_sql "SELECT count(*) FROM sagas WHERE status='completed'")" "$kept"
check "$kept of the 1,000 sagas are back" test "$kept" -gt 0
publish_starts after 20
check "sagad runs on: 20 new sagas complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'after%' AND status='completed'" 20 60
echo "$CHECKS checks passed"

#!/usr/bin/env bash
# One sagad per data directory (issue 13), several per consumer group (issue
# 15). A second sagad on the same --data-dir exits non-zero naming the lock
# file and its holder. A second sagad with a data directory of its own in
# the same --group joins it: the shards are shared (each restored from the
# changelog by the instance it goes to), sagas started meanwhile complete
# exactly once, and when it stops the first takes every shard back.
. "$(dirname "$0")/lib.sh"
stack_up
SAGAS=$(sed -n 's/^SAGAS_DIR=//p' "$DIR/.stack-state")
SAGAD=$BUILD_DIR/bin/sagad
publish_starts one1 100
check "the first sagad runs sagas" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'one1-%' AND status='completed'" 100 60

# ---- same data directory (stack.env's SAGA_DB)
rc=0
timeout 30 "$SAGAD" --bootstrap "$BOOTSTRAP" --data-dir "$SAGA_DB" --sagas "$SAGAS" --admin-port 0 \
  --log-format text >"$DIR/second-db.log" 2>&1 || rc=$?
check "a second sagad on the same --data-dir exits non-zero (status $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
check "... saying the data directory is in use, by whom, and which lock file" \
  grep -q "data directory $SAGA_DB is in use by another sagad (pid $SAGAD_PID): its lock file $SAGA_DB/sagad.lock is held" "$DIR/second-db.log"
grep -m1 "in use by" "$DIR/second-db.log" | sed 's/^/  | /'
check "... the lock file holds the first sagad's pid" eq "$(tr -d '\n' <"$SAGA_DB/sagad.lock")" "$SAGAD_PID"

# ---- same consumer group, its own data directory: the shards are shared
extra=(); [ "${KAFKA:-}" = real ] || extra=(-X fetch.wait.max.ms=1)
"$SAGAD" --bootstrap "$BOOTSTRAP" --data-dir "$DIR/second-data" --sagas "$SAGAS" --admin-port 0 \
  --instance-id second --log-format text "${extra[@]}" >"$DIR/second-group.log" 2>&1 &
second=$!
owning() { grep "owning" "$1" | tail -n1 | sed -n 's/.*owning \([0-9]*\) of.*/\1/p'; }
shared() { local a b; a=$(owning "$DIR/sagad.log"); b=$(owning "$DIR/second-group.log")
  [ -n "$a" ] && [ -n "$b" ] && [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ $((a + b)) = "$SAGA_PARTITIONS" ]; }
check "the second sagad joins the group: the two share the $SAGA_PARTITIONS shards" \
  bash -c "for _ in \$(seq 300); do $(declare -f owning shared); DIR='$DIR' SAGA_PARTITIONS=$SAGA_PARTITIONS shared && exit 0; sleep 0.1; done; exit 1"
echo "  | first owns $(owning "$DIR/sagad.log"), second owns $(owning "$DIR/second-group.log")"
check "... the second restored its shards from the changelog" grep -q "restored: [0-9]* records" "$DIR/second-group.log"
check "... with the first sagad's sagas in them" test "$(sql "$DIR/second-data" "SELECT count(*) FROM sagas WHERE id LIKE 'one1-%'")" -gt 0
publish_starts one2 200
SAGA_DBS="$SAGA_DB $DIR/second-data"
check "sagas started while the two share complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'one2-%' AND status='completed'" 200 90
check "... some of them on the second instance" test "$(sql "$DIR/second-data" "SELECT count(*) FROM sagas WHERE id LIKE 'one2-%' AND status='completed'")" -gt 0

# ---- the second stops: the first takes every shard back
kill -TERM "$second"
wait "$second" || fail "the second sagad exited non-zero on SIGTERM"
check "the first owns every shard again" \
  bash -c "for _ in \$(seq 300); do grep -q 'owning $SAGA_PARTITIONS of $SAGA_PARTITIONS' <(tail -n 30 '$DIR/sagad.log') && exit 0; sleep 0.1; done; exit 1"
publish_starts one3 100
SAGA_DBS=$SAGA_DB
check "sagas started after it left complete on the first" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'one3-%' AND status='completed'" 100 90
exactly_once one1 100 1000
exactly_once one2 200 1000
exactly_once one3 100 1000
check "the first sagad is still running" kill -0 "$SAGAD_PID"

# ---- after the first stops, the lock is free again (kill -9: the kernel drops it)
kill -9 "$SAGAD_PID"
wait_exit sagad 10 || fail "sagad did not die"
"$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart of sagad after kill -9 (lock not released?)"
reload_env
check "sagad restarts on its database after kill -9" kill -0 "$SAGAD_PID"
echo "$CHECKS passed, 0 failed"

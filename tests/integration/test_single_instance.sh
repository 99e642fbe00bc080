#!/usr/bin/env bash
# Issue 13 item 4: one sagad per data directory and one per consumer group.
# A second sagad on the same --data-dir exits non-zero naming the lock file and
# its holder; a second sagad with a data directory of its own but the same
# --group refuses at its first assignment and exits non-zero; the first
# keeps running and every saga completes exactly once.
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

# ---- same consumer group, its own data directory
rc=0
timeout 60 "$SAGAD" --bootstrap "$BOOTSTRAP" --data-dir "$DIR/second-data" --sagas "$SAGAS" --admin-port 0 \
  --log-format text >"$DIR/second-group.log" 2>&1 || rc=$?
check "a second sagad in the same --group exits non-zero (status $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
check "... saying the consumer group already has another member" \
  grep -q "the consumer group 'sagad' already has another member" "$DIR/second-group.log"
grep -m1 "another member" "$DIR/second-group.log" | sed 's/^/  | /'
# It may have restored the first sagad's sagas from saga.changelog before the
# group check (the changelog is shared): then each is a copy of the first's,
# never ahead of it. A saga it ran itself would be one the first does not
# have, or further on than the first's.
sql "$SAGA_DB" "SELECT id || ' ' || seq FROM sagas" | sort >"$DIR/first-seq"
sql "$DIR/second-data" "SELECT id || ' ' || seq FROM sagas" | sort >"$DIR/second-seq"
ahead=$(awk 'NR == FNR { first[$1] = $2; next } !($1 in first) || $2 > first[$1] { n++ } END { print n + 0 }' \
  "$DIR/first-seq" "$DIR/second-seq")
check "... and it ran no saga (its $(wc -l <"$DIR/second-seq") saga(s), restored from the changelog, are none ahead of the first's)" eq "$ahead" 0
check "the first sagad is still running" kill -0 "$SAGAD_PID"

# ---- the first keeps its work: sagas published after the refusals complete once
publish_starts one2 200
check "sagas started after the refusals complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'one2-%' AND status='completed'" 200 90
exactly_once one1 100 1000
exactly_once one2 200 1000

# ---- after the first stops, the lock is free again (kill -9: the kernel drops it)
kill -9 "$SAGAD_PID"
wait_exit sagad 10 || fail "sagad did not die"
"$STACK" restart-sagad "$DIR" >>"$DIR/stack-up.out" 2>&1 || fail "restart of sagad after kill -9 (lock not released?)"
reload_env
check "sagad restarts on its database after kill -9" kill -0 "$SAGAD_PID"
echo "$CHECKS passed, 0 failed"

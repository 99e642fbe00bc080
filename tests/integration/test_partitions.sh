#!/usr/bin/env bash
# Partition counts and reply partitions (issue 14, item 1):
#   1. sagad refuses to run (exit 1, one log line naming each topic, its
#      partition count and --partitions) when the replies topic has 4
#      partitions and --partitions is 8;
#   2. with SAGA_PARTITIONS=4 the same topics are accepted, stack.env says
#      SAGA_PARTITIONS=4, sagas complete, every command carries
#      reply_partition = murmur2(saga_id) % 4 and every reply is on it;
#   3. a replies topic that does not exist: Apache Kafka gets it created with
#      8 partitions; the dev broker (librdkafka 2.0.2's mock cluster has no
#      CreateTopics) makes sagad refuse, naming the topic.
. "$(dirname "$0")/lib.sh"
export SAGABROKER_ARGS="${SAGABROKER_ARGS:-} --topics odd.replies" KAFKA_TOPICS=odd.replies KAFKA_PARTITIONS=4
kcat_() { kcat -b "$BOOTSTRAP" -X broker.address.family=v4 -m 10 -X isolation.level=read_committed "$@"; }
refusals() { grep -c "refusing to start" "$DIR/sagad.log" || true; }

# ---- 1. a replies topic with 4 partitions, --partitions 8: refused
export SAGAD_ARGS="--replies-topic odd.replies"
if "$STACK" up "$DIR" >"$DIR/stack-up.out" 2>&1; then fail "stack up succeeded with odd.replies of 4 partitions"; fi
check "sagad exited with status 1" eq "$(exit_status_of sagad)" 1
check "one refusal line" eq "$(refusals)" 1
line=$(grep "refusing to start" "$DIR/sagad.log")
check "it names odd.replies and its 4 partitions" grep -q "'odd.replies' has 4 partitions" <<<"$line"
check "it names saga.start and its 8 partitions" grep -q "'saga.start' has 8 (ok)" <<<"$line"
check "it names --partitions 8" grep -q -- "--partitions 8 partitions" <<<"$line"
check "it is an error" grep -q '"level":"error"' <<<"$line"
"$STACK" down "$DIR" >/dev/null 2>&1 || true

# ---- 2. SAGA_PARTITIONS=4: accepted, commands and replies on the saga's partition
export SAGA_PARTITIONS=4
stack_up
check "stack.env says SAGA_PARTITIONS=4" grep -qx "SAGA_PARTITIONS=4" "$DIR/stack.env"
check "no refusal" eq "$(refusals)" 0
check "sagad logged the check" grep -q "'odd.replies' has 4 (ok)" "$DIR/sagad.log"
publish_starts p 20
check "20 sagas complete" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'p-%' AND status='completed'" 20 90
kcat_ -C -t order.commands -o beginning -e -q -f '%s\n' >"$DIR/commands.txt"
kcat_ -C -t odd.replies -o beginning -e -q -f '%p\t%k\n' >"$DIR/replies.txt"
partition_check() { # FILE KIND: every line's saga has partition murmur2(saga_id) % 4
  python3 - "$1" "$2" <<'PY'
import json, sys
def murmur2(data):
    m, h = 0x5bd1e995, (0x9747b28c ^ len(data)) & 0xffffffff
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xffffffff; k ^= k >> 24; k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    rest = data[4 * n4:]
    if len(rest) == 3: h ^= rest[2] << 16
    if len(rest) >= 2: h ^= rest[1] << 8
    if len(rest) >= 1: h ^= rest[0]; h = (h * m) & 0xffffffff
    h ^= h >> 13; h = (h * m) & 0xffffffff; h ^= h >> 15
    return h
part = lambda sid: (murmur2(sid.encode()) & 0x7fffffff) % 4
bad = seen = 0
spread = set()
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if not line: continue
    if sys.argv[2] == "commands":
        c = json.loads(line)
        if not c.get("saga_id", "").startswith("p-"): continue
        sid, got = c["saga_id"], c.get("reply_partition")
    else:
        got, sid = line.split("\t", 1)
        got = int(got)
        if not sid.startswith("p-"): continue
    seen += 1
    spread.add(part(sid))
    if got != part(sid):
        bad += 1
        print(f"  {sys.argv[2]}: saga {sid}: partition {got}, expected {part(sid)}", file=sys.stderr)
print(f"  {seen} {sys.argv[2]}, {bad} on another partition, saga partitions used: {sorted(spread)}", file=sys.stderr)
sys.exit(0 if seen >= 20 and bad == 0 and len(spread) > 1 else 1)
PY
}
check "every order command carries reply_partition = murmur2(saga_id) % 4" partition_check "$DIR/commands.txt" commands
check "every reply is on partition murmur2(saga_id) % 4 of odd.replies" partition_check "$DIR/replies.txt" replies
"$STACK" down "$DIR" >/dev/null 2>&1 || true

# ---- 3. a replies topic that does not exist
unset SAGA_PARTITIONS
export SAGAD_ARGS="--replies-topic ghost.replies"
if [ "${KAFKA:-}" = real ]; then
  stack_up
  check "sagad created ghost.replies" grep -q "topic 'ghost.replies' does not exist: creating it with 8 partitions" "$DIR/sagad.log"
  check "ghost.replies has 8 partitions" bash -c "kcat -b '$BOOTSTRAP' -X broker.address.family=v4 -L -t ghost.replies | grep -q 'topic \"ghost.replies\" with 8 partitions'"
  check "no refusal" eq "$(refusals)" 0
else
  if "$STACK" up "$DIR" >"$DIR/stack-up.out" 2>&1; then fail "stack up succeeded without ghost.replies"; fi
  check "sagad exited with status 1" eq "$(exit_status_of sagad)" 1
  check "the refusal names ghost.replies as missing" \
    grep -q "'ghost.replies' does not exist and could not be created with 8 partitions" "$DIR/sagad.log"
fi
echo "ok: $CHECKS checks"

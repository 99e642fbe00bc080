#!/usr/bin/env bash
# Retention soak (issue 13 item 10): sagas run through the whole stack with
# a short sagad --retention while the size of sagad's database file is
# sampled every second. Finished sagas older than the retention are deleted
# (in chunks of 1,000 per transaction) and SQLite reuses their pages, so
# after the first minute the file must stay within RETENTION_SOAK_SLACK
# (20%) of its size then. Also: a removed saga is reported as past
# retention by sagactl show, and nothing is left open.
#
#   BUILD_DIR=build tests/soak/retention.sh                  # short form (ctest it_retention_soak)
#   RETENTION_SOAK_SAGAS=200000 RETENTION_SOAK_RETENTION=1m RETENTION_SOAK_RATE=closed \
#     BUILD_DIR=build tests/soak/retention.sh                # the figure in docs/BENCHMARKS.md
#
# Environment: RETENTION_SOAK_SAGAS (10000), RETENTION_SOAK_RETENTION (10s),
# RETENTION_SOAK_RATE (100 starts/s, open loop; "closed": as fast as the
# stack goes, 200 in flight), RETENTION_SOAK_BASELINE (60 s after the first
# start), RETENTION_SOAK_SLACK (20 %), KAFKA=real (Apache Kafka instead of
# the dev broker).
set -euo pipefail
SAGA_SOURCE_DIR=${SAGA_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD_DIR=$(readlink -f "${BUILD_DIR:-$SAGA_SOURCE_DIR/build}")
export SAGA_SOURCE_DIR BUILD_DIR
IT_NAME=retention_soak
# shellcheck disable=SC1091
. "$SAGA_SOURCE_DIR/tests/integration/lib.sh"
N=${RETENTION_SOAK_SAGAS:-10000}
RETENTION=${RETENTION_SOAK_RETENTION:-10s}
RATE=${RETENTION_SOAK_RATE:-100}
BASELINE=${RETENTION_SOAK_BASELINE:-60}
SLACK=${RETENTION_SOAK_SLACK:-20}
for w in ORDER INVENTORY PAYMENT NOTIFICATION; do export "${w}_WORKER_LOG_LEVEL=warn"; done
export SAGAD_ARGS="--retention $RETENTION --dedup-retention 1m ${SAGAD_ARGS:-}"
echo "retention soak: $N sagas, --retention $RETENTION, rate $RATE; $DIR"
stack_up

# ---- the sampler: seconds since the first start, bytes of sagad's shard
# files (SAGA_DB is its data directory), of their -wal files, sagas rows
sampler() {
  local t0=$1
  while [ ! -e "$DIR/soak.stop" ]; do
    local now db wal
    now=$(date +%s.%N)
    db=$(stat -c %s "$SAGA_DB"/shard-*.db 2>/dev/null | awk '{s += $1} END {print s + 0}')
    wal=$(stat -c %s "$SAGA_DB"/shard-*.db-wal 2>/dev/null | awk '{s += $1} END {print s + 0}')
    echo "$(python3 -c "print(f'{$now - $t0:.1f}')") $db $wal" >>"$DIR/sizes.txt"
    sleep 1
  done
}
SAMPLER=""
stop_sampler() { touch "$DIR/soak.stop"; [ -z "$SAMPLER" ] || wait "$SAMPLER" 2>/dev/null || true; }
trap 'rc=$?; set +e; stop_sampler; (exit $rc); it_cleanup' EXIT
trap 'exit 143' TERM INT

X=(); [ "${KAFKA:-}" = real ] || X=(-X fetch.wait.max.ms=1)
if [ "$RATE" = closed ]; then LOAD=(--closed 200); else LOAD=(--rate "$RATE"); fi
: >"$DIR/sizes.txt"
t0=$(date +%s.%N)
sampler "$t0" &
SAMPLER=$!
rc=0
"$BUILD_DIR/bin/sagabench" --bootstrap "$BOOTSTRAP" --admin-url "$ADMIN_URL" --sagad-pid "$SAGAD_PID" \
  --count "$N" "${LOAD[@]}" --warmup 0 --timeout 120 --label retention-soak "${X[@]}" \
  >"$DIR/bench.out" 2> >(grep -v CONFWARN >"$DIR/bench.err") || rc=$?
sed 's/^/  | /' "$DIR/bench.out" | tail -n 12
check "sagabench ran all $N sagas (status $rc)" eq "$rc" 0
elapsed=$(python3 -c "import time; print(int(time.time() - $t0))")
# Let the last ones pass their retention, then one more sample.
sleep "$(python3 -c "
import re
m = re.fullmatch(r'(\d+)(ms|s|m|h)', '$RETENTION')
n, u = int(m[1]), m[2]
print(min(120, n * {'ms': 0.001, 's': 1, 'm': 60, 'h': 3600}[u] + 3))")"
stop_sampler
echo "ok - $N sagas in ${elapsed} s"
[ "$elapsed" -gt "$BASELINE" ] || fail "the run lasted ${elapsed} s, not more than the ${BASELINE} s baseline: raise RETENTION_SOAK_SAGAS or lower the rate"

python3 - "$DIR/sizes.txt" "$BASELINE" "$SLACK" >"$DIR/verdict.txt" <<'PY'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
base_t, slack = float(sys.argv[2]), float(sys.argv[3])
after = [r for r in rows if r[0] >= base_t]
base = after[0][1]
peak = max(r[1] for r in after)
final = rows[-1][1]
wal_peak = max(r[2] for r in rows)
mib = lambda b: f"{b / 1048576:.1f} MiB"
ok = peak <= base * (1 + slack / 100)
print(f"{'PASS' if ok else 'FAIL'} db at {after[0][0]:.0f} s {mib(base)}, peak after it {mib(peak)} "
      f"({(peak / base - 1) * 100:+.1f}%), final {mib(final)}; wal peak {mib(wal_peak)}; "
      f"{len(rows)} samples over {rows[-1][0]:.0f} s")
# the curve, every 10th sample
for r in rows[::max(1, len(rows) // 20)]:
    print(f"  t={r[0]:6.0f} s  db={mib(r[1]):>10}  wal={mib(r[2]):>10}")
PY
cat "$DIR/verdict.txt"
check "the database file stays within ${SLACK}% of its size after ${BASELINE} s" grep -q '^PASS' "$DIR/verdict.txt"

metric() { curl -s "$ADMIN_URL/metrics" | sed -n "s/^sagad_$1_total //p"; }
pruned=$(metric sagas_pruned)
left=$(saga_sql "SELECT count(*) FROM sagas")
open=$(saga_sql "SELECT count(*) FROM sagas WHERE status NOT IN ('completed','compensated','compensation_failed')")
echo "ok - sagas pruned: $pruned; rows left in sagas: $left ($open open)"
check "sagad pruned the finished sagas past retention" test "${pruned:-0}" -ge $((N / 2))
check "no saga is left open" eq "$open" 0
check "no orphan steps, history or timers" eq "$(saga_sql "SELECT (SELECT count(*) FROM steps WHERE saga_id NOT IN (SELECT id FROM sagas)) + (SELECT count(*) FROM history WHERE saga_id NOT IN (SELECT id FROM sagas)) + (SELECT count(*) FROM timers WHERE saga_id NOT IN (SELECT id FROM sagas))")" 0
first=$(kcat -b "$BOOTSTRAP" -C -X isolation.level=read_committed -t saga.events -o beginning -c 1 -q -f '%k' 2>/dev/null || true)
if [ -n "$first" ]; then
  out=$("$BUILD_DIR/bin/sagactl" --url "$ADMIN_URL" show "$first" 2>&1) && src=0 || src=$?
  echo "  | $out"
  check "sagactl show of a removed saga ($first) says it is past retention" \
    test "$src" = 1 -a -n "$(echo "$out" | grep 'removed after the retention period')"
fi
echo "$CHECKS passed, 0 failed"

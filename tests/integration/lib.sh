# Helpers shared by the integration tests (sourced). Each test runs a whole
# stack (scripts/stack) in its own temporary directory with this build's
# binaries; on failure the directory and its logs are kept and their tails
# printed.
set -euo pipefail

: "${SAGA_SOURCE_DIR:?set by ctest}"
: "${BUILD_DIR:?set by ctest}"
export BUILD_DIR
STACK="$SAGA_SOURCE_DIR/scripts/stack"
IT_NAME=${IT_NAME:-$(basename "$0" .sh)}
DIR=$(mktemp -d "/tmp/sagad-$IT_NAME-XXXXXX")
CHECKS=0

it_cleanup() { # [STATUS]: the test's exit status ($? by default)
  local rc=${1:-$?}
  "$STACK" down "$DIR" >/dev/null 2>&1 || true
  if [ $rc -eq 0 ]; then
    rm -rf "$DIR"
  else
    echo "FAILED ($IT_NAME); logs kept in $DIR" >&2
    for f in "$DIR"/*.log; do [ -f "$f" ] && { echo "---- tail $f" >&2; tail -n 15 "$f" >&2; }; done
  fi
  exit $rc
}
trap it_cleanup EXIT
# it_on_exit 'COMMANDS': runs COMMANDS (their failure ignored) before
# it_cleanup when the test exits, keeping the test's exit status (a trap
# 'kill ...; it_cleanup' would hand it_cleanup kill's status: a failed test
# would pass).
it_on_exit() { trap "rc=\$?; { $1; } 2>/dev/null || true; it_cleanup \$rc" EXIT; }

fail() { echo "FAIL: $*" >&2; exit 1; }
check() { # description, command...
  local what=$1; shift
  if "$@"; then CHECKS=$((CHECKS + 1)); echo "ok - $what"; else fail "$what"; fi
}
eq() { [ "$1" = "$2" ] || { echo "  expected '$2', got '$1'" >&2; return 1; }; }

stack_up() {
  "$STACK" up "$DIR" >"$DIR/stack-up.out" 2>&1 || { cat "$DIR/stack-up.out" >&2; fail "stack up"; }
  # shellcheck disable=SC1091
  . "$DIR/stack.env"
}
reload_env() { . "$DIR/stack.env"; }

# admin_post PATH [BODY] [CURL_ARGS...]: POST to the admin API as sagactl
# does (the bearer token from $SAGA_ADMIN_TOKEN_FILE, which stack.env
# exports, and a JSON body, {} by default); prints the HTTP status, the
# answer goes to $DIR/resp.
admin_post() {
  local path=$1 body=${2:-'{}'}; shift; [ $# -gt 0 ] && shift
  curl -s -o "$DIR/resp" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $(cat "$SAGA_ADMIN_TOKEN_FILE")" -H 'Content-Type: application/json' \
    --data-binary "$body" "$@" "$ADMIN_URL$path"
}

# shard_prelude DIR: SQL that attaches the shard files of sagad's data
# directory (DIR/shard-NNN.db; at most 10, SQLite's limit) and makes temp
# views sagas, steps, history, ... over all of them, so that queries written
# for one database read the whole data directory.
shard_prelude() { shard_prelude_files "$1"/shard-*.db; }
shard_prelude_files() {
  local n=0 f t j sel out=""
  for f in "$@"; do [ -f "$f" ] || continue; out+="ATTACH '$f' AS s$n;"; n=$((n + 1)); done
  [ $n -gt 0 ] || { echo "no shard files in $*" >&2; return 1; }
  for t in sagas steps history timers outbox outbox_parked dedup definitions paused_topics; do
    sel=""
    for ((j = 0; j < n; j++)); do sel+="${sel:+ UNION ALL }SELECT * FROM s$j.$t"; done
    [ $t = definitions ] && sel="SELECT DISTINCT * FROM ($sel)" # every shard holds every definition
    out+="CREATE TEMP VIEW $t AS $sel;"
  done
  printf '%s' "$out"
}
# sql DB_OR_DATA_DIR QUERY: a database file, or sagad's data directory (all shards).
sql() {
  if [ -d "$1" ]; then
    local prelude; prelude=$(shard_prelude "$1") || return 1
    sqlite3 -batch -noheader -cmd ".timeout 5000" -cmd "$prelude" :memory: "$2"
  else
    sqlite3 -batch -noheader -cmd ".timeout 5000" "$1" "$2"
  fi
}
# cluster_shards: with several instances (SAGA_DBS), the newest copy of each
# shard among their data directories (highest changelog marker), as sagactl
# audit picks it; one path per line.
cluster_shards() {
  local d f name off
  declare -A pick=() pickoff=()
  for d in $SAGA_DBS; do
    for f in "$d"/shard-*.db; do
      [ -f "$f" ] || continue
      name=${f##*/}
      off=$(sqlite3 -batch -noheader -cmd ".timeout 5000" "$f" \
        "SELECT coalesce((SELECT value FROM shard_meta WHERE key = 'changelog_offset'), -1)" 2>/dev/null || echo -2)
      if [ -z "${pick[$name]:-}" ] || [ "$off" -gt "${pickoff[$name]}" ]; then pick[$name]=$f; pickoff[$name]=$off; fi
    done
  done
  for name in "${!pick[@]}"; do echo "${pick[$name]}"; done | sort
}
# saga_sql SQL: on sagad's shards — of the whole cluster when SAGA_DBS lists several data directories.
saga_sql() {
  if [ "$(wc -w <<<"${SAGA_DBS:-}")" -gt 1 ]; then
    local prelude; mapfile -t files < <(cluster_shards)
    prelude=$(shard_prelude_files "${files[@]}") || return 1
    sqlite3 -batch -noheader -cmd ".timeout 5000" -cmd "$prelude" :memory: "$1"
  else sql "$SAGA_DB" "$1"; fi
}
# saga_sql_each SQL: runs SQL (a write: the views above are read-only) on every shard file.
saga_sql_each() { local f; for f in "$SAGA_DB"/shard-*.db; do sql "$f" "$1"; done; }
# outbox_empty: no shard holds an outbox row (everything delivered); wait_outbox: waits 20 s for it.
outbox_empty() { [ "$(saga_sql_each "SELECT count(*) FROM outbox" | awk '{ n += $1 } END { print n + 0 }')" = 0 ]; }
wait_outbox() { for _ in $(seq 200); do outbox_empty && return 0; sleep 0.1; done; return 1; }

# publish_starts PREFIX COUNT [CUSTOMER] [SKU] [AMOUNT]: start events with
# saga ids PREFIX-1..COUNT through Kafka (kcat), keyed by saga id.
publish_starts() {
  local prefix=$1 count=$2 customer=${3:-c-1} sku=${4:-sku-1} amount=${5:-1000}
  local file="$DIR/starts-$prefix.txt"
  python3 - "$prefix" "$count" "$customer" "$sku" "$amount" >"$file" <<'PY'
import json, sys
prefix, count, customer, sku, amount = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
for n in range(1, count + 1):
    sid = f"{prefix}-{n}"
    ev = {"type": "saga.start", "message_id": f"m-{sid}", "definition": "order_fulfillment",
          "saga_id": sid, "input": {"order_id": f"o-{sid}", "customer": customer, "amount": amount,
                                    "items": [{"sku": sku, "qty": 1}]}}
    print(f"{sid}\t{json.dumps(ev, separators=(',', ':'))}")
PY
  kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t' -X linger.ms=5 -l "$file"
}

# wait_count SQL EXPECTED TIMEOUT_S: polls sagad's DB until SQL returns EXPECTED.
wait_count() {
  local q=$1 want=$2 limit=$3 got="" start=$SECONDS
  while [ $((SECONDS - start)) -lt "$limit" ]; do
    got=$(saga_sql "$q" 2>/dev/null || true)
    [ "$got" = "$want" ] && return 0
    sleep 0.1
  done
  echo "  timeout after ${limit}s: '$q' = '$got', want '$want'" >&2
  return 1
}

terminal_count() { saga_sql "SELECT count(*) FROM sagas WHERE id LIKE '$1-%' AND status IN ('completed','compensated','compensation_failed')"; }

# The exit status `scripts/stack` recorded for NAME.
exit_status_of() { cat "$DIR/$1.exit" 2>/dev/null || echo "none"; }

wait_exit() { # NAME TIMEOUT_S
  local start=$SECONDS
  while [ ! -e "$DIR/$1.exit" ] && [ $((SECONDS - start)) -lt "$2" ]; do sleep 0.2; done
  [ -e "$DIR/$1.exit" ]
}

# Every saga history is gap-free: seq 1..max with no hole.
history_gap_free() {
  eq "$(saga_sql "SELECT count(*) FROM (SELECT saga_id, count(*) c, max(seq) m, min(seq) lo FROM history GROUP BY saga_id) WHERE c != m OR lo != 1")" 0
}

# exactly_once PREFIX COUNT AMOUNT: the workers' ledgers show that each of
# the COUNT completed sagas PREFIX-n ran every action exactly once in effect,
# and that stock and money are conserved.
exactly_once() {
  local p=$1 n=$2 amount=$3
  check "$p: sagad has $n sagas, all completed" \
    eq "$(saga_sql "SELECT count(*) || '/' || sum(status='completed') FROM sagas WHERE id LIKE '$p-%'")" "$n/$n"
  check "$p: every step of every saga succeeded once (attempt counts aside)" \
    eq "$(saga_sql "SELECT count(*) FROM steps WHERE saga_id LIKE '$p-%' AND status='succeeded'")" "$((n * 4))"
  check "$p: one created order per saga" \
    eq "$(sql "$ORDER_DB" "SELECT count(*) || '/' || count(DISTINCT saga_id) FROM orders WHERE saga_id LIKE '$p-%' AND status='created'")" "$n/$n"
  check "$p: one reservation per saga" \
    eq "$(sql "$INVENTORY_DB" "SELECT count(*) || '/' || count(DISTINCT saga_id) FROM reservations WHERE saga_id LIKE '$p-%' AND status='reserved'")" "$n/$n"
  check "$p: one charge per saga, amounts add up" \
    eq "$(sql "$PAYMENT_DB" "SELECT count(*) || '/' || count(DISTINCT saga_id) || '/' || sum(amount) FROM charges WHERE saga_id LIKE '$p-%' AND status='charged'")" "$n/$n/$((n * amount))"
  check "$p: one notification per saga" \
    eq "$(sql "$NOTIFICATION_DB" "SELECT count(*) || '/' || count(DISTINCT saga_id) FROM notifications WHERE saga_id LIKE '$p-%'")" "$n/$n"
  check "stock conserved: taken = reserved" \
    eq "$(sql "$INVENTORY_DB" "SELECT (SELECT sum(initial - available) FROM stock) = (SELECT coalesce(sum(qty), 0) FROM reservations WHERE status='reserved')")" 1
  check "money conserved: balances lost = charged" \
    eq "$(sql "$PAYMENT_DB" "SELECT (SELECT sum(initial - balance) FROM accounts) = (SELECT coalesce(sum(amount), 0) FROM charges WHERE status='charged')")" 1
  check "every saga's history is gap-free" history_gap_free
}

# cluster_owned: the shards each running instance owns (the sum of its
# /metrics sagad_shard_owned), in ADMIN_URLS order, e.g. "3 3 2".
cluster_owned() {
  local u out=""
  for u in $ADMIN_URLS; do
    out+="$(curl -s "$u/metrics" | awk '/^sagad_shard_owned\{/ { n += $2 } END { print n + 0 }') "
  done
  echo "${out% }"
}
# wait_cluster_owned N: until N instances run (stack.env reread) and own
# every shard between them, each some (30 s).
wait_cluster_owned() {
  local _ o=""
  for _ in $(seq 300); do
    reload_env
    o=$(cluster_owned)
    [ "$(wc -w <<<"$o")" = "$1" ] && ! grep -qw 0 <<<"$o" &&
      [ "$(tr ' ' '\n' <<<"$o" | awk '{ n += $1 } END { print n }')" = "$SAGA_PARTITIONS" ] && return 0
    sleep 0.1
  done
  echo "  shards owned per instance: $o (want $SAGA_PARTITIONS over $1, each some)" >&2
  return 1
}

# mixed_outcomes TOTAL: the outcome of a mixed run of TOTAL sagas (a multiple
# of 10) published with publish_starts as 80% ok* (complete), 10% oos*
# (customer c-2, sku-empty: out of stock) and 10% dec* (c-broke: payment
# declined), saga ids starting with those prefixes: waits (SECONDS, 300 by default) until all
# have ended, then checks that every ok saga completed and every oos/dec one
# compensated with OUT_OF_STOCK/PAYMENT_DECLINED, that no order was created
# twice, that exactly the completed sagas were charged (once each), that
# stock and money are conserved, and that every history is gap-free.
mixed_outcomes() { # TOTAL [SECONDS to wait for the last to end, 300]
  local TOTAL=$1
  check "all $TOTAL sagas ended" wait_count "SELECT count(*) FROM sagas WHERE status IN ('completed','compensated')" "$TOTAL" "${2:-300}"
  check "every ok saga completed" eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'ok%' AND status='completed'")" $((TOTAL * 8 / 10))
  check "every out-of-stock saga compensated for that reason" \
    eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'oos%' AND status='compensated' AND error_code='OUT_OF_STOCK'")" $((TOTAL / 10))
  check "every declined saga compensated for that reason" \
    eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'dec%' AND status='compensated' AND error_code='PAYMENT_DECLINED'")" $((TOTAL / 10))
  check "no order created twice" eq "$(sql "$ORDER_DB" "SELECT count(*) FROM (SELECT saga_id FROM orders GROUP BY saga_id HAVING count(*) > 1)")" 0
  check "one charge per completed saga, none for the others" \
    eq "$(sql "$PAYMENT_DB" "SELECT count(*) || '/' || count(DISTINCT saga_id) || '/' || sum(saga_id LIKE 'ok%') FROM charges WHERE status='charged'")" "$((TOTAL * 8 / 10))/$((TOTAL * 8 / 10))/$((TOTAL * 8 / 10))"
  check "stock conserved" eq "$(sql "$INVENTORY_DB" "SELECT (SELECT sum(initial - available) FROM stock) = (SELECT coalesce(sum(qty), 0) FROM reservations WHERE status='reserved')")" 1
  check "money conserved" eq "$(sql "$PAYMENT_DB" "SELECT (SELECT sum(initial - balance) FROM accounts) = (SELECT coalesce(sum(amount), 0) FROM charges WHERE status='charged')")" 1
  check "every history gap-free" history_gap_free
}

# one_actor_per_attempt: saga.events read to its end (committed records only)
# shows no step attempt acted on by two owners: each event id
# (<saga>/event/<seq>) always has the same payload (a resend after a
# failover is the same bytes) and no (saga, step, attempt, event) has two
# ids. Prints the number of distinct events; the first offenders to stderr.
one_actor_per_attempt() {
  kcat -b "$BOOTSTRAP" -C -t saga.events -o beginning -e -q -X isolation.level=read_committed -f '%s\n' |
    python3 -c '
import json, sys
by_id, by_key, bad = {}, {}, []
for line in sys.stdin:
    e = json.loads(line)
    mid = e["message_id"]
    if by_id.setdefault(mid, line) != line:
        bad.append(f"{mid}: two different payloads")
    if e.get("step"):
        key = (e["saga_id"], e["step"], (e.get("detail") or {}).get("attempt"), e["event"])
        by_key.setdefault(key, set()).add(mid)
bad += [f"{k}: recorded as {sorted(v)}" for k, v in by_key.items() if len(v) > 1]
for b in bad[:5]:
    print("  " + b, file=sys.stderr)
print(len(by_id) if not bad else f"{len(bad)} offenders")'
}

#!/usr/bin/env bash
# Search attributes (issue 16): 10,000 sagas of a definition that declares
# order_id, customer and amount; GET /v1/sagas?search.NAME=VALUE (alone,
# combined with another attribute and a status, paged with the cursor) and
# `sagactl list --search` find exactly the sagas whose input has that value
# — the truth is read from the sagas' stored inputs, not from the index.
. "$(dirname "$0")/../e2e/e2e_lib.sh"
N=${SEARCH_SAGAS:-10000}
e2e_env
cp "$(dirname "$0")"/sagas/searchable_order.json "$DIR/sagas/"
stack_up

python3 - "$N" >"$DIR/starts.txt" <<'PY'
import json, sys
for n in range(1, int(sys.argv[1]) + 1):
    sid = f"srch-{n}"
    ev = {"type": "saga.start", "message_id": f"m-{sid}", "definition": "searchable_order", "saga_id": sid,
          "input": {"order_id": f"o-{n % 2500}", "customer": f"c-{n % 7}", "amount": n % 3}}
    print(f"{sid}\t{json.dumps(ev, separators=(',', ':'))}")
PY
kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t' -X linger.ms=5 -l "$DIR/starts.txt"
check "all $N sagas started" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'srch-%'" "$N" 180

# ids_of QUERY: every id GET /v1/sagas?QUERY lists, following next_cursor, sorted.
ids_of() {
  python3 - "$ADMIN_URL" "$1" <<'PY'
import json, sys, urllib.parse, urllib.request
base, query = sys.argv[1], sys.argv[2]
ids, cursor = [], None
while True:
    q = query + ("&cursor=" + urllib.parse.quote(cursor) if cursor else "")
    doc = json.load(urllib.request.urlopen(f"{base}/v1/sagas?{q}"))
    ids += [s["id"] for s in doc["sagas"]]
    cursor = doc["next_cursor"]
    if not cursor:
        break
if len(ids) != len(set(ids)):
    sys.exit("an id came twice")
print("\n".join(sorted(ids)))
PY
}
truth() { saga_sql "SELECT id FROM sagas WHERE id LIKE 'srch-%' AND $1 ORDER BY id" | sort; }

for o in o-17 o-0 o-2499; do
  check "search.order_id=$o finds exactly its 4 sagas" \
    eq "$(ids_of "search.order_id=$o&limit=500")" "$(truth "json_extract(input, '$.order_id') = '$o'")"
done
[ "$(ids_of "search.order_id=o-17&limit=500" | wc -l)" = 4 ] || fail "o-17 should have 4 sagas"
check "two attributes and a status: all must hold" \
  eq "$(ids_of "search.customer=c-3&search.amount=2&status=running&limit=500")" \
     "$(truth "json_extract(input, '$.customer') = 'c-3' AND json_extract(input, '$.amount') = 2 AND status = 'running'")"
check "search.customer=c-5 pages (limit 500) to exactly its sagas" \
  eq "$(ids_of "search.customer=c-5&limit=500")" "$(truth "json_extract(input, '$.customer') = 'c-5'")"
check "a value no saga has finds none" eq "$(ids_of "search.order_id=o-2500")" ""
check "a finished status finds none of them" eq "$(ids_of "search.order_id=o-17&status=completed")" ""
t=$(curl -s -o /dev/null -w '%{time_total}' "$ADMIN_URL/v1/sagas?search.order_id=o-1234")
echo "GET /v1/sagas?search.order_id=o-1234 among $N sagas: ${t}s"
check "the saga shows its attributes" \
  eq "$(curl -s "$ADMIN_URL/v1/sagas/srch-17" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["search"], sort_keys=True))')" \
     '{"amount": "2", "customer": "c-3", "order_id": "o-17"}'
"$SAGACTL" --url "$ADMIN_URL" list --search order_id=o-17 >"$DIR/list.txt"
check "sagactl list --search prints the 4 sagas" eq "$(grep -c '^  srch-' "$DIR/list.txt")" 4
"$SAGACTL" --url "$ADMIN_URL" show srch-17 >"$DIR/show.txt"
check "sagactl show prints them" grep -q '^Search *order_id=o-17 customer=c-3 amount=2$' "$DIR/show.txt"
check "a bad attribute name is a 400 naming it" \
  eq "$(curl -s -o "$DIR/bad.json" -w '%{http_code}' "$ADMIN_URL/v1/sagas?search.no-such=1")/$(grep -c 'search.no-such' "$DIR/bad.json")" "400/1"
echo "$CHECKS passed, 0 failed"

#!/usr/bin/env bash
# Issue 15 item 3, lists and stats over the cluster: with three sagad
# instances sharing the shards, GET /v1/stats and GET /v1/sagas (paged with
# its cursor) on any instance cover every shard — each instance asks the
# owners of the shards it lacks (?shards=) and merges. scope=local keeps to
# the instance's own shards; the three local views add up to the whole.
# While an owner is gone (kill -9) the answer is a 503 naming the shards,
# never a short count; once the group reassigns them, the whole again.
. "$(dirname "$0")/lib.sh"
export SAGAD_INSTANCES=3
stack_up
check "the $SAGA_PARTITIONS shards are shared by the three instances" wait_cluster_owned 3
read -r -a urls <<<"$ADMIN_URLS"

publish_starts ok 200
publish_starts dec 40 c-broke sku-2
TOTAL=240
check "all $TOTAL sagas ended" wait_count "SELECT count(*) FROM sagas WHERE status IN ('completed','compensated')" "$TOTAL" 180

stats_of() { # URL [QUERY]: "total completed compensated order_fulfillment-total steps-total"
  curl -sf "$1/v1/stats${2:+?$2}" | python3 -c '
import json, sys
d = json.load(sys.stdin)
s = d["sagas"]
print(s["total"], s["by_status"]["completed"], s["by_status"]["compensated"],
      s["by_definition"].get("order_fulfillment", {}).get("total", 0), d["steps"]["total"])'
}
steps=$(saga_sql "SELECT count(*) FROM steps")
for u in "${urls[@]}"; do
  check "GET /v1/stats on $u counts every shard: $TOTAL sagas, 200 completed, 40 compensated, $steps steps" \
    eq "$(stats_of "$u")" "$TOTAL 200 40 $TOTAL $steps"
done
sum=0 each=""
for u in "${urls[@]}"; do
  n=$(stats_of "$u" scope=local | cut -d' ' -f1)
  each+="$n " sum=$((sum + n))
done
check "scope=local: each instance counts only its shards ($each), which add up to $TOTAL" \
  bash -c "[ $sum = $TOTAL ] && ! grep -qw -e 0 -e $TOTAL <<<'$each'"
# /metrics stays per instance: which shards it owns and their lag (all
# consumed by now: 0 for each owned shard, once the loop published it).
shard_lag() { # URL -> "owned lagging shards-with-a-lag-gauge"
  curl -s "$1/metrics" | awk -F'[{}" ]+' '/^sagad_shard_owned\{/ { own[$3] = $4 } /^sagad_shard_lag\{/ { lag[$3] = $4 }
    END { for (s in own) if (own[s] == 1) { n++; if (lag[s] != "0") bad++ }; print n + 0, bad + 0, length(lag) }'
}
lag_settled() { # URL
  local _ got
  for _ in $(seq 50); do
    got=$(shard_lag "$1")
    set -- "$1" $got
    [ "$2" -gt 0 ] && [ "$3" = 0 ] && [ "$4" = "$SAGA_PARTITIONS" ] && return 0
    sleep 0.1
  done
  echo "  owned, lagging, shards with a lag gauge: $got" >&2
  return 1
}
for u in "${urls[@]}"; do
  check "/metrics on $u: sagad_shard_lag for each of the $SAGA_PARTITIONS shards, 0 on those it owns" lag_settled "$u"
done
code=$(curl -s -o "$DIR/resp" -w '%{http_code}' "${urls[0]}/v1/stats?scope=everywhere")
check "scope=everywhere: 400 naming the parameter" bash -c "[ $code = 400 ] && grep -q '\"parameter\":\"scope\"' '$DIR/resp'"
# shards=OWN,99 with OWN a shard instance 1 owns: the list is read in order
# and a shard this instance does not own answers 503 (ask again), so the
# first entry is one it owns (which shards it gets is the group's choice).
own=$(curl -s "${urls[0]}/metrics" | awk -F'[{}" ]+' '/^sagad_shard_owned\{/ && $4 == 1 { print $3; exit }')
code=$(curl -s -o "$DIR/resp" -w '%{http_code}' "${urls[0]}/v1/sagas?shards=$own,99")
check "shards=$own,99 (shard $own owned by instance 1): 400 naming the parameter" \
  bash -c "[ $code = 400 ] && grep -q '\"parameter\":\"shards\"' '$DIR/resp'"

# Every page of GET /v1/sagas through instance 2, 37 at a time: each saga
# once, in (updated_at, id) order, the same set sagad's shards hold.
list_all() { # URL QUERY -> "count unique ordered" and the ids in $DIR/ids.txt
  python3 - "$1" "$2" "$DIR/ids.txt" <<'PY'
import json, sys, urllib.request, urllib.parse
from datetime import datetime
url, query, out = sys.argv[1], sys.argv[2], sys.argv[3]
ids, keys, cursor, pages = [], [], None, 0
while True:
    q = query + ("&cursor=" + urllib.parse.quote(cursor) if cursor else "")
    d = json.load(urllib.request.urlopen(f"{url}/v1/sagas?{q}"))
    pages += 1
    for s in d["sagas"]:
        ids.append(s["id"])
        t = datetime.fromisoformat(s["updated_at"].replace("Z", "+00:00")).timestamp()
        keys.append((t, s["id"].encode()))
    cursor = d["next_cursor"]
    if not cursor or pages > 1000:
        break
open(out, "w").write("\n".join(sorted(ids)) + "\n")
ordered = all(keys[i] > keys[i + 1] for i in range(len(keys) - 1))
print(len(ids), len(set(ids)), "ordered" if ordered else "unordered")
PY
}
check "GET /v1/sagas?limit=37 on instance 2, every page: $TOTAL sagas, each once, newest first" \
  eq "$(list_all "${urls[1]}" limit=37)" "$TOTAL $TOTAL ordered"
check "... the very sagas the shards hold" \
  eq "$(sort "$DIR/ids.txt" | md5sum)" "$(saga_sql "SELECT id FROM sagas" | sort | md5sum)"
check "GET /v1/sagas?status=compensated&limit=7 on instance 3: the 40 declined ones" \
  eq "$(list_all "${urls[2]}" 'status=compensated&limit=7')" "40 40 ordered"
check "... all dec-*" eq "$(grep -c '^dec-' "$DIR/ids.txt")" 40
n=$("$BUILD_DIR/bin/sagactl" --url "${urls[2]}" list --all --limit 50 | grep -cE '^ *(ok|dec)-[0-9]+ ' || true)
check "sagactl list --all against instance 3 lists all $TOTAL" eq "$n" "$TOTAL"

# The web view's requests carry "Sagad-Proxy: 1": a saga of another
# instance's shard is fetched from its owner instead of a 307 (a browser
# does not follow one to another origin).
for id in ok-7 dec-3 nosuch-1; do
  want=$(saga_sql "SELECT status FROM sagas WHERE id = '$id'")
  plain="" proxied=""
  for u in "${urls[@]}"; do
    plain+="$(curl -s -o /dev/null -w '%{http_code}' "$u/v1/sagas/$id") "
    proxied+="$(curl -s -o "$DIR/resp" -w '%{http_code}' -H 'Sagad-Proxy: 1' "$u/v1/sagas/$id"):"
    proxied+="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("status") or d["error"]["code"])' "$DIR/resp") "
  done
  if [ -n "$want" ]; then
    check "GET /v1/sagas/$id: its owner 200, the others 307 ($plain)" eq "$(tr ' ' '\n' <<<"$plain" | sort | tr '\n' ' ')" " 200 307 307 "
    check "... with Sagad-Proxy: 1, every instance answers 200 $want ($proxied)" eq "$proxied" "200:$want 200:$want 200:$want "
  else
    check "GET /v1/sagas/$id (no such saga), with Sagad-Proxy: 1: 404 from every instance ($proxied)" \
      eq "$proxied" "404:not_found 404:not_found 404:not_found "
  fi
done
code=$(curl -s -o "$DIR/resp" -w '%{http_code}' -H 'Sagad-Proxy: 1' "${urls[0]}/ui")
check "GET /ui: 200, and the page sends Sagad-Proxy" bash -c "[ $code = 200 ] && grep -q 'Sagad-Proxy' '$DIR/resp'"

# An owner killed: its shards cannot be read until the group gives them to
# another instance. Every answer meanwhile is whole or a 503 naming shards.
"$STACK" kill-sagad "$DIR" 3 >>"$DIR/stack-up.out" 2>&1 || fail "kill-sagad 3"
seen503=0 short=""
for _ in $(seq 40); do
  code=$(curl -s -o "$DIR/resp" -w '%{http_code}' "${urls[0]}/v1/stats")
  if [ "$code" = 503 ]; then
    grep -q '"shard":' "$DIR/resp" && seen503=$((seen503 + 1))
  elif [ "$code" = 200 ]; then
    t=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sagas"]["total"])' "$DIR/resp")
    [ "$t" = "$TOTAL" ] || short+="$t "
  else
    short+="HTTP$code "
  fi
  sleep 0.25
done
check "while instance 3's shards had no owner: 503s naming a shard ($seen503 of 40), never a short count (${short:-none})" \
  bash -c "[ $seen503 -gt 0 ] && [ -z '$short' ]"
sed 's/^/  | /' "$DIR/resp"; echo
check "the two instances left own every shard" wait_cluster_owned 2
whole_again() { # URL: the registry of the instance asked may learn the new owners a moment after they own
  local _ got=""
  for _ in $(seq 100); do
    got=$(stats_of "$1" 2>/dev/null || true)
    [ "$got" = "$TOTAL 200 40 $TOTAL $steps" ] && return 0
    sleep 0.1
  done
  echo "  last answer: '$got' ($(curl -s "$1/v1/stats" | head -c 300))" >&2
  return 1
}
for u in "${urls[0]}" "${urls[1]}"; do
  check "GET /v1/stats on $u whole again (within 10 s)" whole_again "$u"
done
echo "$CHECKS passed, 0 failed"

#!/usr/bin/env bash
# The web view (GET /ui, docs/ui/index.html) in headless Chromium against a
# real stack: the list shows every saga with its status and the header the
# counts; filters and the cursor page work; a saga's page shows its steps,
# their statuses, compensations and the history; ids are text, never markup;
# screenshots of the list and of a timeline are real PNGs with content.
#
# Needs Debian's `chromium`; installs it (apt-get) when missing and FAILS
# when it cannot. UI_ARTIFACTS=DIR keeps the DOM dumps and screenshots there.
IT_NAME=ui_web_view
. "$SAGA_SOURCE_DIR/tests/integration/lib.sh"

# ---- Chromium ----
if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium not found: installing Debian's chromium package"
  t0=$SECONDS
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
  export DEBIAN_FRONTEND=noninteractive
  { $SUDO apt-get install -y chromium || { $SUDO apt-get update && $SUDO apt-get install -y chromium; }; } \
    >"$DIR/chromium-install.log" 2>&1 || true
  command -v chromium >/dev/null 2>&1 || {
    tail -n 20 "$DIR/chromium-install.log" >&2
    fail "chromium is not installed and 'apt-get install -y chromium' failed (log above): the web view test needs Debian's chromium package"
  }
  echo "chromium installed in $((SECONDS - t0)) s"
fi
echo "using $(chromium --version 2>/dev/null | head -n1)"

PROFILE=$(mktemp -d "$DIR/chromium-profile-XXXXXX")
OUT=${UI_ARTIFACTS:-$DIR/ui}
mkdir -p "$OUT"
chrome() { # chromium in headless mode with a throw-away profile, its noise in a log
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$PROFILE" "$@" 2>>"$DIR/chromium.log"
}
dump() { # URL FILE: the DOM after the page's fetches finished
  chrome --virtual-time-budget=5000 --dump-dom "$1" >"$2" || fail "chromium --dump-dom $1"
  [ -s "$2" ] || fail "chromium printed no DOM for $1"
}
shot() { # URL FILE
  rm -f "$2"
  chrome --virtual-time-budget=5000 --window-size=1280,900 --screenshot="$2" "$1" >/dev/null ||
    fail "chromium --screenshot $1"
}

# ---- the stack and a few sagas: three completed, two compensated, one with markup in its id ----
# (plus, at the end, sagas of a definition with search attributes)
mkdir -p "$DIR/sagas"
cp "$SAGA_SOURCE_DIR"/sagas/*.json "$SAGA_SOURCE_DIR"/tests/integration/sagas/searchable_order.json \
  "$SAGA_SOURCE_DIR"/tests/e2e/sagas/bundle*.json "$DIR/sagas/"
export SAGAS_DIR="$DIR/sagas"
stack_up
# (ids are printable ASCII without blanks or '/': markup, but no attributes)
XSS='x<u>&amp;<marquee>'
publish_starts ok 3
publish_starts oos 1 c-1 sku-empty
publish_starts broke 1 c-broke sku-1
publish_starts "$XSS" 1
check "all 6 sagas ended" wait_count "SELECT count(*) FROM sagas WHERE status IN ('completed','compensated')" 6 60
check "two compensated" eq "$(saga_sql "SELECT group_concat(id) FROM (SELECT id FROM sagas WHERE status='compensated' ORDER BY id)")" "broke-1,oos-1"

UI="$ADMIN_URL/ui"
check "GET /ui is HTML" eq "$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$UI")" "200 text/html; charset=utf-8"
check "GET /ui/ is the same page" eq "$(curl -s "$UI/" | cmp - <(curl -s "$UI") && echo same)" same

# page.py FILE CHECK [ARGS]: reads a DOM dump, prints what CHECK asks for.
page() { python3 "$SAGA_SOURCE_DIR/tests/ui/page.py" "$@"; }
db_rows() { # [WHERE ...] [LIMIT ...]: the list as the API orders it
  saga_sql "SELECT id || '=' || status FROM sagas ${1:-} ORDER BY updated_at DESC, id DESC ${2:-}"; }

# ---- the list ----
t_chrome=$SECONDS
dump "$UI" "$OUT/list.html"
check "list: the page finished loading without an error" eq "$(page "$OUT/list.html" state)" "ready"
check "list: every saga, newest first, with its status" eq "$(page "$OUT/list.html" rows)" "$(db_rows "")"
check "list: the id with markup is text, not elements" eq "$(page "$OUT/list.html" tags u,marquee,script)" "u=0 marquee=0 script=1"
check "list: ...and shown as typed" eq "$(page "$OUT/list.html" has-text "$XSS-1")" "yes"
check "header: counts from /v1/stats" eq "$(page "$OUT/list.html" stats)" \
  "total=6 scheduled=0 running=0 completed=4 compensating=0 compensated=2 compensation_failed=0"
check "list: one page only, 'next page' disabled" eq "$(page "$OUT/list.html" attr next-page disabled)" "disabled"

dump "$UI#status=compensated" "$OUT/list-compensated.html"
check "filter status=compensated" eq "$(page "$OUT/list-compensated.html" rows)" "$(db_rows "WHERE status='compensated'")"
dump "$UI#error_code=PAYMENT_DECLINED&definition=order_fulfillment" "$OUT/list-declined.html"
check "filter error_code + definition" eq "$(page "$OUT/list-declined.html" rows)" "broke-1=compensated"
check "list: the error code and message are shown" eq "$(page "$OUT/list-declined.html" has-text PAYMENT_DECLINED)" "yes"
dump "$UI#error_code=NOPE" "$OUT/list-none.html"
check "filter with no match says so" eq "$(page "$OUT/list-none.html" rows)/$(page "$OUT/list-none.html" has-text "No saga matches")" "/yes"

# ---- cursor pages ----
dump "$UI#limit=4" "$OUT/page1.html"
check "page 1 of 2: four sagas" eq "$(page "$OUT/page1.html" rows)" "$(db_rows "" "LIMIT 4")"
check "page 1: 'next page' enabled" eq "$(page "$OUT/page1.html" attr next-page disabled)" ""
cursor=$(curl -s "$ADMIN_URL/v1/sagas?limit=4" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')
dump "$UI#limit=4&cursor=$cursor" "$OUT/page2.html"
check "page 2: the other two" eq "$(page "$OUT/page2.html" rows)" "$(db_rows "" "LIMIT 4 OFFSET 4")"
check "page 2: 'next page' disabled, 'first page' enabled" \
  eq "$(page "$OUT/page2.html" attr next-page disabled)/$(page "$OUT/page2.html" attr first-page disabled)" "disabled/"

# ---- a compensated saga's timeline ----
steps_of() { saga_sql "SELECT name || '=' || status FROM steps WHERE saga_id='$1' ORDER BY idx"; }
comp_steps_of() { saga_sql "SELECT DISTINCT step FROM history WHERE saga_id='$1' AND event LIKE 'compensation.%' ORDER BY step"; }
dump "$UI#saga=broke-1" "$OUT/saga-broke-1.html"
check "timeline: loaded" eq "$(page "$OUT/saga-broke-1.html" state)" "ready"
check "timeline: the saga's status" eq "$(page "$OUT/saga-broke-1.html" text s-status)" "compensated"
check "timeline: every step with its status, in order" eq "$(page "$OUT/saga-broke-1.html" steps)" "$(steps_of broke-1)"
check "timeline: a step failed and others were compensated" \
  eq "$(steps_of broke-1 | grep -c '=failed$')/$(steps_of broke-1 | grep -c '=compensated$')" "1/2"
check "timeline: a compensation bar for each compensated step" \
  eq "$(page "$OUT/saga-broke-1.html" comp-bars)" "$(comp_steps_of broke-1)"
check "timeline: an action bar for each step that started" \
  eq "$(page "$OUT/saga-broke-1.html" action-bars)" "$(saga_sql "SELECT count(*) FROM steps WHERE saga_id='broke-1' AND started_at > 0")"
check "timeline: the failure's code" eq "$(page "$OUT/saga-broke-1.html" has-text PAYMENT_DECLINED)" "yes"
check "history: one row per event" eq "$(page "$OUT/saga-broke-1.html" history)" \
  "$(saga_sql "SELECT seq || '=' || event FROM history WHERE saga_id='broke-1' ORDER BY seq")"

# the query form of the address, and an id that needs escaping in the path
dump "$UI?saga=ok-2" "$OUT/saga-ok-2.html"
check "timeline via ?saga=: every step succeeded" eq "$(page "$OUT/saga-ok-2.html" steps)" "$(steps_of ok-2)"
check "timeline via ?saga=: no compensation" eq "$(page "$OUT/saga-ok-2.html" comp-bars)" ""
xss_hash=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$XSS-1")
dump "$UI#saga=$xss_hash" "$OUT/saga-xss.html"
check "timeline of the id with markup: loaded, id as text" \
  eq "$(page "$OUT/saga-xss.html" state)/$(page "$OUT/saga-xss.html" text s-id)/$(page "$OUT/saga-xss.html" tags img)" "ready/$XSS-1/img=0"
dump "$UI#saga=no-such-saga" "$OUT/saga-missing.html"
check "an unknown saga shows the API's error" \
  eq "$(page "$OUT/saga-missing.html" state)/$(page "$OUT/saga-missing.html" has-text "no saga 'no-such-saga'")" "error/yes"

# ---- screenshots ----
shot "$UI" "$OUT/list.png"
shot "$UI#saga=broke-1" "$OUT/timeline.png"
check "list screenshot: a 1280x900 PNG with content" python3 "$SAGA_SOURCE_DIR/tests/ui/png_check.py" "$OUT/list.png" 1280 900
check "timeline screenshot: a 1280x900 PNG with content, action (green) and compensation (purple) bars" \
  python3 "$SAGA_SOURCE_DIR/tests/ui/png_check.py" "$OUT/timeline.png" 1280 900 1a7f37 8250df

# ---- search attributes: the search box and the saga's attributes ----
for n in 1 2 3; do
  printf 'srch-%s\t{"type":"saga.start","message_id":"m-srch-%s","definition":"searchable_order","saga_id":"srch-%s","input":{"order_id":"o-%s","customer":"c-%s"}}\n' \
    "$n" "$n" "$n" "$((n % 2))" "$n"
done | kcat -b "$BOOTSTRAP" -P -t saga.start -K $'\t'
check "three searchable sagas started" wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'srch-%'" 3 30
dump "$UI#search=order_id%3Do-1" "$OUT/list-search.html"
check "search box: order_id=o-1 lists exactly its sagas" eq "$(page "$OUT/list-search.html" rows)" \
  "$(db_rows "WHERE json_extract(input, '$.order_id') = 'o-1'")"
dump "$UI#search=order_id" "$OUT/list-search-bad.html"
check "search box without NAME=VALUE: the API's error" \
  eq "$(page "$OUT/list-search-bad.html" state)/$(page "$OUT/list-search-bad.html" has-text "unknown parameter")" "error/yes"
dump "$UI#saga=srch-2" "$OUT/saga-search.html"
check "saga view: its search attributes" eq "$(page "$OUT/saga-search.html" has-text "customer=c-2")" "yes"

# ---- a delayed start: scheduled, with its begin time ----
printf 'later-1\t{"type":"saga.start","message_id":"m-later-1","definition":"order_fulfillment","saga_id":"later-1","delay":"1h","input":{"order_id":"o-later"}}\n' |
  kcat -b "$BOOTSTRAP" -P -t saga.start -K $'\t'
check "the delayed saga is scheduled" wait_count "SELECT status FROM sagas WHERE id='later-1'" scheduled 30
dump "$UI#status=scheduled" "$OUT/list-scheduled.html"
check "status filter 'scheduled' lists it" eq "$(page "$OUT/list-scheduled.html" rows)" "later-1=scheduled"
dump "$UI#saga=later-1" "$OUT/saga-later.html"
check "saga view: scheduled, with the time it begins" \
  eq "$(page "$OUT/saga-later.html" text s-status)/$(page "$OUT/saga-later.html" has-text "begins")" "scheduled/yes"

# ---- a parent saga and its children link to each other ----
printf 'bd-1\t{"type":"saga.start","message_id":"m-bd-1","definition":"bundle","saga_id":"bd-1","input":{"order_id":"o-bd","customer":"c-1","fee_customer":"c-1","amount":100,"items":[{"sku":"sku-1","qty":1}]}}\n' |
  kcat -b "$BOOTSTRAP" -P -t saga.start -K $'\t'
check "the bundle completed" wait_count "SELECT status FROM sagas WHERE id='bd-1'" completed 60
dump "$UI#saga=bd-1" "$OUT/saga-parent.html"
check "parent view: links to both children" \
  eq "$(python3 - "$OUT/saga-parent.html" <<'PY'
import re, sys
print(" ".join(sorted(re.findall(r'data-child="([^"]+)"', open(sys.argv[1]).read()))))
PY
)" "bd-1.order bd-1.payment"
dump "$UI#saga=bd-1.order" "$OUT/saga-child.html"
check "child view: links to its parent" grep -q 'data-parent="bd-1"' "$OUT/saga-child.html"

# ---- a paused topic shows in the header ----
check "pause payment.commands" eq "$(admin_post /v1/topics/payment.commands/pause '{"reason":"maintenance"}')" 202
for _ in $(seq 40); do [ "$(curl -s "$ADMIN_URL/v1/stats" | grep -c '"paused_topics":{"payment.commands"')" = 1 ] && break; sleep 0.25; done
dump "$UI" "$OUT/list-paused.html"
check "header: the paused topic" eq "$(page "$OUT/list-paused.html" paused)" "payment.commands"
echo "chromium part took $((SECONDS - t_chrome)) s"
echo "$CHECKS passed, 0 failed"

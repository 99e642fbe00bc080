#!/usr/bin/env bash
# Hostile input to the admin API of the default stack (no token configured;
# issue 13 items 3 and 7): what a web page or a rebinding DNS name could
# send is refused, while sagactl, reading the token file sagad made, works.
# Each refused request is checked to have changed nothing.
. "$(dirname "$0")/lib.sh"
stack_up

code() { curl -s -o "$DIR/resp" -w '%{http_code}' "$@"; }
json_error() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["error"]["code"])' "$DIR/resp"; }
no_saga() { eq "$(saga_sql "SELECT count(*) FROM sagas WHERE id='$1'")" 0; }
charge='{"definition":"order_fulfillment","saga_id":"evil-1","input":{"order_id":"o-evil","customer":"c-1","amount":900,"items":[{"sku":"sku-1","qty":1}]}}'

# -- the token file and stack.env
TOKEN_FILE=$SAGA_DB/admin.token # SAGA_DB: sagad's data directory
check "sagad made admin.token in its data directory" test -s "$TOKEN_FILE"
check "mode 0600" eq "$(stat -c %a "$TOKEN_FILE")" 600
check "64 hex digits" grep -qxE '[0-9a-f]{64}' "$TOKEN_FILE"
check "stack.env exports SAGA_ADMIN_TOKEN_FILE" grep -qx "export SAGA_ADMIN_TOKEN_FILE=$TOKEN_FILE" "$DIR/stack.env"
check "and SAGA_ADMIN_URL" grep -qx "export SAGA_ADMIN_URL=$ADMIN_URL" "$DIR/stack.env"
check "the log says where the token is" grep -q "admin token: generated $TOKEN_FILE" "$DIR/sagad.log"
check "the token is not in the log" eq "$(grep -c "$(cat "$TOKEN_FILE")" "$DIR/sagad.log" || true)" 0
TOKEN=$(cat "$TOKEN_FILE")

# -- acceptance: an unauthenticated POST is 401, sagactl works unchanged
check "unauthenticated POST /v1/sagas: 401" \
  eq "$(code -X POST -H 'Content-Type: application/json' -d "$charge" "$ADMIN_URL/v1/sagas")" 401
check "  as JSON" eq "$(json_error)" unauthorized
check "  no saga" no_saga evil-1
check "sagactl start (token from stack.env) is accepted" \
  "$BUILD_DIR/bin/sagactl" start order_fulfillment '{"order_id":"o-ok1","customer":"c-1","amount":100,"items":[{"sku":"sku-1","qty":1}]}' ok-1
check "  the saga completes" wait_count "SELECT status FROM sagas WHERE id='ok-1'" completed 60

# -- the issue's cross-site forms: abort, start a charging saga, reload
kill -STOP "$PAYMENT_WORKER_PID"
publish_starts run 1
check "run-1 waits at charge_payment" \
  wait_count "SELECT status FROM steps WHERE saga_id='run-1' AND name='charge_payment'" running 60
reloads() { grep -c "reload done\|reload refused" "$DIR/sagad.log" || true; }
before=$(reloads)
for ct in application/x-www-form-urlencoded text/plain multipart/form-data; do
  for origin in "" "http://evil.example"; do
    o=(); [ -n "$origin" ] && o=(-H "Origin: $origin")
    want=401; [ -n "$origin" ] && want=403
    check "form abort ($ct${origin:+, Origin $origin}): $want" \
      eq "$(code -X POST -H "Content-Type: $ct" "${o[@]}" --data-binary 'reason=pwned' "$ADMIN_URL/v1/sagas/run-1/abort")" $want
    check "form start of a charging saga ($ct${origin:+, foreign Origin}): $want" \
      eq "$(code -X POST -H "Content-Type: $ct" "${o[@]}" --data-binary "$charge" "$ADMIN_URL/v1/sagas")" $want
    check "form reload ($ct${origin:+, foreign Origin}): $want" \
      eq "$(code -X POST -H "Content-Type: $ct" "${o[@]}" --data-binary 'x=1' "$ADMIN_URL/v1/definitions/reload")" $want
  done
  # even with the token (leaked to a page, say) a non-JSON body is refused
  check "abort with the token but $ct: 415" \
    eq "$(code -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: $ct" --data-binary '{}' "$ADMIN_URL/v1/sagas/run-1/abort")" 415
  check "  as JSON" eq "$(json_error)" unsupported_media_type
  check "start with the token but $ct: 415" \
    eq "$(code -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: $ct" --data-binary "$charge" "$ADMIN_URL/v1/sagas")" 415
done
check "abort with the token from a foreign Origin: 403" \
  eq "$(code -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -H 'Origin: http://evil.example' -d '{}' "$ADMIN_URL/v1/sagas/run-1/abort")" 403
wrong=${TOKEN%?}0; [ "$wrong" != "$TOKEN" ] || wrong=${TOKEN%?}1
check "a wrong token (one digit off): 403" \
  eq "$(code -X POST -H "Authorization: Bearer $wrong" -H 'Content-Type: application/json' -d '{}' "$ADMIN_URL/v1/sagas/run-1/abort")" 403
check "a POST without Content-Type: 415" \
  eq "$(code -X POST -H "Authorization: Bearer $TOKEN" "$ADMIN_URL/v1/definitions/reload")" 415
sleep 1
check "run-1 was not aborted" eq "$(saga_sql "SELECT status FROM sagas WHERE id='run-1'")" running
check "no charging saga was started" no_saga evil-1
check "no reload happened" eq "$(reloads)" "$before"
kill -CONT "$PAYMENT_WORKER_PID"
check "run-1 completes" wait_count "SELECT status FROM sagas WHERE id='run-1'" completed 60

# -- DNS rebinding: a Host that is not this server's
port=${ADMIN_URL##*:}
check "GET with Host: rebind.evil.example: 421" \
  eq "$(code -H 'Host: rebind.evil.example' "$ADMIN_URL/v1/sagas")" 421
check "  as JSON" eq "$(json_error)" misdirected_request
check "POST with Host: rebind.evil.example:$port and the token: 421" \
  eq "$(code -X POST -H "Host: rebind.evil.example:$port" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$charge" "$ADMIN_URL/v1/sagas")" 421
check "  no saga" no_saga evil-1
check "Host: 127.0.0.1.evil.example: 421" eq "$(code -H 'Host: 127.0.0.1.evil.example' "$ADMIN_URL/healthz")" 421
check "Host: localhost:$port is this server (loopback)" eq "$(code -H "Host: localhost:$port" "$ADMIN_URL/healthz")" 200
check "HTTP/1.0 without Host is answered" eq "$(code -0 -H 'Host:' "$ADMIN_URL/healthz")" 200
check "reads stay open on loopback" eq "$(code "$ADMIN_URL/v1/sagas/run-1")" 200
check "the UI's same-origin request is answered" eq "$(code -H "Origin: ${ADMIN_URL}" "$ADMIN_URL/v1/sagas")" 200

# -- oversized requests answer JSON
long=$(head -c 9000 /dev/zero | tr '\0' a)
check "a 9 KB request target: 414" eq "$(code "$ADMIN_URL/v1/sagas/$long")" 414
check "  as JSON" eq "$(json_error)" uri_too_long
hdrs=(); for i in $(seq 20); do hdrs+=(-H "X-Pad-$i: $(head -c 2000 /dev/zero | tr '\0' b)"); done
check "40 KB of headers: 431" eq "$(code "${hdrs[@]}" "$ADMIN_URL/healthz")" 431
check "  as JSON" eq "$(json_error)" headers_too_large

# -- item 7: a version that does not exist
check "POST /v1/sagas with version 99: 422" \
  eq "$(admin_post /v1/sagas '{"definition":"order_fulfillment","version":99,"saga_id":"v99-1","input":{}}')" 422
check "  naming the version" grep -q "no version 99" "$DIR/resp"
check "  no saga" no_saga v99-1
check "version 1 (which exists) is accepted" \
  eq "$(admin_post /v1/sagas '{"definition":"order_fulfillment","version":1,"saga_id":"v1-1","input":{"order_id":"o-v1","customer":"c-1","amount":100,"items":[{"sku":"sku-1","qty":1}]}}')" 202
check "  and completes" wait_count "SELECT status || '/' || version FROM sagas WHERE id='v1-1'" completed/1 60

# -- a restart keeps the token; --admin-host adds a name
kill -TERM "$SAGAD_PID"
check "sagad stopped" wait_exit sagad 30
SAGAD_ARGS="--admin-host sagad.test,proxy.test" "$STACK" restart-sagad "$DIR" >"$DIR/restart.out" 2>&1 ||
  { cat "$DIR/restart.out" >&2; fail "restart-sagad"; }
reload_env
check "the restarted sagad reuses the token" eq "$(cat "$TOKEN_FILE")" "$TOKEN"
check "  and says so" grep -q "admin token: reusing $TOKEN_FILE" "$DIR/sagad.log"
check "sagactl still works" "$BUILD_DIR/bin/sagactl" reload
check "Host: sagad.test (--admin-host) is answered" eq "$(code -H "Host: sagad.test:$port" "$ADMIN_URL/healthz")" 200
check "Host: rebind.evil.example still 421" eq "$(code -H 'Host: rebind.evil.example' "$ADMIN_URL/healthz")" 421

# -- start-up refusals and warnings (sagad exits before it needs Kafka)
other() { "$BUILD_DIR/bin/sagad" --data-dir "$DIR/other-data" --sagas "$SAGA_SOURCE_DIR/sagas" --bootstrap 127.0.0.1:1 --admin-port 0 "$@" 2>&1 & local pid=$!; sleep 2; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
out=$("$BUILD_DIR/bin/sagad" --data-dir "$DIR/other-data" --sagas "$SAGA_SOURCE_DIR/sagas" --bootstrap 127.0.0.1:1 --admin-addr 127.0.0.1.invalid 2>&1 || echo "exit=$?")
check "a host name starting with 127. is not loopback: exit 2 without a token" grep -q "exit=2" <<<"$out"
check "  and says why" grep -q "not a loopback address" <<<"$out"
out=$(other --admin-token "cli-$RANDOM" --log-format text)
check "--admin-token on the command line warns" grep -q "shows in ps" <<<"$out"
echo "$CHECKS passed, 0 failed"

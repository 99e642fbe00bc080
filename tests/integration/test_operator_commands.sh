#!/usr/bin/env bash
# Operator commands through the admin API on the real stack: start over
# HTTP (idempotent on saga_id), abort of a running saga (it compensates),
# the bearer token, and sagad refusing to listen beyond loopback without one.
. "$(dirname "$0")/lib.sh"
echo "t0ken-$RANDOM" >"$DIR/token"
export SAGAD_ARGS="--admin-token-file $DIR/token"
stack_up
AUTH="Authorization: Bearer $(cat "$DIR/token")"
post() { curl -s -o "$DIR/resp" -w '%{http_code}' -X POST -H "$AUTH" -H 'content-type: application/json' "$@"; }
body='{"definition":"order_fulfillment","saga_id":"http-1","input":{"order_id":"o-h1","customer":"c-1","amount":500,"items":[{"sku":"sku-1","qty":1}]}}'
check "POST /v1/sagas answers 202" eq "$(post -d "$body" "$ADMIN_URL/v1/sagas")" 202
check "the saga completes" wait_count "SELECT status FROM sagas WHERE id='http-1'" completed 30
check "a second POST is idempotent (200, same saga)" eq "$(post -d "$body" "$ADMIN_URL/v1/sagas")" 200
check "it reports the saga's status" grep -q '"status":"completed"' "$DIR/resp"
check "no token: 401" eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d "$body" "$ADMIN_URL/v1/sagas")" 401
check "wrong token: 403" eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer x' -d "$body" "$ADMIN_URL/v1/sagas")" 403

ctl() { SAGA_ADMIN_TOKEN_FILE="$DIR/token" "$BUILD_DIR/bin/sagactl" --url "$ADMIN_URL" "$@"; }
check "sagactl start is accepted" ctl start order_fulfillment '{"order_id":"o-c1","customer":"c-1","amount":300,"items":[{"sku":"sku-2","qty":1}]}' ctl-1
check "the saga it started completes" wait_count "SELECT status FROM sagas WHERE id='ctl-1'" completed 30
check "sagactl start with a bad input exits 2" eq "$(ctl start order_fulfillment '[1]' >/dev/null 2>&1; echo $?)" 2
check "sagactl start of an unknown definition exits 1" eq "$(ctl start nope >/dev/null 2>&1; echo $?)" 1
check "sagactl reload is accepted" ctl reload
logged() { local start=$SECONDS; until grep -q "$1" "$DIR/sagad.log"; do [ $((SECONDS - start)) -lt 10 ] || return 1; sleep 0.1; done; }
check "the log says the reload is done" logged "reload done"
kill -STOP "$PAYMENT_WORKER_PID"
publish_starts stuck 1
check "stuck-1 waits at charge_payment" wait_count "SELECT status FROM steps WHERE saga_id='stuck-1' AND name='charge_payment'" running 30
check "sagactl abort is accepted" env SAGA_ADMIN_TOKEN_FILE="$DIR/token" "$BUILD_DIR/bin/sagactl" --url "$ADMIN_URL" abort stuck-1 customer cancelled
kill -CONT "$PAYMENT_WORKER_PID"
check "the aborted saga compensates" wait_count "SELECT status || '/' || error_code || '/' || error_message FROM sagas WHERE id='stuck-1'" "compensated/ABORTED/customer cancelled" 60
check "its charge was refunded" eq "$(sql "$PAYMENT_DB" "SELECT count(*) FROM charges WHERE saga_id='stuck-1' AND status='charged'")" 0
check "abort of a finished saga: 409" eq "$(post "$ADMIN_URL/v1/sagas/stuck-1/abort")" 409
check "retry of a compensated saga: 409" eq "$(post "$ADMIN_URL/v1/sagas/stuck-1/retry")" 409
rc=0; out=$(SAGA_ADMIN_TOKEN_FILE="$DIR/token" "$BUILD_DIR/bin/sagactl" --url "$ADMIN_URL" retry stuck-1 2>&1) || rc=$?
check "sagactl retry of it exits 1" eq "$rc" 1
check "and names the conflict" grep -q "conflict" <<<"$out"
rc=0; "$BUILD_DIR/bin/sagactl" --url "$ADMIN_URL" abort stuck-1 >/dev/null 2>&1 || rc=$?
check "sagactl without the token exits 1 (401)" eq "$rc" 1

out=$("$BUILD_DIR/bin/sagad" --admin-addr 0.0.0.0 --data-dir "$DIR/other-data" --sagas "$SAGA_SOURCE_DIR/sagas" --bootstrap 127.0.0.1:1 2>&1 || echo "exit=$?")
check "without a token sagad refuses to listen beyond loopback" grep -q "exit=2" <<<"$out"
check "and says why" grep -q "without a token" <<<"$out"
echo "$CHECKS passed, 0 failed"

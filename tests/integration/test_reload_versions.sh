#!/usr/bin/env bash
# Definition versions and SIGHUP reload: a saga running on version 1 finishes
# on version 1 while new sagas start on version 2; a bad file, or a changed
# file under a version already used, changes nothing on reload.
. "$(dirname "$0")/lib.sh"
mkdir -p "$DIR/sagas"
cp "$SAGA_SOURCE_DIR/sagas/order_fulfillment.json" "$DIR/sagas/"
export SAGAS_DIR="$DIR/sagas"
stack_up

hup_and_wait() { # expected log text [how: hup (default) or http]
  local before; before=$(grep -c "$1" "$DIR/sagad.log" || true)
  if [ "${2:-hup}" = http ]; then
    [ "$(admin_post /v1/definitions/reload)" = 202 ] || return 1
  else
    kill -HUP "$SAGAD_PID"
  fi
  local start=$SECONDS
  while [ "$(grep -c "$1" "$DIR/sagad.log" || true)" -le "$before" ]; do
    [ $((SECONDS - start)) -lt 10 ] || return 1
    sleep 0.1
  done
}

# Saga A stays in flight on v1: the payment worker is frozen.
kill -STOP "$PAYMENT_WORKER_PID"
publish_starts va 1
check "A waits at charge_payment on v1" wait_count "SELECT status FROM steps WHERE saga_id='va-1' AND name='charge_payment'" running 30

cp "$SAGA_SOURCE_DIR/tests/fixtures/order_fulfillment_v2.json" "$DIR/sagas/order_fulfillment_v2.json"
check "SIGHUP reload succeeds" hup_and_wait "reload done"
publish_starts vb 1
check "B starts on version 2" wait_count "SELECT version FROM sagas WHERE id='vb-1'" 2 30
kill -CONT "$PAYMENT_WORKER_PID"
check "A completes" wait_count "SELECT status FROM sagas WHERE id='va-1'" completed 60
check "B completes" wait_count "SELECT status FROM sagas WHERE id='vb-1'" completed 60
check "A finished on version 1 with its notify step" eq "$(saga_sql "SELECT version || '/' || (SELECT count(*) FROM steps WHERE saga_id='va-1' AND status='succeeded') FROM sagas WHERE id='va-1'")" "1/4"
check "B ran version 2's three steps" eq "$(saga_sql "SELECT count(*) FROM steps WHERE saga_id='vb-1' AND status='succeeded'")" 3

# v1's file goes away: v1 is retained for running sagas, v2 serves new ones.
rm "$DIR/sagas/order_fulfillment.json"
check "reload through POST /v1/definitions/reload without the v1 file succeeds" hup_and_wait "reload done" http
check "v1 kept, retired" grep -q "order_fulfillment v1 retained for running sagas" "$DIR/sagad.log"

# A bad file: the reload is refused and the log says why.
echo '{"name": "broken", "version": 1, "steps": [{"name": "x"}]}' >"$DIR/sagas/broken.json"
check "reload with a bad file is refused" hup_and_wait "reload refused"
check "the log names the file and the problem" grep -q "broken.json:/steps/0: missing required field" "$DIR/sagad.log"
rm "$DIR/sagas/broken.json"

# A changed file under a version already used: refused too.
sed -i 's/"timeout": "5m"/"timeout": "6m"/' "$DIR/sagas/order_fulfillment_v2.json"
check "changing version 2 in place is refused" hup_and_wait "reload refused"
check "the log says to bump the version" grep -q "order_fulfillment version 2 changed since it was first used" "$DIR/sagad.log"
publish_starts vc 1
check "new sagas still start on version 2" wait_count "SELECT version || status FROM sagas WHERE id='vc-1'" 2completed 60
echo "$CHECKS passed, 0 failed"

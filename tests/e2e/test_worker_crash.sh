#!/usr/bin/env bash
# Worker crash and restart mid-run: the payment worker abort()s after 15
# commands (--crash-after, before the replies of its batch are sent); it is
# started again with scripts/stack start-one. Every saga completes, every
# charge ran once.
. "$(dirname "$0")/e2e_lib.sh"
e2e_env
export PAYMENT_WORKER_ARGS="--crash-after 15"
stack_up
publish_starts crash 40 c-1 sku-1 1000
check "the payment worker crashed" wait_exit payment-worker 60
check "it died of abort() (status 134)" eq "$(exit_status_of payment-worker)" 134
check "sagas are stuck meanwhile" test "$(saga_sql "SELECT count(*) FROM sagas WHERE id LIKE 'crash-%' AND status='completed'")" -lt 40
PAYMENT_WORKER_ARGS="" "$STACK" start-one payment-worker "$DIR" >"$DIR/start-one.out" 2>&1 ||
  { cat "$DIR/start-one.out" >&2; fail "start-one payment-worker"; }
reload_env
check "all 40 sagas completed after the restart" \
  wait_count "SELECT count(*) FROM sagas WHERE id LIKE 'crash-%' AND status='completed'" 40 120
exactly_once crash 40 1000
check "sagactl audit passes" audit_passes
finish

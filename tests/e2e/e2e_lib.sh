# Helpers of the end-to-end scenarios (sourced after nothing else): the
# integration helpers (tests/integration/lib.sh: stack_up, sql, saga_sql,
# check, eq, wait_count, exactly_once, ...) plus what a scenario checks about
# one saga: its final status, its history in order, and the audit.
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091
. "$E2E_DIR/../integration/lib.sh"
SAGACTL="$BUILD_DIR/bin/sagactl"

# Definitions of the scenarios: the repository's plus tests/e2e/sagas/*.json
# (short timeouts and retry budgets), in $DIR/sagas; the e2e seed adds the
# trigger customers (c-flaky, c-slow) of the payment worker.
e2e_env() {
  mkdir -p "$DIR/sagas"
  cp "$SAGA_SOURCE_DIR"/sagas/*.json "$E2E_DIR"/sagas/*.json "$DIR/sagas/"
  export SAGAS_DIR="$DIR/sagas" SEED="$E2E_DIR/seed.json"
}

# publish_saga ID DEFINITION CUSTOMER SKU AMOUNT [ORDER_ID]: one start event.
publish_saga() {
  local id=$1 def=$2 customer=$3 sku=$4 amount=$5 order=${6:-o-$1}
  printf '%s\t{"type":"saga.start","message_id":"m-%s","definition":"%s","saga_id":"%s","input":{"order_id":"%s","customer":"%s","amount":%s,"items":[{"sku":"%s","qty":1}]}}\n' \
    "$id" "$id" "$def" "$id" "$order" "$customer" "$amount" "$sku" |
    kcat -b "$BOOTSTRAP" -P -X partitioner=murmur2_random -t saga.start -K $'\t'
}

status_of() { saga_sql "SELECT status FROM sagas WHERE id='$1'"; }
wait_status() { # ID STATUS TIMEOUT_S
  wait_count "SELECT status FROM sagas WHERE id='$1'" "$2" "$3"
}

# The saga's history as "event[:step]" words in seq order.
history_of() {
  saga_sql "SELECT group_concat(e, ' ') FROM (SELECT event || coalesce(':' || step, '') e FROM history WHERE saga_id='$1' ORDER BY seq)"
}

# in_history ID EVENT...: each EVENT ("event" or "event:step") is in the
# saga's history, after the previous one.
in_history() {
  local id=$1; shift
  local h; h=" $(history_of "$id") "
  local rest=$h ev
  for ev in "$@"; do
    case $rest in
      *" $ev "*) rest=${rest#*" $ev "}; rest=" $rest" ;;
      *) echo "  '$ev' missing (or out of order) in the history of $id:$h" >&2; return 1 ;;
    esac
  done
}

not_in_history() { # ID EVENT: EVENT is nowhere in the history
  local h; h=" $(history_of "$1") "
  case $h in *" $2 "*) echo "  '$2' in the history of $1:$h" >&2; return 1 ;; esac
}

# sagactl audit over this stack's databases; prints its report; the exit
# status is the audit's.
audit() {
  local rc=0 d dbs=()
  for d in ${SAGA_DBS:-$SAGA_DB}; do dbs+=(--saga-db "$d"); done # a cluster: every instance's data directory
  "$SAGACTL" audit "${dbs[@]}" --order-db "$ORDER_DB" --inventory-db "$INVENTORY_DB" \
    --payment-db "$PAYMENT_DB" --notification-db "$NOTIFICATION_DB" "$@" >"$DIR/audit.out" 2>&1 || rc=$?
  sed 's/^/  | /' "$DIR/audit.out"
  return $rc
}
audit_passes() { audit; }
audit_says() { grep -qF -- "$1" "$DIR/audit.out" || { echo "  audit report lacks '$1'" >&2; return 1; }; }

finish() { echo "$CHECKS passed, 0 failed"; }

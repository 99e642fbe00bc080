#!/usr/bin/env bash
# Issue 15 item 4: scripts/stack with SAGAD_INSTANCES=3 (sagad, sagad-2,
# sagad-3 in one consumer group). The script's mechanics: SAGAD_INSTANCES
# checked; each instance with its own files, data directory, admin port and
# --instance-id; one admin token (DIR/admin.token) for all; stack.env's
# SAGAD_INSTANCES, ADMIN_URLS, SAGAD_K_PID, SAGA_DBS; kill-sagad DIR 2,
# status, restart-sagad DIR 2, down. Needs sagad's cluster mode (several
# instances in one group, --instance-id).
. "$(dirname "$0")/lib.sh"

# ---- SAGAD_INSTANCES is checked before anything starts
for bad in 0 abc 10; do
  rc=0
  SAGAD_INSTANCES=$bad "$STACK" up "$DIR/bad" >"$DIR/bad.out" 2>&1 || rc=$?
  check "SAGAD_INSTANCES=$bad refused (exit $rc)" test "$rc" -ne 0
  check "... with a message naming it" grep -q "SAGAD_INSTANCES='$bad': the number of sagad instances must be a whole number from 1 to 9" "$DIR/bad.out"
  check "... and nothing started" test ! -e "$DIR/bad/.stack-state" -a ! -e "$DIR/bad/sagabroker.pid"
done

# ---- up with three instances
export SAGAD_INSTANCES=3
stack_up
check "stack.env: SAGAD_INSTANCES=3" eq "$SAGAD_INSTANCES" 3
check ".stack-state keeps the count" grep -qx 'INSTANCES=3' "$DIR/.stack-state"
read -r -a urls <<<"$ADMIN_URLS"
check "ADMIN_URLS has 3 URLs ($ADMIN_URLS)" eq "${#urls[@]}" 3
check "... all different" eq "$(printf '%s\n' "${urls[@]}" | sort -u | wc -l)" 3
check "... the first is ADMIN_URL" eq "${urls[0]}" "$ADMIN_URL"
for k in 1 2 3; do
  check "instance $k answers GET /healthz" eq "$(curl -s -o /dev/null -w '%{http_code}' "${urls[k - 1]}/healthz")" 200
done
pids=("$SAGAD_1_PID" "$SAGAD_2_PID" "$SAGAD_3_PID")
check "SAGAD_1_PID..SAGAD_3_PID: 3 distinct pids (${pids[*]})" eq "$(printf '%s\n' "${pids[@]}" | grep -c '^[0-9]\+$' ) $(printf '%s\n' "${pids[@]}" | sort -u | wc -l)" "3 3"
check "SAGAD_PID is instance 1's" eq "$SAGAD_PID" "$SAGAD_1_PID"
for k in 1 2 3; do check "instance $k (pid ${pids[k - 1]}) runs" kill -0 "${pids[k - 1]}"; done
check "SAGA_DBS: every instance's data directory" eq "$SAGA_DBS" "$DIR/sagad-data $DIR/sagad-2-data $DIR/sagad-3-data"
check "SAGA_DB is instance 1's" eq "$SAGA_DB" "$DIR/sagad-data"
for name in sagad sagad-2 sagad-3; do
  check "$name: its own files" test -s "$DIR/$name.pid" -a -s "$DIR/$name.ready" -a -d "$DIR/$name-data"
  k=${name#sagad-}; [ "$name" != sagad ] || k=1
  check "$name: started with --instance-id sagad-$k and the shared token" \
    grep -q -- "--data-dir $DIR/$name-data .*--instance-id sagad-$k --admin-token-file $DIR/admin.token" "$DIR/$name.log"
done

# ---- one admin token for all
check "SAGA_ADMIN_TOKEN_FILE is DIR/admin.token" eq "$SAGA_ADMIN_TOKEN_FILE" "$DIR/admin.token"
check "... 32 hex digits" grep -qxE '[0-9a-f]{32}' "$DIR/admin.token"
check "... mode 600" eq "$(stat -c %a "$DIR/admin.token")" 600
post_reload() { # URL TOKEN -> HTTP status
  curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $2" \
    -H 'Content-Type: application/json' --data-binary '{}' "$1/v1/definitions/reload"
}
for k in 1 2 3; do
  check "instance $k takes the shared token (POST reload: 202)" eq "$(post_reload "${urls[k - 1]}" "$(cat "$SAGA_ADMIN_TOKEN_FILE")")" 202
  check "... and refuses another one (403)" eq "$(post_reload "${urls[k - 1]}" 0123456789abcdef0123456789abcdef)" 403
done

"$STACK" status "$DIR" >"$DIR/status.out" 2>&1 || { cat "$DIR/status.out" >&2; fail "status while all run"; }
for name in sagad sagad-2 sagad-3; do
  check "status lists $name running" grep -qE "^$name +running +pid [0-9]+, ready" "$DIR/status.out"
done

# ---- out of range
rc=0; "$STACK" restart-sagad "$DIR" 4 >"$DIR/k4.out" 2>&1 || rc=$?
check "restart-sagad DIR 4 refused with 3 instances" test "$rc" -ne 0
check "... saying so" grep -q "this stack runs 3 sagad instance(s)" "$DIR/k4.out"

# ---- kill-sagad DIR 2
"$STACK" kill-sagad "$DIR" 2 >>"$DIR/stack-up.out" 2>&1 || fail "kill-sagad $DIR 2"
check "kill-sagad: instance 2 recorded exit 137" eq "$(exit_status_of sagad-2)" 137
check "... its process is gone" bash -c "! kill -0 ${pids[1]} 2>/dev/null"
check "... instances 1 and 3 still run" kill -0 "${pids[0]}" "${pids[2]}"
rc=0; "$STACK" status "$DIR" >"$DIR/status.out" 2>&1 || rc=$?
check "status is non-zero with instance 2 dead" test "$rc" -ne 0
check "... and reports sagad-2 exited (137)" grep -qE "^sagad-2 +exited +status 137 \(pid was ${pids[1]}\)" "$DIR/status.out"
reload_env
check "stack.env rewritten: ADMIN_URLS without instance 2" eq "$ADMIN_URLS" "${urls[0]} ${urls[2]}"

# ---- restart-sagad DIR 2
"$STACK" restart-sagad "$DIR" 2 >>"$DIR/stack-up.out" 2>&1 || fail "restart-sagad $DIR 2"
reload_env
check "restart-sagad: instance 2 has a new pid ($SAGAD_2_PID, was ${pids[1]})" test "$SAGAD_2_PID" != "${pids[1]}"
check "... that runs" kill -0 "$SAGAD_2_PID"
check "... the others kept theirs" eq "$SAGAD_1_PID $SAGAD_3_PID" "${pids[0]} ${pids[2]}"
read -r -a urls2 <<<"$ADMIN_URLS"
check "ADMIN_URLS has 3 URLs again" eq "${#urls2[@]}" 3
check "... instance 2 answers GET /healthz" eq "$(curl -s -o /dev/null -w '%{http_code}' "${urls2[1]}/healthz")" 200
check "... with the same token" eq "$(post_reload "${urls2[1]}" "$(cat "$SAGA_ADMIN_TOKEN_FILE")")" 202
check "status is zero again" "$STACK" status "$DIR"

# ---- down
check "down exits 0" "$STACK" down "$DIR"
for name in sagad sagad-2 sagad-3; do check "$name exited 0" eq "$(exit_status_of "$name")" 0; done
echo "$CHECKS passed, 0 failed"

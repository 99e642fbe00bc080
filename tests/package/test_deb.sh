#!/usr/bin/env bash
# The Debian package, end to end without touching this machine's system:
# builds it (cpack), checks its control data (name, dependencies on the
# runtime libraries, conffiles, maintainer scripts), that apt can resolve its
# dependencies (apt-get --simulate), extracts it into a temporary root, runs
# `sagad --help` and `man sagad` from the extracted files, then starts the
# installed sagabroker, sagad and the four workers the way their systemd units
# say (ExecStart, EnvironmentFile, WorkingDirectory), runs a saga to
# completion and one to compensation, and checks both with the installed
# sagactl (show, health, audit). The settings the test overrides, and why:
# the Kafka address (a private dev broker), the admin port (0: tests run side
# by side), /var/lib (a temporary directory standing in for StateDirectory=).
# Label `package`. The long form on a fresh Debian 12 root: docs/OPERATIONS.md.
set -euo pipefail
: "${SAGA_SOURCE_DIR:?set by ctest}"
: "${BUILD_DIR:?set by ctest}"

WORK=$(mktemp -d /tmp/sagad-test_deb-XXXXXX)
ROOT=$WORK/root     # the package's files
STATE=$WORK/var/lib # stands in for /var/lib (the units' StateDirectory=)
PIDS=()
CHECKS=0
cleanup() {
  local rc=$?
  local pid i
  # the broker (PIDS[0]) last: a worker that closes its consumer while the
  # broker is gone waits for the broker; kill -9 a program still up after 20 s
  for pid in "${PIDS[@]:1}"; do kill "$pid" 2>/dev/null || true; done
  for i in $(seq 200); do
    for pid in "${PIDS[@]:1}"; do kill -0 "$pid" 2>/dev/null && break; pid=""; done
    [ -z "$pid" ] && break; sleep 0.1
  done
  for pid in "${PIDS[@]:1}"; do kill -9 "$pid" 2>/dev/null || true; done
  [ ${#PIDS[@]} -eq 0 ] || kill "${PIDS[0]}" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ $rc -eq 0 ] && [ -z "${KEEP_WORK:-}" ]; then
    rm -rf "$WORK" || true
  else
    [ $rc -eq 0 ] || echo "FAILED (test_deb); files kept in $WORK" >&2
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "---- tail $f" >&2; tail -n 15 "$f" >&2; }; done
  fi
  exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
check() { # description, command...
  local what=$1; shift
  if "$@"; then CHECKS=$((CHECKS + 1)); echo "ok - $what"; else fail "$what"; fi
}
has() { grep -qE -- "$2" "$1" || { echo "  '$2' not in $1:" >&2; sed 's/^/  | /' "$1" >&2; return 1; }; }

# ---- build the package --------------------------------------------------------
cpack --config "$BUILD_DIR/CPackConfig.cmake" -G DEB -B "$WORK/cpack" >"$WORK/cpack.log" 2>&1 ||
  fail "cpack failed (log: $WORK/cpack.log)"
debs=("$WORK"/cpack/sagad_*.deb)
[ -f "${debs[0]}" ] || fail "cpack made no sagad_*.deb in $WORK/cpack"
DEB=${debs[0]}
echo "package: $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"

# ---- control data ----------------------------------------------------------------
dpkg-deb --info "$DEB" >"$WORK/info"
check "package name and architecture" has "$WORK/info" "^ Package: sagad$"
check "architecture is this machine's" has "$WORK/info" "^ Architecture: $(dpkg --print-architecture)$"
for lib in librdkafka1 libjansson4 libsqlite3-0 libcurl4 libmicrohttpd12 libc6; do
  check "depends on $lib" has "$WORK/info" "^ Depends: .*\b$lib \(>= [0-9]"
done
mkdir -p "$WORK/control"
dpkg-deb --control "$DEB" "$WORK/control"
for f in sagad.env order-worker.env inventory-worker.env payment-worker.env notification-worker.env; do
  check "conffile /etc/sagad/$f" has "$WORK/control/conffiles" "^/etc/sagad/$f$"
done
for script in postinst prerm postrm; do
  check "$script is an executable, valid sh script" \
    bash -c '[ -x "$1" ] && head -1 "$1" | grep -qx "#!/bin/sh" && sh -n "$1"' _ "$WORK/control/$script"
  # they must not start or enable anything: sagad needs its Kafka settings first
  check "$script enables and starts nothing" bash -c '! grep -qE "systemctl .*(enable|start)|deb-systemd-invoke start" "$1"' _ "$WORK/control/$script"
done

dpkg-deb --contents "$DEB" | awk '{print $1, $NF}' >"$WORK/contents"
for f in bin/sagad bin/sagactl bin/sagabroker bin/order-worker bin/inventory-worker bin/payment-worker \
         bin/notification-worker; do
  check "contains /usr/$f, executable" has "$WORK/contents" "^-rwxr-xr-x \./usr/$f$"
done
for f in share/man/man1/sagad.1 share/man/man1/sagactl.1 share/man/man1/order-worker.1 \
         lib/systemd/system/sagad.service lib/systemd/system/sagad@.service \
         lib/systemd/system/sagad-worker@.service share/sagad/schemas/saga-definition.schema.json \
         share/sagad/schemas/saga-reply.schema.json share/sagad/sagas/order_fulfillment.json \
         share/sagad/sagas/examples/seed.json share/doc/sagad/OPERATIONS.md; do
  check "contains /usr/$f" has "$WORK/contents" "^-rw-r--r-- \./usr/$f$"
done
check "/etc/sagad/sagad.env is 0640 (it may hold the admin token)" has "$WORK/contents" "^-rw-r----- \./etc/sagad/sagad.env$"

# ---- dependencies resolvable from this machine's apt sources ----------------------
# --simulate changes nothing; NoLocking: no lock needed for a simulation.
apt-get install --simulate -o Debug::NoLocking=1 "$DEB" >"$WORK/apt.log" 2>&1 ||
  fail "apt-get install --simulate $DEB failed: $(tail -5 "$WORK/apt.log")"
check "apt-get would install sagad with its dependencies" has "$WORK/apt.log" "^Inst sagad "

# ---- the extracted files -----------------------------------------------------------
dpkg-deb -x "$DEB" "$ROOT"
BIN=$ROOT/usr/bin
"$BIN/sagad" --help >"$WORK/sagad-help.out" 2>&1 || fail "sagad --help exited $?"
check "installed sagad --help prints its options" has "$WORK/sagad-help.out" "^  --data-dir S  \(SAGAD_DATA_DIR"
MANWIDTH=100 man --manpath="$ROOT/usr/share/man" sagad >"$WORK/man-sagad.out" 2>"$WORK/man.err" ||
  fail "man sagad (from the extracted root) failed: $(cat "$WORK/man.err")"
check "man sagad: the page's title and name" has "$WORK/man-sagad.out" "^SAGAD\(1\) .* SAGAD\(1\)$"
check "man sagad: an option with its environment variable" has "$WORK/man-sagad.out" "Environment: SAGAD_RETENTION; default: 168h"
MANWIDTH=100 man --manpath="$ROOT/usr/share/man" sagactl >"$WORK/man-sagactl-page.out" 2>&1 || fail "man sagactl failed"
check "man sagactl: a long command synopsis whole (not cut)" has "$WORK/man-sagactl-page.out" "start DEFINITION \[INPUT_JSON \[SAGA_ID\]\] \[--delay D \| --not-before TIME\]"
for page in "$ROOT"/usr/share/man/man1/*.1; do
  name=$(basename "$page" .1)
  MANWIDTH=100 man --warnings -l "$page" >"$WORK/man-$name.out" 2>"$WORK/man-$name.err" || fail "man -l $page failed"
  check "man -l $name.1 renders without warnings, with its SYNOPSIS" \
    bash -c '[ ! -s "$1" ] && grep -q "^SYNOPSIS" "$2"' _ "$WORK/man-$name.err" "$WORK/man-$name.out"
done

# ---- start the installed programs as their units say -------------------------------
UNITS=$ROOT/usr/lib/systemd/system
unit_value() { sed -n "s/^$2=//p" "$UNITS/$1" | head -1; } # UNIT KEY (first value)
in_root() { # a path of the installed system -> where it is in this test
  case $1 in
    /var/lib/*) echo "$STATE/${1#/var/lib/}" ;;
    /*) echo "$ROOT$1" ;;
    *) echo "$1" ;;
  esac
}
# env_of UNIT INSTANCE: the unit's EnvironmentFile, as `env` arguments, with
# the paths of the installed system mapped into this test.
env_of() {
  local file var value
  file=$(unit_value "$1" EnvironmentFile); file=${file//%i/$2}
  [ -f "$(in_root "$file")" ] || fail "$1: EnvironmentFile $file is not in the package"
  while IFS= read -r line; do
    case $line in ''|'#'*) continue ;; esac
    var=${line%%=*}; value=${line#*=}
    case $value in /usr/*|/etc/*|/var/lib/*) value=$(in_root "$value") ;; esac
    printf '%s=%s\n' "$var" "$value"
  done <"$(in_root "$file")"
}
exec_of() { # UNIT INSTANCE: ExecStart, the program mapped into the root
  local cmd; cmd=$(unit_value "$1" ExecStart); cmd=${cmd//%i/$2}
  echo "$(in_root "${cmd%% *}")${cmd#"${cmd%% *}"}"
}
wait_file() { # FILE PATTERN TIMEOUT_S
  local end=$((SECONDS + $3))
  while [ $SECONDS -lt $end ]; do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.2; done
  echo "  $1 has no '$2' after $3 s" >&2; return 1
}

"$BIN/sagabroker" --bootstrap-file "$WORK/bootstrap" --log-json false >"$WORK/sagabroker.log" 2>&1 &
PIDS+=($!)
wait_file "$WORK/bootstrap" . 20 || fail "the installed sagabroker did not start"
BOOTSTRAP=$(cat "$WORK/bootstrap")

mkdir -p "$STATE/sagad"
env_of sagad.service "" >"$WORK/sagad.env"
check "sagad.env: data in the state directory, the installed definitions" \
  bash -c 'grep -qx "SAGAD_DATA_DIR=$1/sagad" "$3" && grep -qx "SAGAD_SAGAS=$2/usr/share/sagad/sagas" "$3"' _ \
  "$STATE" "$ROOT" "$WORK/sagad.env"
# shellcheck disable=SC2046 # word splitting of ExecStart is the point
env -i PATH="$PATH" $(cat "$WORK/sagad.env") SAGAD_BOOTSTRAP="$BOOTSTRAP" SAGAD_ADMIN_PORT=0 \
  SAGAD_READY_FILE="$WORK/sagad.ready" $(exec_of sagad.service "") >"$WORK/sagad.log" 2>&1 &
SAGAD_PID=$!
PIDS+=($SAGAD_PID)
for w in order inventory payment notification; do
  W=$(echo "${w}_WORKER" | tr a-z A-Z)
  dir=$(in_root "$(unit_value sagad-worker@.service WorkingDirectory | sed "s/%i/$w/")")
  mkdir -p "$dir"
  # shellcheck disable=SC2046
  (cd "$dir" && exec env -i PATH="$PATH" $(env_of sagad-worker@.service "$w") "${W}_BOOTSTRAP=$BOOTSTRAP" \
     "${W}_READY_FILE=$WORK/$w.ready" $(exec_of sagad-worker@.service "$w")) >"$WORK/$w-worker.log" 2>&1 &
  PIDS+=($!)
done
wait_file "$WORK/sagad.ready" '^ADMIN_URL=' 60 || fail "sagad (installed) did not get ready"
for w in order inventory payment notification; do
  wait_file "$WORK/$w.ready" READY 60 || fail "$w-worker (installed) did not get ready"
done
echo "sagad and the workers ready at ${SECONDS} s"
ADMIN_URL=$(sed -n 's/^ADMIN_URL=//p' "$WORK/sagad.ready")
check "sagad generated its admin token in the state directory, mode 0600" \
  bash -c '[ "$(stat -c %a "$1")" = 600 ]' _ "$STATE/sagad/admin.token"

export SAGA_ADMIN_URL=$ADMIN_URL SAGA_ADMIN_TOKEN_FILE=$STATE/sagad/admin.token
"$BIN/sagactl" health >"$WORK/health.out" 2>&1 || fail "sagactl health: $(cat "$WORK/health.out")"
CHECKS=$((CHECKS + 1)); echo "ok - installed sagactl health"
"$BIN/sagactl" start order_fulfillment \
  '{"order_id":"o-pkg-1","customer":"c-1","amount":1999,"items":[{"sku":"sku-1","qty":2}]}' pkg-completes >/dev/null
"$BIN/sagactl" start order_fulfillment \
  '{"order_id":"o-pkg-2","customer":"c-broke","amount":5000,"items":[{"sku":"sku-1","qty":2}]}' pkg-declined >/dev/null
status_of() { "$BIN/sagactl" --json show "$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null || true; }
wait_status() { # ID STATUS TIMEOUT_S
  local end=$((SECONDS + $3)) s=""
  while [ $SECONDS -lt $end ]; do s=$(status_of "$1"); [ "$s" = "$2" ] && return 0; sleep 0.3; done
  echo "  saga $1 is '$s', not '$2', after $3 s" >&2; return 1
}
echo "sagas started at ${SECONDS} s"
check "saga pkg-completes completed (installed sagad and workers)" wait_status pkg-completes completed 60
check "saga pkg-declined compensated (payment declined)" wait_status pkg-declined compensated 60
echo "sagas finished at ${SECONDS} s"
"$BIN/sagactl" show pkg-completes >"$WORK/show.out"
check "sagactl show lists the four steps" has "$WORK/show.out" "notify"

kill -TERM "$SAGAD_PID"
rc=0; wait "$SAGAD_PID" || rc=$?
check "sagad stops on SIGTERM with status 0" [ "$rc" = 0 ]
"$BIN/sagactl" audit --saga-db "$STATE/sagad" --order-db "$STATE/sagad-order-worker/order.db" \
  --inventory-db "$STATE/sagad-inventory-worker/inventory.db" --payment-db "$STATE/sagad-payment-worker/payment.db" \
  --notification-db "$STATE/sagad-notification-worker/notification.db" >"$WORK/audit.out" 2>&1 ||
  fail "sagactl audit found problems: $(cat "$WORK/audit.out")"
check "installed sagactl audit saw both sagas" has "$WORK/audit.out" "sagas: 2 \(completed 1, compensated 1, compensation_failed 0, in flight 0\)"
check "installed sagactl audit passed" has "$WORK/audit.out" "^audit: passed: "
echo "$CHECKS passed, 0 failed (${SECONDS} s)"

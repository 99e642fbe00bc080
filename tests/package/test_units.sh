#!/usr/bin/env bash
# The systemd units as `cmake --install --prefix /usr` installs them: their
# sandboxing and settings are there (always checked), then
# `systemd-analyze verify` accepts them (unknown keys, wrong sections,
# programs that are not executable, man pages of Documentation= that do not
# exist all fail it) and `systemd-analyze security --offline` rates them OK.
# Without a usable systemd-analyze the second part is reported skipped
# (exit 77, ctest SKIP_RETURN_CODE), not passed. Label `package`.
set -euo pipefail
: "${BUILD_DIR:?set by ctest}"
WORK=$(mktemp -d /tmp/sagad-test_units-XXXXXX)
trap 'rc=$?; [ $rc -eq 0 ] || [ $rc -eq 77 ] && rm -rf "$WORK"; [ $rc -eq 0 ] || [ $rc -eq 77 ] || echo "FAILED; files kept in $WORK" >&2; exit $rc' EXIT
CHECKS=0
fail() { echo "FAIL: $*" >&2; exit 1; }
check() { local what=$1; shift; if "$@"; then CHECKS=$((CHECKS + 1)); echo "ok - $what"; else fail "$what"; fi; }
has() { grep -qxE -- "$2" "$1" || { echo "  no line '$2' in $1" >&2; return 1; }; }

ROOT=$WORK/root
DESTDIR=$ROOT cmake --install "$BUILD_DIR" --prefix /usr >"$WORK/install.log" 2>&1 ||
  fail "cmake --install failed: $(tail -5 "$WORK/install.log")"
UNITS=$ROOT/usr/lib/systemd/system
for unit in sagad.service sagad@.service sagad-worker@.service; do
  f=$UNITS/$unit
  [ -f "$f" ] || fail "$unit not installed in /usr/lib/systemd/system"
  for line in ProtectSystem=strict NoNewPrivileges=yes DynamicUser=yes PrivateTmp=yes ProtectHome=yes \
              Restart=on-failure 'StateDirectory=sagad(-%i|-%i-worker)?' 'CapabilityBoundingSet=' \
              'EnvironmentFile=/etc/sagad/(sagad|%i-worker)\.env' 'ExecStart=/usr/bin/(sagad|%i-worker)( .*)?'; do
    check "$unit: $line" has "$f" "$line"
  done
done
check "sagad.service keeps its data in /var/lib/sagad (the env file's SAGAD_DATA_DIR)" \
  has "$ROOT/etc/sagad/sagad.env" "SAGAD_DATA_DIR=/var/lib/sagad"

# ---- systemd-analyze ----------------------------------------------------------
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze not installed ($CHECKS checks passed before)"; exit 77
fi
mkdir -p "$WORK/probe"
printf '[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n' >"$WORK/probe/probe.service"
if ! out=$(systemd-analyze verify "$WORK/probe/probe.service" 2>&1) || [ -n "$out" ]; then
  echo "SKIP: systemd-analyze verify does not work here: $out ($CHECKS checks passed before)"; exit 77
fi
# The units name /usr/bin/... and /etc/sagad/...: point them into the install
# root, and instantiate the templates (systemd-analyze verifies instances).
mkdir -p "$WORK/verify"
for pair in sagad.service:sagad.service sagad@.service:sagad@b.service sagad-worker@.service:sagad-worker@order.service \
            sagad-worker@.service:sagad-worker@notification.service; do
  sed -e "s#/usr/bin/#$ROOT/usr/bin/#g" -e "s#/etc/sagad/#$ROOT/etc/sagad/#g" "$UNITS/${pair%%:*}" >"$WORK/verify/${pair#*:}"
done
# Documentation=man:... is checked with man: the installed pages.
MANPATH=$ROOT/usr/share/man systemd-analyze verify "$WORK"/verify/*.service >"$WORK/verify.out" 2>&1 || true
check "systemd-analyze verify: no error or warning" bash -c '[ ! -s "$1" ] || { sed "s/^/  | /" "$1" >&2; false; }' _ "$WORK/verify.out"
# the same check refuses a unit that is wrong (the check can fail)
sed 's/^ProtectSystem=strict/ProtectSystem=strict\nProtectSytem=yes/' "$WORK/verify/sagad.service" >"$WORK/probe/broken.service"
check "systemd-analyze verify reports a misspelt key" \
  bash -c 'systemd-analyze verify "$1" 2>&1 | grep -q "Unknown key"' _ "$WORK/probe/broken.service"
for unit in sagad.service sagad@b.service sagad-worker@order.service; do
  systemd-analyze security --offline=true "$WORK/verify/$unit" >"$WORK/security-$unit.out" 2>&1 || true
  level=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p' "$WORK/security-$unit.out")
  check "systemd-analyze security $unit: exposure $level (OK: below 2.0)" \
    bash -c '[ -n "$1" ] && awk -v l="$1" "BEGIN{exit !(l < 2.0)}"' _ "${level%% *}"
done
echo "$CHECKS passed, 0 failed"

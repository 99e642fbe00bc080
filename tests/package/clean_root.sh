#!/usr/bin/env bash
# The long form of the package test, by hand (not in ctest: minutes, root,
# network): installs the .deb with apt into a clean Debian 12 root made by
# debootstrap, as an operator would, then inside that root runs `sagad
# --help`, `man sagad`, and the installed sagabroker, sagad and four workers
# with the installed settings (/etc/sagad/*.env; overridden: the broker's
# address, the admin port, /var/lib -> /tmp/state), a saga to completion and
# one to compensation, and the installed `sagactl audit`.
#   usage: sudo tests/package/clean_root.sh DEB ROOT
#   ROOT: made before with
#   sudo debootstrap --variant=minbase bookworm ROOT http://deb.debian.org/debian
# See docs/OPERATIONS.md, "Production install", "Tests".
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 DEB ROOT (ROOT made by debootstrap bookworm)" >&2; exit 2; }
DEB=$(readlink -f "$1") ROOT=$(readlink -f "$2")
[ -f "$DEB" ] || { echo "$0: no package '$DEB'" >&2; exit 2; }
grep -q '^VERSION_CODENAME=bookworm' "$ROOT/etc/os-release" ||
  { echo "$0: $ROOT is not a Debian 12 (bookworm) root" >&2; exit 2; }

cp "$DEB" "$ROOT/tmp/sagad.deb"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc"' EXIT

cat >"$ROOT/tmp/inside.sh" <<'INSIDE'
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq /tmp/sagad.deb >/tmp/apt-install.log 2>&1 || { tail -20 /tmp/apt-install.log; exit 1; }
echo "ok - apt-get install /tmp/sagad.deb: $(dpkg-query -W -f='${Package} ${Version} ${Status}' sagad)"
sagad --help >/tmp/sagad-help.out; head -2 /tmp/sagad-help.out    # (no pipe into head: pipefail)
man sagad >/tmp/man-sagad.out; grep -q "^SAGAD(1)" /tmp/man-sagad.out && echo "ok - man sagad: $(sed -n 4p /tmp/man-sagad.out)"
ls -l /etc/sagad /usr/lib/systemd/system/sagad*.service
W=/tmp/run; S=/tmp/state; rm -rf "$W" "$S"; mkdir -p "$W" "$S"
sagabroker --bootstrap-file "$W/bootstrap" --log-json false >"$W/broker.log" 2>&1 &
PIDS=($!)
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for i in $(seq 100); do [ -s "$W/bootstrap" ] && break; sleep 0.1; done
B=$(cat "$W/bootstrap")
# the installed settings, /var/lib mapped to $S (no systemd here for StateDirectory=)
(set -a; . /etc/sagad/sagad.env; SAGAD_DATA_DIR=$S/sagad SAGAD_BOOTSTRAP=$B SAGAD_ADMIN_PORT=0 \
   SAGAD_READY_FILE=$W/sagad.ready exec sagad) >"$W/sagad.log" 2>&1 &
PIDS+=($!)
for w in order inventory payment notification; do
  V=$(echo "${w}_WORKER" | tr a-z A-Z)
  mkdir -p "$S/sagad-$w-worker"
  (set -a; . "/etc/sagad/$w-worker.env"; cd "$S/sagad-$w-worker"
   eval "${V}_DB=$S/sagad-$w-worker/$w.db ${V}_BOOTSTRAP=$B ${V}_READY_FILE=$W/$w.ready"
   exec "$w-worker") >"$W/$w.log" 2>&1 &
  PIDS+=($!)
done
for f in sagad order inventory payment notification; do
  for i in $(seq 600); do [ -s "$W/$f.ready" ] && break; sleep 0.1; done
  [ -s "$W/$f.ready" ] || { echo "FAIL: $f not ready"; tail "$W/$f.log"; exit 1; }
done
export SAGA_ADMIN_URL=$(sed -n 's/^ADMIN_URL=//p' "$W/sagad.ready") SAGA_ADMIN_TOKEN_FILE=$S/sagad/admin.token
sagactl health
sagactl start order_fulfillment '{"order_id":"o-1","customer":"c-1","amount":1999,"items":[{"sku":"sku-1","qty":2}]}' root-completes
sagactl start order_fulfillment '{"order_id":"o-2","customer":"c-broke","amount":5000,"items":[{"sku":"sku-1","qty":2}]}' root-declined
for id in root-completes:completed root-declined:compensated; do
  for i in $(seq 300); do sagactl show "${id%%:*}" | grep -qE "^Status:? +${id#*:}$" && break; sleep 0.2; done
  sagactl show "${id%%:*}" | grep -qE "^Status:? +${id#*:}$" || { echo "FAIL: ${id%%:*} not ${id#*:}"; sagactl show "${id%%:*}"; exit 1; }
  echo "ok - saga ${id%%:*} ${id#*:}"
done
kill -TERM "${PIDS[1]}"; wait "${PIDS[1]}"
sagactl audit --saga-db "$S/sagad" --order-db "$S/sagad-order-worker/order.db" \
  --inventory-db "$S/sagad-inventory-worker/inventory.db" --payment-db "$S/sagad-payment-worker/payment.db" \
  --notification-db "$S/sagad-notification-worker/notification.db" | tail -2
echo "clean Debian 12 root: all passed"
INSIDE
chroot "$ROOT" /bin/bash /tmp/inside.sh

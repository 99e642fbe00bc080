#!/usr/bin/env bash
# `pip install workers/python` works from the repository: the package builds offline (setuptools
# and wheel from scripts/venv, no build isolation) into a scratch directory, and the installed copy
# (not the checkout's) processes a command.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
PY=$("$REPO/scripts/venv")
TMP=$(mktemp -d /tmp/sagad-py-install-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cp -r "$REPO/workers/python" "$TMP/src" # pip builds in the source tree: keep the checkout clean
"$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation --no-index \
  --target "$TMP/site" "$TMP/src"
cd "$TMP"
"$PY" -I - "$TMP/site" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
import sagad_participant as sp
assert sp.__file__.startswith(sys.argv[1]), f"imported {sp.__file__}, not the installed copy"
p = sp.Participant("t", [sp.Handler("t.do", sp.ACTION, lambda db, cmd: {"ok": 1})], sys.argv[1] + "/t.db")
cmd = {"type": "saga.command", "message_id": "m", "saga_id": "s", "step": "x", "kind": "action",
       "action": "t.do", "attempt": 1, "idempotency_key": "s/x/action", "reply_to": "r", "payload": {}}
reply = json.loads(p.process(json.dumps(cmd)).body)
assert reply["output"] == {"ok": 1} and reply["message_id"] == "r-s/x/action/1", reply
print("installed", sp.__version__, "from", sp.__file__)
PY

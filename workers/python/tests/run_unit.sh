#!/usr/bin/env bash
# The Python participant library's unit tests (unittest, no Kafka) with the venv's python (scripts/venv).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PY=$("$HERE/../../../scripts/venv")
cd "$HERE"
exec "$PY" -m unittest discover -s "$HERE" -p 'test_*.py' "$@"

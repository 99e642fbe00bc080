#!/usr/bin/env bash
# sagad crashes after_produce (see txn_crash.sh); restart; every saga right, audit clean.
CRASH_AT=after_produce
. "$(dirname "$0")/txn_crash.sh"

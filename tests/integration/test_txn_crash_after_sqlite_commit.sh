#!/usr/bin/env bash
# sagad crashes after_sqlite_commit (see txn_crash.sh); restart; every saga right, audit clean.
CRASH_AT=after_sqlite_commit
. "$(dirname "$0")/txn_crash.sh"

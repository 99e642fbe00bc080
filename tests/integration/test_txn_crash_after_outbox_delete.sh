#!/usr/bin/env bash
# sagad crashes after_outbox_delete (see txn_crash.sh); restart; every saga right, audit clean.
CRASH_AT=after_outbox_delete
. "$(dirname "$0")/txn_crash.sh"

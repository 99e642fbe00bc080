#!/usr/bin/env bash
# sagad crashes after_kafka_commit (see txn_crash.sh); restart; every saga right, audit clean.
CRASH_AT=after_kafka_commit
. "$(dirname "$0")/txn_crash.sh"

#!/usr/bin/env bash
# sagad crashes before_sqlite_commit (see txn_crash.sh): the iteration's rows were produced in
# the open Kafka transaction, its shards had not committed; restart; every saga right, audit clean.
CRASH_AT=before_sqlite_commit
. "$(dirname "$0")/txn_crash.sh"

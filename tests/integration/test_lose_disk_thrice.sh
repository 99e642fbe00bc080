#!/usr/bin/env bash
# it_lose_disk with three losses of the whole data directory in one run.
LOSSES=3 exec bash "$(dirname "$0")/test_lose_disk.sh"

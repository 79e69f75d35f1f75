#!/usr/bin/env bash
# Storage healing benchmark (issue 14), one command: time to full redundancy after a brick
# dies while 1,000 files (100 MiB) are written, from the kill to zero entries to heal on every
# brick, on a real 3-peer GlusterFS pool (Tests/Fixtures/gluster/pool.sh, needs root), with
# Specola repairing. The files are made on local disk before any clock and written with one
# `cp -r`; the timed part includes that copy through the mount (the issue's definition) and
# prints it apart. Same run, anchors: the raw copy of the same 100 MiB between two directories,
# the same copy into a healthy volume, gluster alone with the brick left down as long, and
# gluster's heal after an operator's `volume start force` by hand. Target: 10 s plus twice
# the raw copy time.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
log=$(mktemp /tmp/specola-bench-heal.XXXXXX)
trap 'rm -f "$log"' EXIT
SPECOLA_BENCH_HEAL=1 swift test --skip-build --filter "StorageRepairTests/timeToRedundancyBenchmark" 2>&1 | tee "$log" >&2
grep -q "BENCH heal: raw copy" "$log" || { echo "bench-heal: the benchmark printed no result" >&2; exit 1; }
echo
echo "== time to redundancy =="
grep "BENCH heal" "$log"

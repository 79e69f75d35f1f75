#!/usr/bin/env bash
# Starts a local Specola cluster: a coordinator and 3 agents, each with a
# simulated BMC, on loopback addresses. Ctrl-C stops it. Extra arguments go
# to `specola dev` (e.g. --agents 5 --dir /tmp/specola-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || { echo "swift not found: install the Swift 6 toolchain (swift.org) and put it on PATH" >&2; exit 1; }
scripts/install-deps.sh
swift build
exec .build/debug/specola dev "$@"

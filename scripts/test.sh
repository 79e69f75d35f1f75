#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the Debian packages the tests
# need, builds, checks the systemd units, then runs every test against real
# peers (ipmi_sim, libvirtd's test driver, podman, openssl) on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || { echo "swift not found: install the Swift 6 toolchain (swift.org) and put it on PATH" >&2; exit 1; }
scripts/install-deps.sh
swift build --build-tests
scripts/check-units.sh .build/debug
# One test run at a time per machine: process tests bind fixed loopback addresses.
status=0
flock /tmp/specola-process-tests.lock swift test --skip-build "$@" || status=$?
# Runc state that a killed conmon left for the tests' containers goes, so the machine ends as it began.
scripts/remove-orphaned-runc-state.sh || true
exit "$status"

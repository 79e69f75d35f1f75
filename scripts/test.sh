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
# A task container whose conmon a test killed keeps runc's state after podman removed it and its
# bundle. After the run, those of the tests' own store (never the host's) are deleted, as
# TestPodman does before a run; a stopped entry whose bundle is gone is all that is touched.
remove_orphaned_runc_state() {
  command -v runc >/dev/null || return 0
  local id
  for id in $(runc list --format json 2>/dev/null | python3 -c '
import json, os, sys
for s in json.load(sys.stdin) or []:
    if s["status"] == "stopped" and s["bundle"].startswith("/var/lib/specola-tests/podman/storage/") and not os.path.exists(s["bundle"]):
        print(s["id"])' 2>/dev/null); do
    runc delete --force "$id" || true
  done
}
# One test run at a time per machine: process tests bind fixed loopback addresses.
status=0
flock /tmp/specola-process-tests.lock swift test --skip-build "$@" || status=$?
remove_orphaned_runc_state
exit "$status"

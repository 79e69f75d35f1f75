#!/usr/bin/env bash
# A task container whose conmon a test killed keeps runc's state (`runc list`: stopped) after
# podman removed it and its bundle. This deletes those of the tests' own store, whose root is
# read from the tests' storage.conf (never the host's store); a stopped entry whose bundle is
# gone is all that is touched. Run by scripts/test.sh after the suite and by TestPodman.
set -euo pipefail
command -v runc >/dev/null || exit 0
conf="$(dirname "$0")/../Tests/Fixtures/podman/storage.conf"
root=$(sed -n 's/^graphroot *= *"\(.*\)"/\1/p' "$conf")
[ -n "$root" ] || { echo "no graphroot in $conf" >&2; exit 1; }
runc list --format json 2>/dev/null | python3 -c '
import json, os, sys
root = sys.argv[1].rstrip("/") + "/"
for s in json.load(sys.stdin) or []:
    if s["status"] == "stopped" and s["bundle"].startswith(root) and not os.path.exists(s["bundle"]):
        print(s["id"])' "$root" | while read -r id; do
  runc delete --force "$id" || true
done

#!/bin/sh
# A stand-in for smartctl 7.3's `smartctl --json -H DEVICE` (smartmontools), for disks that
# have no SMART here (virtio, loop). It prints the same JSON the real one prints for a disk
# that answers: the envelope (json_format_version, smartctl.argv/exit_status), device, and
# smart_status.passed. DEVICE is failing when its path is a line of the file `smart-failing`
# beside this script; then, like the real smartctl, exit status bit 3 (8) is set.
# StorageCollectorTests runs the real smartctl and this one and compares the envelopes.
device=""
for arg in "$@"; do device=$arg; done
failing="$(dirname "$0")/smart-failing"
passed=true; status=0
if [ -f "$failing" ] && grep -qxF "$device" "$failing"; then passed=false; status=8; fi
argv=""
for arg in "$@"; do argv="$argv, \"$arg\""; done
cat <<JSON
{
  "json_format_version": [1, 0],
  "smartctl": {
    "version": [7, 3],
    "svn_revision": "5338",
    "platform_info": "stand-in",
    "build_info": "(Specola test stand-in)",
    "argv": ["smartctl"$argv],
    "exit_status": $status
  },
  "device": {"name": "$device", "info_name": "$device", "type": "sat", "protocol": "ATA"},
  "smart_status": {"passed": $passed}
}
JSON
exit $status

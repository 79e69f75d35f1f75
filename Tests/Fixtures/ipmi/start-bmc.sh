#!/bin/bash
# Start one simulated BMC (OpenIPMI's ipmi_sim) serving IPMI-over-LAN on ADDR:PORT.
# usage: start-bmc.sh WORKDIR [ADDR] [PORT]   -> prints the ipmi_sim PID
# Several can run at once: give each its own WORKDIR and ADDR (127.0.1.x) or PORT.
# The console listens on PORT+1 of the same ADDR.
# Needs: apt-get install -y openipmi freeipmi-tools
# Sensors: CPU Temp (value = contents of WORKDIR/cputemp.val, polled every 1 s),
#          FAN1, 12V (changed at runtime through the console on PORT+1:
#          printf 'sensor_set_value 0x20 0 2 0x08 1\r\n' > /dev/tcp/ADDR/$((PORT+1)) ).
# Power: WORKDIR/power.state (1 on, 0 off), driven by chassis control (fencing).
# Credentials: admin/secret. Clients need LAN_2_0 + workaround opensesspriv:
#   ipmi-sensors -h ADDR:PORT -u admin -p secret -D LAN_2_0 -W opensesspriv
#   ipmi-chassis -h ADDR:PORT -u admin -p secret -D LAN_2_0 -W opensesspriv --chassis-control=POWER-DOWN
# Stop it with `kill PID`. The caller must not block SIGTERM when starting this
# script (ipmi_sim inherits the signal mask); otherwise use SIGKILL.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 WORKDIR [ADDR] [PORT]" >&2; exit 2; }
W=$(realpath -m "$1"); ADDR=${2:-127.0.0.1}; PORT=${3:-9623}
HERE=$(cd "$(dirname "$0")" && pwd)
command -v ipmi_sim >/dev/null && command -v sdrcomp >/dev/null \
  || { echo "ipmi_sim/sdrcomp not found (apt-get install openipmi)" >&2; exit 127; }
mkdir -p "$W/state/ipmi_sim/node"
# A GUID per ADDR:PORT so that several simulated BMCs look distinct.
GUID=$(printf '%s:%s' "$ADDR" "$PORT" | md5sum | cut -c1-32)
sed -e "s#@DIR@#$W#g" -e "s/addr 127.0.0.1 9623/addr $ADDR $PORT/" \
    -e "s/^console 127.0.0.1 9624/console $ADDR $((PORT+1))/" -e 's/^name "node1"/name "node"/' \
    -e "s/guid a123456789abcdefa123456789abcdef/guid $GUID/" \
    "$HERE/lan.conf.template" > "$W/lan.conf"
sed -e "s#@DIR@#$W#g" "$HERE/node.emu.template" > "$W/node.emu"
cp "$HERE/chassis.sh" "$W/chassis.sh"
chmod +x "$W/chassis.sh"
[ -f "$W/cputemp.val" ] || echo 45 > "$W/cputemp.val"
sdrcomp -8 -o "$W/state/ipmi_sim/node/sdr.20.main" "$HERE/node1.sdrs"
# Close inherited descriptors (>2) so the daemon never holds the caller's pipes open.
(
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
  exec ipmi_sim -n -c "$W/lan.conf" -f "$W/node.emu" -s "$W/state" </dev/null >"$W/sim.log" 2>&1
) &
echo $!

#!/usr/bin/env bash
# Footprint benchmark: specola-agent against the exporters a site would run
# instead, prometheus-node-exporter plus prometheus-ipmi-exporter (Debian
# packages), on this machine, in the same run, at the same cadence.
#
# usage: scripts/bench-footprint.sh [BIN_DIR]      (default .build/release)
#   run from the repo root after `swift build -c release` (BIN_DIR needs
#   specola, specola-agent, specola-coordinator).
# env:
#   BENCH_MINUTES   measured window, minutes, fractions allowed (default 5)
#   BENCH_INTERVAL  agent reportInterval = exporter scrape interval, s (default 5)
#   BENCH_STRICT=1  exit 1 when the target is not met
#
# Set-up, all on 127.0.2.x: one simulated BMC (ipmi_sim), a coordinator with a
# fresh PKI, the agent (BMC over LAN to the simulator, libvirt test:///default,
# podman on), node_exporter, and ipmi_exporter pointed at the same BMC with the
# ipmi, chassis and sel collectors (what the agent reads: sensors, power, SEL).
# curl scrapes both exporters every BENCH_INTERVAL s while the agent runs its
# own cycles.
#
# Measured per process over the window: VmRSS at the end (and VmHWM, the peak),
# CPU = utime+stime of the process plus its reaped children (the agent's podman
# calls, ipmi_exporter's FreeIPMI tools), divided by agent cycles
# (window / interval) or by successful scrapes.
# Target: agent RSS <= node_exporter RSS.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=${1:-.build/release}
minutes=${BENCH_MINUTES:-5}
interval=${BENCH_INTERVAL:-5}
bmc_script=${BENCH_BMC_SCRIPT:-Tests/Fixtures/ipmi/start-bmc.sh}
podman_conf=Tests/Fixtures/podman/containers.conf

bmc_addr=127.0.2.1 bmc_port=9623
agent_addr=127.0.2.2
node_exp=127.0.2.3:9100
ipmi_exp=127.0.2.4:9290
coord=127.0.2.11:7450 coord_metrics=127.0.2.11:9450

work=""
die() {
  echo "bench-footprint: $*" >&2
  if [ -n "$work" ] && [ -d "$work/logs" ]; then   # the work dir is removed on exit: show the logs now
    for f in "$work"/logs/*.log; do [ -s "$f" ] && { echo "--- ${f##*/} (last lines)" >&2; tail -n 8 "$f" >&2; }; done
  fi
  exit 1
}

# --- preflight -------------------------------------------------------------
window=$(awk -v m="$minutes" 'BEGIN { s = m * 60; if (s < 1) exit 1; printf "%d", s }') ||
  die "BENCH_MINUTES='$minutes' is not a positive number of minutes"
awk -v i="$interval" 'BEGIN { exit !(i > 0) }' || die "BENCH_INTERVAL='$interval' must be > 0 seconds"
for b in specola specola-agent specola-coordinator; do
  [ -x "$bin_dir/$b" ] || die "$bin_dir/$b not found; run 'swift build -c release' (or pass the bin dir, e.g. .build/debug)"
done
[ -f "$bmc_script" ] || die "$bmc_script not found (the simulated BMC); set BENCH_BMC_SCRIPT to a start-bmc.sh"
if ! command -v prometheus-node-exporter >/dev/null || ! command -v prometheus-ipmi-exporter >/dev/null; then
  echo "bench-footprint: installing the exporters (scripts/install-deps.sh bench)"
  scripts/install-deps.sh bench >/dev/null || die "could not install the exporters; run: scripts/install-deps.sh bench"
fi
for t in ipmi_sim sdrcomp ipmimonitoring curl ss; do
  command -v "$t" >/dev/null || die "$t missing; run scripts/install-deps.sh"
done
# Refuse to start if another process holds one of our ports.
for hp in "$bmc_addr:$bmc_port" "$bmc_addr:$((bmc_port + 1))" "$node_exp" "$ipmi_exp" "$coord" "$coord_metrics"; do
  if ss -Htlnu "( sport = :${hp##*:} )" | awk '{print $5}' | grep -qx -e "$hp" -e "0.0.0.0:${hp##*:}" -e "\*:${hp##*:}" -e "\[::\]:${hp##*:}"; then
    die "$hp is already in use; stop whatever listens there and retry"
  fi
done

# --- process bookkeeping: everything started is stopped by PID --------------
work=$(mktemp -d /tmp/specola-bench.XXXXXX)
pids=()
alive() { [ -d "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
cleanup() {
  local pid deadline
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  deadline=$((SECONDS + 10))
  for pid in "${pids[@]}"; do
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  # ipmi_sim is not our child (start-bmc.sh backgrounds it): wait for PID 1 to reap it.
  for pid in "${pids[@]}"; do
    deadline=$((SECONDS + 5))
    while [ -d "/proc/$pid" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() { # wait_for SECONDS WHAT COMMAND...
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what not ready after ${limit}s"
    sleep 0.2
  done
}
mkdir -p "$work/logs" "$work/data"

# --- simulated BMC -----------------------------------------------------------
bmc_pid=$(bash "$bmc_script" "$work/bmc" "$bmc_addr" "$bmc_port" | tail -1)
[[ "$bmc_pid" =~ ^[0-9]+$ ]] || die "$bmc_script did not print a PID"
pids+=("$bmc_pid")
printf 'secret\n' >"$work/bmc-password"; chmod 600 "$work/bmc-password"
wait_for 15 "simulated BMC at $bmc_addr:$bmc_port" \
  ipmi-chassis -h "$bmc_addr:$bmc_port" -u admin -p secret -l ADMIN -D LAN_2_0 -W opensesspriv --get-chassis-status

# --- PKI, coordinator, agent ---------------------------------------------------
pki=$work/pki
"$bin_dir/specola" pki init --dir "$pki" >/dev/null
"$bin_dir/specola" pki issue --dir "$pki" --role coordinator --name c1 --san "${coord%:*}" >/dev/null
"$bin_dir/specola" pki issue --dir "$pki" --role node --name bench1 --san "$agent_addr" >/dev/null

cat >"$work/coordinator.yaml" <<EOF
name: c1
listen: $coord
metricsListen: $coord_metrics
dataDir: $work/data/c1
tls: {ca: $pki/ca.pem, cert: $pki/coordinator-c1.pem, key: $pki/coordinator-c1-key.pem}
logLevel: warning
EOF
containers_conf=""
[ -f "$podman_conf" ] && containers_conf=$(realpath "$podman_conf")
cat >"$work/agent.yaml" <<EOF
nodeName: bench1
coordinators: [$coord]
address: $agent_addr
dataDir: $work/data/bench1
reportInterval: $interval
tls: {ca: $pki/ca.pem, cert: $pki/node-bench1.pem, key: $pki/node-bench1-key.pem}
bmc: {mode: lan, host: $bmc_addr, port: $bmc_port, user: admin, passwordFile: $work/bmc-password}
libvirt: {uri: "test:///default"}
podman: {enabled: true, containersConf: "$containers_conf"}
logLevel: warning
EOF

"$bin_dir/specola-coordinator" --config "$work/coordinator.yaml" >"$work/logs/coordinator.log" 2>&1 &
coord_pid=$!; pids+=("$coord_pid")
wait_for 30 "coordinator (http://$coord_metrics/healthz)" curl -sf --max-time 2 "http://$coord_metrics/healthz"

"$bin_dir/specola-agent" --config "$work/agent.yaml" >"$work/logs/agent.log" 2>&1 &
agent_pid=$!; pids+=("$agent_pid")

# --- the exporters -------------------------------------------------------------
cat >"$work/ipmi_exporter.yml" <<EOF
modules:
  default:
    user: admin
    pass: secret
    driver: LAN_2_0
    privilege: admin
    workaround_flags: [opensesspriv]
    collectors: [ipmi, chassis, sel]
EOF
prometheus-node-exporter --web.listen-address="$node_exp" >"$work/logs/node_exporter.log" 2>&1 &
node_pid=$!; pids+=("$node_pid")
prometheus-ipmi-exporter --config.file="$work/ipmi_exporter.yml" --web.listen-address="$ipmi_exp" \
  >"$work/logs/ipmi_exporter.log" 2>&1 &
ipmi_pid=$!; pids+=("$ipmi_pid")
node_url="http://$node_exp/metrics"
ipmi_url="http://$ipmi_exp/ipmi?target=$bmc_addr:$bmc_port"
wait_for 15 "node_exporter ($node_url)" curl -sf --max-time 5 -o /dev/null "$node_url"
wait_for 15 "ipmi_exporter ($ipmi_url)" sh -c "curl -sf --max-time 10 '$ipmi_url' | grep -q '^ipmi_up{collector=\"ipmi\"} 1'"

reports_applied() {
  curl -sf --max-time 2 "http://$coord_metrics/metrics" |
    awk '/^specola_node_reports_applied_total\{.*node="bench1"/ { print int($NF); found = 1 } END { if (!found) print 0 }'
}
agent_reported() { alive "$agent_pid" && [ "$(reports_applied)" -gt 0 ]; }
wait_for 60 "agent's first report (specola_node_reports_applied_total{node=\"bench1\"})" agent_reported

# --- measure -------------------------------------------------------------------
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }   # utime stime cutime cstime
self_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

declare -A cpu0 self0
for p in "$agent_pid" "$node_pid" "$ipmi_pid"; do cpu0[$p]=$(cpu_ticks "$p"); self0[$p]=$(self_ticks "$p"); done
reports0=$(reports_applied)
echo "bench-footprint: measuring for ${window}s, one cycle/scrape every ${interval}s (BENCH_MINUTES=$minutes)"
node_ok=0 ipmi_ok=0 scrape_fail=0
start=$SECONDS
next=$start
while [ $((SECONDS - start)) -lt "$window" ]; do
  curl -sf --max-time "$interval" -o /dev/null "$node_url" && node_ok=$((node_ok + 1)) || scrape_fail=$((scrape_fail + 1))
  curl -sf --max-time "$interval" -o /dev/null "$ipmi_url" && ipmi_ok=$((ipmi_ok + 1)) || scrape_fail=$((scrape_fail + 1))
  for p in "$agent_pid" "$coord_pid" "$node_pid" "$ipmi_pid" "$bmc_pid"; do
    alive "$p" || die "process $p exited during the run"
  done
  next=$(awk -v n="$next" -v i="$interval" 'BEGIN { print n + i }')
  sleep "$(awk -v n="$next" -v now="$SECONDS" 'BEGIN { d = n - now; print (d > 0 ? d : 0) }')"
done
elapsed=$((SECONDS - start))
# Fairness check: the agent must really have read the BMC and libvirt, as the coordinator shows.
metrics=$(curl -sf --max-time 5 "http://$coord_metrics/metrics" || true)
collected() { grep -q "^$1{[^}]*node=\"bench1\"[^}]*}${2:-}" <<<"$metrics" && echo yes || echo NO; }
bmc_seen=$(collected ipmi_up ' 1')
vms_seen=$(collected specola_node_vms)
sensors_seen=$(collected ipmi_temperature_celsius)
reports=$(( $(reports_applied) - reports0 ))
cycles=$(awk -v e="$elapsed" -v i="$interval" 'BEGIN { printf "%d", e / i }')

row() { # row NAME PID COUNT
  local rss hwm cpu self
  rss=$(kib "$2" VmRSS); hwm=$(kib "$2" VmHWM)
  cpu=$(awk -v a="$(cpu_ticks "$2")" -v b="${cpu0[$2]}" -v hz="$hz" 'BEGIN { printf "%.3f", (a - b) / hz }')
  self=$(awk -v a="$(self_ticks "$2")" -v b="${self0[$2]}" -v hz="$hz" 'BEGIN { printf "%.3f", (a - b) / hz }')
  printf '%s %s %s %s %s %s\n' "$1" "$rss" "$hwm" "$cpu" "$self" "$3"
}
{
  row specola-agent "$agent_pid" "$cycles"
  row node_exporter "$node_pid" "$node_ok"
  row ipmi_exporter "$ipmi_pid" "$ipmi_ok"
} >"$work/rows"

awk -v elapsed="$elapsed" -v reports="$reports" -v fails="$scrape_fail" '
  { name[NR] = $1; rss[NR] = $2; hwm[NR] = $3; cpu[NR] = $4; self[NR] = $5; n[NR] = $6
    per[NR] = ($6 > 0) ? $4 / $6 : 0 }
  END {
    printf "\n%-14s %10s %10s %10s %10s %8s %12s\n", "process", "RSS MiB", "peak MiB", "CPU s", "own CPU s", "cycles", "CPU ms/cycle"
    for (i = 1; i <= 3; i++)
      printf "%-14s %10.1f %10.1f %10.3f %10.3f %8d %12.2f\n", name[i], rss[i] / 1024, hwm[i] / 1024, cpu[i], self[i], n[i], per[i] * 1000
    printf "(window %d s; CPU s = own + reaped children; cycles = agent window/interval, exporters successful scrapes;\n", elapsed
    printf " agent reports applied by the coordinator in the window: %d; failed scrapes: %d)\n\n", reports, fails
    ratio("RSS      agent / node_exporter               ", rss[1], rss[2])
    ratio("RSS      agent / (node_exporter + ipmi_exp.) ", rss[1], rss[2] + rss[3])
    ratio("CPU/cyc  agent / node_exporter               ", per[1], per[2])
    ratio("CPU/cyc  agent / (node_exporter + ipmi_exp.) ", per[1], per[2] + per[3])
    printf "\ntarget (agent RSS <= node_exporter RSS) met: %s\n", (rss[1] <= rss[2]) ? "yes" : "no"
  }
  function ratio(label, a, b) { if (b > 0) printf "%s %6.2f\n", label, a / b; else printf "%s    n/a\n", label }
' "$work/rows" | tee "$work/result"
echo "agent data seen by the coordinator: BMC up: $bmc_seen, temperature sensors: $sensors_seen, VMs: $vms_seen"
if [ "$bmc_seen$sensors_seen$vms_seen" != yesyesyes ]; then
  echo "WARNING: the agent did not collect everything the exporters did; the comparison flatters it" >&2
  grep -h -i -m 5 -e error -e warning "$work/logs/agent.log" >&2 || true
fi

if [ "${BENCH_STRICT:-0}" = 1 ] && grep -q 'met: no' "$work/result"; then exit 1; fi
exit 0

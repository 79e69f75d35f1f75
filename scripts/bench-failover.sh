#!/usr/bin/env bash
# Failure-handling benchmark (issue 5), one command for both of its measures:
#  1. Failover time: median time from a node's death (agent and work killed at
#     once) to all its work (a job, an HA VM on a private libvirtd with the test
#     driver, an HA podman pod) running on another node, with BMC fencing through
#     simulated BMCs (ipmi_sim), over BENCH_ROUNDS rounds (default 10), against
#     Proxmox HA (~120 s) and Kubernetes (~350 s).
#     Thresholds: BENCH_SUSPECT_AFTER (default 2 s), BENCH_DOWN_AFTER (default
#     5 s), the coordinator's own defaults.
#  2. Alert latency: scripts/bench-alerts.sh on the same (debug) build, over
#     BENCH_ALERT_ROUNDS node failures (default 10), webhook and e-mail, against
#     Alertmanager's default group_wait of 30 s (measured when it is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
log=$(mktemp /tmp/specola-bench-failover.XXXXXX)
trap 'rm -f "$log"' EXIT
SPECOLA_BENCH_FAILOVER_ROUNDS=${BENCH_ROUNDS:-10} \
SPECOLA_BENCH_SUSPECT_AFTER=${BENCH_SUSPECT_AFTER:-2} \
SPECOLA_BENCH_DOWN_AFTER=${BENCH_DOWN_AFTER:-5} \
  swift test --skip-build --filter "FailoverTests/failoverBenchmark" 2>&1 | tee "$log" >&2
grep -q "BENCH failover: target" "$log" || { echo "bench-failover: the failover benchmark printed no result" >&2; exit 1; }
BENCH_ROUNDS=${BENCH_ALERT_ROUNDS:-10} scripts/bench-alerts.sh .build/debug
echo
echo "== failover (from above) =="
grep "BENCH failover" "$log"

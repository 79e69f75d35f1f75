#!/usr/bin/env bash
# Failover benchmark (issue 5): median time from a node's death (agent and
# work killed at once) to all its work (a job, an HA VM on a private libvirtd
# with the test driver, an HA podman pod) running on another node, with BMC
# fencing through simulated BMCs (ipmi_sim), over BENCH_ROUNDS rounds (default 10).
# Prints the ratio against Proxmox HA (~120 s) and Kubernetes (~350 s).
# Thresholds: BENCH_SUSPECT_AFTER (default 2 s), BENCH_DOWN_AFTER (default 5 s), the
# coordinator's own defaults.
# Alert latency is measured by scripts/bench-alerts.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
SPECOLA_BENCH_FAILOVER_ROUNDS=${BENCH_ROUNDS:-10} \
SPECOLA_BENCH_SUSPECT_AFTER=${BENCH_SUSPECT_AFTER:-2} \
SPECOLA_BENCH_DOWN_AFTER=${BENCH_DOWN_AFTER:-5} \
  swift test --skip-build --filter "FailoverTests/failoverBenchmark" 2>&1 | tee /dev/stderr | grep -q "BENCH failover: target"

#!/usr/bin/env bash
# Job placement benchmarks (issue 4), one command, ratios printed:
#  1. Scheduler throughput: 5,000 and 10,000 simulated nodes, placements
#     committed through a real 3-replica Raft group on 127.0.0.11-13
#     (specola-bench-scheduler), against Nomad C1M (~3,750/s), Kubernetes
#     (~100 pods/s at 5k nodes) and Slurm (~500 jobs/s). Target >= 20,000/s.
#  2. Container overhead: `specola job run` of a trivial task on a local
#     cluster (1 coordinator, 1 agent, podman with runc) against a bare
#     `podman run --rm` of the same image with the same podman settings.
#     Median of BENCH_ROUNDS rounds each. Target <= 1.2x.
#
# usage: scripts/bench-jobs.sh            (from the repo root, as root)
# env:   BENCH_TASKS (default 50000)  BENCH_ROUNDS (default 10)
#        BENCH_SKIP_BUILD=1 to reuse the release build; BENCH_BIN=DIR to use binaries from DIR
set -euo pipefail
cd "$(dirname "$0")/.."

tasks=${BENCH_TASKS:-50000}
rounds=${BENCH_ROUNDS:-10}
bin=${BENCH_BIN:-.build/release}
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  # One product per call: swift build keeps only the last --product it is given.
  for product in specola-bench-scheduler specola specola-coordinator specola-agent; do
    swift build -c release --product "$product"
  done
fi

echo "== scheduler throughput (real Raft, 3 replicas on loopback) =="
"$bin/specola-bench-scheduler" --nodes 5000,10000 --tasks "$tasks"

echo "== container overhead: specola job run vs podman run --rm =="
work=$(mktemp -d /tmp/specola-bench-jobs.XXXXXX)
dev_pid=
cleanup() {
  if [ -n "$dev_pid" ]; then kill -INT "$dev_pid" 2>/dev/null || true; wait "$dev_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
"$bin/specola" dev --dir "$work/dev" --agents 1 --replicas 1 >"$work/dev.out" 2>&1 &
dev_pid=$!
for _ in $(seq 1 120); do
  grep -q "agents reported" "$work/dev.out" 2>/dev/null && break
  kill -0 "$dev_pid" 2>/dev/null || { cat "$work/dev.out"; echo "bench-jobs: specola dev died" >&2; exit 1; }
  sleep 0.5
done
grep -q "all 1 agents reported" "$work/dev.out" || { cat "$work/dev.out"; echo "bench-jobs: the dev cluster did not come up" >&2; exit 1; }
eval "$(grep '^export ' "$work/dev.out")"
export CONTAINERS_CONF="$work/dev/config/podman-containers.conf"
image=localhost/specola-mini

cat >"$work/trivial.yaml" <<EOF
apiVersion: specola/v1
kind: Job
metadata: {name: trivial, owner: bench, project: bench}
task:
  name: true
  driver: podman
  image: $image
  command: /bin/true
  resources: {cpu: 0.1, memory: 32MiB}
EOF

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# One warm-up of each, so image and binary caches are equally warm.
podman run --rm --network none "$image" /bin/true
"$bin/specola" job run "$work/trivial.yaml" >/dev/null
: >"$work/podman.ms"; : >"$work/specola.ms"
for _ in $(seq 1 "$rounds"); do
  start=$(now_ms); podman run --rm --network none "$image" /bin/true; echo $(( $(now_ms) - start )) >>"$work/podman.ms"
  start=$(now_ms); "$bin/specola" job run "$work/trivial.yaml" >/dev/null; echo $(( $(now_ms) - start )) >>"$work/specola.ms"
done
podman_ms=$(median <"$work/podman.ms")
specola_ms=$(median <"$work/specola.ms")
ratio=$(awk -v a="$specola_ms" -v b="$podman_ms" 'BEGIN {printf "%.2f", a / b}')
echo "podman run --rm:   median ${podman_ms} ms over $rounds rounds ($(tr '\n' ' ' <"$work/podman.ms"))"
echo "specola job run:   median ${specola_ms} ms over $rounds rounds ($(tr '\n' ' ' <"$work/specola.ms"))"
verdict=$(awk -v r="$ratio" 'BEGIN {print (r <= 1.2 ? "MET" : "NOT MET")}')
echo "ratio specola/podman: ${ratio}x (target <= 1.2x: $verdict)"

#!/usr/bin/env bash
# Runs scripts/bench-raft.sh N times and prints each run's target ratios against etcd over TLS,
# then their medians. On a shared 2-core VM one run's ratios move by 10-15% with the host's load;
# the median of several runs, each comparing the systems in the same run, is what to decide on.
#
# usage: scripts/bench-raft-repeat.sh N      (as root; every BENCH_* variable of bench-raft.sh applies)
# Each run's full report is kept in $BENCH_REPEAT_DIR (default: a new directory under /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "bench-raft-repeat: N='$runs' must be a positive integer" >&2; exit 1; }
out=${BENCH_REPEAT_DIR:-$(mktemp -d /tmp/bench-raft-repeat.XXXXXX)}
mkdir -p "$out"
export BENCH_ETCD=${BENCH_ETCD:-tls}
case " $BENCH_ETCD " in *" tls "*) ;; *) echo "bench-raft-repeat: BENCH_ETCD must include tls (the comparison that decides)" >&2; exit 1 ;; esac

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# The ratio printed on a target line of bench-raft.sh's report: "... = 1.29x -> met no".
ratio_of() { grep -F "target: $2 <= etcd-tls's" "$1" 2>/dev/null | sed -n 's/.* = \([0-9.]*\)x -> met .*/\1/p'; }
tput_of() { grep -F "target: writes/s at 64 clients >= etcd-tls's" "$1" 2>/dev/null | sed -n 's/.* = \([0-9.]*\)x -> met .*/\1/p'; }

for i in $(seq 1 "$runs"); do
  report=$out/run-$i.txt
  echo "bench-raft-repeat: run $i of $runs (report: $report)" >&2
  # Only the first run builds.
  if [ "$i" -gt 1 ]; then BENCH_SKIP_BUILD=1 scripts/bench-raft.sh >"$report"; else scripts/bench-raft.sh >"$report"; fi
  printf 'run %s: CPU per write %sx, 1-client latency %sx, writes/s %sx (Specola/etcd-tls)\n' "$i" \
    "$(ratio_of "$report" "replica CPU per write at 64 clients")" "$(ratio_of "$report" "median latency at 1 client")" \
    "$(tput_of "$report")"
done
cpu=$(for i in $(seq 1 "$runs"); do ratio_of "$out/run-$i.txt" "replica CPU per write at 64 clients"; done | median)
lat=$(for i in $(seq 1 "$runs"); do ratio_of "$out/run-$i.txt" "median latency at 1 client"; done | median)
tput=$(for i in $(seq 1 "$runs"); do tput_of "$out/run-$i.txt"; done | median)
echo "median of $runs runs, Specola/etcd-tls: CPU per write at 64 clients ${cpu}x (target <= 1), median latency at 1 client ${lat}x (target <= 1), writes/s at 64 clients ${tput}x (target >= 1)"

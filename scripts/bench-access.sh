#!/usr/bin/env bash
# Access benchmark (issue 15): the cost of authorization and the audit log. Two
# single-replica coordinators from the same build, one with access enforced
# (every KV Put authorized by AccessPolicy and audited through Raft) and one
# with `access.enforce: false`, each loaded in turn by `specola-bench load --op
# put` with 64 closed-loop clients; the rounds alternate (on, off, on, off, ...)
# so drift hits both. Prints the median calls/s of each and their ratio.
# Target: enforced >= 0.95 x unenforced.
#
# usage: scripts/bench-access.sh
# env:
#   BENCH_SECONDS=10     measured window per round (1 s warm-up)
#   BENCH_CLIENTS=64
#   BENCH_ROUNDS=3       rounds per variant
#   BENCH_SKIP_BUILD=1   use the existing binaries
#   BENCH_CONFIG=release (or debug: quicker to build, slower to run)
#   BENCH_STRICT=1       exit 1 when the target is not met
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${BENCH_SECONDS:-10}
clients=${BENCH_CLIENTS:-64}
rounds=${BENCH_ROUNDS:-3}
config=${BENCH_CONFIG:-release}
bin=.build/$config

die() { echo "bench-access: $*" >&2; exit 1; }
say() { echo "bench-access: $*" >&2; }

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  say "building specola-coordinator and specola-bench ($config)"
  swift build -c "$config" --product specola-coordinator >&2
  swift build -c "$config" --product specola-bench >&2
fi
for b in specola-coordinator specola-bench; do [ -x "$bin/$b" ] || die "$bin/$b not found; run without BENCH_SKIP_BUILD"; done

work=$(mktemp -d /tmp/bench-access.XXXXXX)
declare -A pid_of=()
alive() { [ -d "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
stop() {
  local pid=${pid_of[$1]:-}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  unset "pid_of[$1]"
}
cleanup() {
  local status=$?
  for name in "${!pid_of[@]}"; do stop "$name"; done
  if [ $status -ne 0 ]; then
    for f in "$work"/*/coordinator.log; do [ -s "$f" ] && { echo "--- $f" >&2; tail -n 6 "$f" >&2; }; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

gen() { timeout 120 "$bin/specola-bench" "$@"; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
declare -A endpoint_of=()
for variant in on off; do
  host=$([ $variant = on ] && echo 127.0.0.11 || echo 127.0.0.12)
  mkdir -p "$work/$variant"
  endpoint_of[$variant]=$(gen setup --dir "$work/$variant" --hosts "$host" --access $variant | sed -n 's/^ENDPOINTS //p')
  "$bin/specola-coordinator" --config "$work/$variant/c1.yaml" >"$work/$variant/coordinator.log" 2>&1 &
  pid_of[$variant]=$!
done
for variant in on off; do
  gen leader --endpoints "${endpoint_of[$variant]}" --pki "$work/$variant/pki" >/dev/null || die "no leader for access $variant"
done

declare -A results=([on]="" [off]="")
for round in $(seq 1 "$rounds"); do
  for variant in on off; do
    line=$(gen load --system specola --endpoints "${endpoint_of[$variant]}" --pki "$work/$variant/pki" --clients "$clients" \
      --seconds "$seconds" --warmup 1 --op put)
    ops=$(echo "$line" | field throughput)
    say "round $round, access $variant: $line"
    results[$variant]+="$ops "
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
on=$(echo "${results[on]}" | median)
off=$(echo "${results[off]}" | median)
ratio=$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.3f", a / b }')
met=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.95) ? "met" : "NOT met" }')
# The spread: each variant's slowest and fastest round, and the on/off ratio of each round's pair
# (the machine may be shared; a wide spread says the median is the figure to trust, and how far).
spread() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s..%s", lo, hi }'; }
pair_ratios=$(paste -d' ' <(echo "${results[on]}" | tr ' ' '\n' | grep .) <(echo "${results[off]}" | tr ' ' '\n' | grep .) \
  | awk '{ printf "%.3f ", $1 / $2 }')
echo "SPREAD access_on=$(echo "${results[on]}" | spread) access_off=$(echo "${results[off]}" | spread) round_ratios=[${pair_ratios% }] median_round_ratio=$(echo "$pair_ratios" | median)"
echo "RESULT access_on_ops_per_s=$on access_off_ops_per_s=$off ratio=$ratio clients=$clients rounds=$rounds build=$config"
echo "target: authorization + audit cost at most 5% of calls per second at $clients clients: $met"
[ "${BENCH_STRICT:-0}" = 1 ] && [ "$met" != met ] && exit 1
exit 0

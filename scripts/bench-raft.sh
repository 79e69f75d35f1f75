#!/usr/bin/env bash
# Raft benchmark: Specola's 3-replica coordinator group against a 3-member
# etcd 3.4 cluster (Debian's etcd-server), in one run, through one client
# stack: the Swift load generator `specola-bench` (grpc-swift-2), speaking
# Specola's KV Put over mTLS and etcd's KV Put twice: over plaintext h2c
# (etcd's default) and over the same mTLS as Specola (client and peer TLS with
# certificates from the bench's own CA), so the TLS cost is on both sides.
#
# usage: scripts/bench-raft.sh          (as root, from anywhere)
# env:
#   BENCH_SECONDS=10      measured window per client count (1 s warm-up before it)
#   BENCH_CLIENTS="1 16 64"
#   BENCH_ROUNDS=5        leader kill rounds per system
#   BENCH_VALUE_BYTES=128
#   BENCH_SKIP_BUILD=1    use the existing release binaries
#   BENCH_SCRATCH=.build  swift build's scratch path (binaries in $BENCH_SCRATCH/release)
#   BENCH_ETCD="plain tls" which etcd variants to run
#   BENCH_STRICT=1        exit 1 when a target is not met (compared with etcd over TLS)
#   BENCH_SYNC_OFF=1      no fsync anywhere (Specola: SQLite synchronous=OFF; etcd: --unsafe-no-fsync
#                         where its version has it): separates disk from CPU. Unsafe, measurement only
#   BENCH_PEERS=grpc      Specola replicas exchange Raft traffic over gRPC instead of the direct
#                         channel (raftAddress), to compare the two
#   BENCH_PHASES=0        do not log Specola's write phases (SPECOLA_WRITE_PHASES, on by default:
#                         a few clock reads per write); the replicas' sums are printed at the end
#
# The systems run one after the other, never together. Specola: 127.0.0.11-13
# on free ports, etcd: 127.0.0.1:2379I (client) and :2380I (peer), a fresh
# data directory per variant.
# Measured per system:
#   - closed-loop write throughput, median and p99 latency per client count
#     (each client writes back to back; the generator sorts every sample);
#   - unavailability after kill -9 of the leader: from the kill to the first
#     successful write sent after it (4 writers, 100 ms per-call timeout),
#     median over the rounds; the killed member is restarted and caught up
#     between rounds;
#   - VmRSS of the replicas after the throughput runs (max over replicas);
#   - CPU time of the 3 replicas per write (utime+stime from /proc);
#   - context switches of the 3 replicas per write (voluntary + involuntary, summed over
#     their threads from /proc/PID/task/*/status);
#   - reads without Raft at the smallest and largest client counts (Specola's stale gets,
#     etcd's serializable ranges): each system's RPC path without Raft or disk, with its rate,
#     median latency and the replicas' CPU per get, a diagnostic (the ceiling on writes/s, the
#     floors under latency and CPU per write); a write minus its own system's read is printed
#     as that system's Raft part;
#     the same against a bare grpc-swift server that answers at once (`specola-bench
#     serve-bare`), which splits the RPC stack's own cost from what Specola adds.
# Targets (issue 11), each printed as a ratio against etcd over TLS (the like-for-like
# comparison, which decides) and against plaintext etcd: replica CPU per write at 64
# clients <= etcd's; median latency at 1 client <= etcd's; writes/s at 64 clients
# >= etcd's; median unavailability after a leader kill <= 0.5 s. RSS is shown beside etcd's.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${BENCH_SECONDS:-10}
clients=${BENCH_CLIENTS:-"1 16 64"}
rounds=${BENCH_ROUNDS:-5}
value_bytes=${BENCH_VALUE_BYTES:-128}
scratch=${BENCH_SCRATCH:-.build}
bin=$scratch/release
etcd_variants=${BENCH_ETCD:-"plain tls"}
hosts=(127.0.0.11 127.0.0.12 127.0.0.13)
export ETCDCTL_API=3

die() { echo "bench-raft: $*" >&2; exit 1; }
say() { echo "bench-raft: $*" >&2; }

awk -v s="$seconds" 'BEGIN { exit !(s > 0) }' || die "BENCH_SECONDS='$seconds' must be > 0"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS='$rounds' must be a positive integer"
[ "$(id -u)" = 0 ] || die "run as root (installs etcd if missing)"

# --- build and tools --------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  say "building specola-coordinator and specola-bench (release)"
  swift build -c release --scratch-path "$scratch" --product specola-coordinator >&2
  swift build -c release --scratch-path "$scratch" --product specola-bench >&2
fi
for b in specola-coordinator specola-bench; do
  [ -x "$bin/$b" ] || die "$bin/$b not found; run without BENCH_SKIP_BUILD"
done
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  scripts/install-deps.sh etcd >&2 || die "cannot install etcd; run: scripts/install-deps.sh etcd"
fi
command -v python3 >/dev/null || die "python3 missing (parses etcdctl's JSON): scripts/install-deps.sh"
for port in 23791 23792 23793 23801 23802 23803; do
  if ss -Hltn "sport = :$port" | grep -q .; then die "port $port is in use; stop whatever holds it"; fi
done

# --- process bookkeeping: everything started is stopped by PID ----------------
work=$(mktemp -d /tmp/bench-raft.XXXXXX)
declare -A pid_of=()   # member name (c1.., m1..) -> PID
alive() { [ -d "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
wait_gone() {  # PID 1 reaps late here: wait until /proc/PID is gone (bounded)
  local deadline=$((SECONDS + 10))
  while [ -d "/proc/$1" ] && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
}
stop_member() {
  local pid=${pid_of[$1]:-}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 5))
  while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  wait_gone "$pid"
  unset "pid_of[$1]"
}
cleanup() {
  local status=$?
  for name in "${!pid_of[@]}"; do stop_member "$name"; done
  if [ $status -ne 0 ] && [ -d "$work/logs" ]; then
    for f in "$work"/logs/*.log; do [ -s "$f" ] && { echo "--- ${f##*/} (last lines)" >&2; tail -n 6 "$f" >&2; }; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$work/logs"

gen() { timeout 120 "$bin/specola-bench" "$@"; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }   # RESULT key=value parsing
rss_mib() {  # max VmRSS over the given members, MiB
  local max=0 kib
  for name in "$@"; do
    kib=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/${pid_of[$name]}/status")
    [ "$kib" -gt "$max" ] && max=$kib
  done
  awk -v k="$max" 'BEGIN { printf "%.1f", k / 1024 }'
}
ctx_switches() {  # voluntary + involuntary context switches summed over the members' threads
  local name
  for name in "$@"; do cat /proc/"${pid_of[$name]}"/task/*/status 2>/dev/null; done |
    awk '$1 == "voluntary_ctxt_switches:" || $1 == "nonvoluntary_ctxt_switches:" { n += $2 } END { print n + 0 }'
}
cpu_ticks() {  # utime + stime summed over the given members
  local total=0 name
  for name in "$@"; do total=$((total + $(awk '{ print $14 + $15 }' "/proc/${pid_of[$name]}/stat"))); done
  echo "$total"
}
us_per_op() {  # $1 CPU ticks, $2 operations: microseconds of CPU per operation
  awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v ops="$2" 'BEGIN { printf "%.0f", (ops > 0 ? t / hz * 1e6 / ops : 0) }'
}
# Reads without Raft (Specola's stale gets, etcd's serializable ranges) at the smallest and
# largest client counts, one report line each (to stdout). $1 label, $2 system, $3 endpoints,
# $4 endpoint to read from, $5 what the CPU belongs to, then the members measured.
stale_gets() {
  local label=$1 system=$2 at=$3 target=$4 owner=$5 n line cpu_before; shift 5
  for n in $(printf '%s\n' $clients | sort -g | sed -n '1p;$p' | uniq); do
    cpu_before=$(cpu_ticks "$@")
    line=$(gen load --system "$system" --endpoints "$at" ${pki:+--pki "$pki"} --leader "$target" \
      --clients "$n" --seconds "$seconds" --op stale-get) || die "$label stale gets at $n clients failed"
    say "$label $n clients, stale gets: $line"
    local cpu; cpu=$(us_per_op "$(( $(cpu_ticks "$@") - cpu_before ))" "$(echo "$line" | field ops)")
    echo "$(echo "$line" | field p50_ms) $cpu" >"$work/reads-$label-$n"   # for the Raft-part lines
    printf '\n    %s clients: %s gets/s, median %s ms, %s CPU %s us per get' "$n" "$(echo "$line" | field throughput)" \
      "$(echo "$line" | field p50_ms)" "$owner" "$cpu"
  done
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A result=()   # "system,metric" -> value

# Runs the throughput series, RSS and kill rounds for one system.
# $1 system; the start_member, leader_now and caught_up functions are per system.
# $2 is the label results are stored under (default: the system).
measure() {
  local system=$1 label=${2:-$1} n line leader gaps="" gap pid name
  result[$label,load]=$(cut -d' ' -f1 /proc/loadavg)
  for n in $clients; do
    leader=$(leader_now)
    local cpu_before ctx_before; cpu_before=$(cpu_ticks "${members[@]}"); ctx_before=$(ctx_switches "${members[@]}")
    line=$(gen load --system "$system" --endpoints "$endpoints" ${pki:+--pki "$pki"} --leader "$leader" \
      --clients "$n" --seconds "$seconds" --value-bytes "$value_bytes") || die "$label load at $n clients failed"
    say "$label $n clients: $line"
    result[$label,tput$n]=$(echo "$line" | field throughput)
    result[$label,p50_$n]=$(echo "$line" | field p50_ms)
    result[$label,p99_$n]=$(echo "$line" | field p99_ms)
    result[$label,err$n]=$(echo "$line" | field errors)
    # CPU of the 3 replicas per successful write (warm-up included), microseconds
    result[$label,cpu$n]=$(us_per_op "$(( $(cpu_ticks "${members[@]}") - cpu_before ))" "$(echo "$line" | field ops)")
    result[$label,ctx$n]=$(awk -v c="$(( $(ctx_switches "${members[@]}") - ctx_before ))" \
      -v ops="$(echo "$line" | field ops)" 'BEGIN { printf "%.1f", (ops > 0 ? c / ops : 0) }')
  done
  # Diagnostic: reads that skip Raft and the disk show what each system's RPC path alone costs:
  # the ceiling on writes/s, the floor under CPU per write (largest client count) and under
  # 1-client latency (smallest). Subtracted from the writes, they leave each system's Raft part.
  result[$label,ceiling]=$(stale_gets "$label" "$system" "$endpoints" "$(leader_now)" replica "${members[@]}")
  result[$label,rss]=$(rss_mib "${members[@]}")
  for round in $(seq 1 "$rounds"); do
    local attempt
    for attempt in 1 2 3; do
      leader=$(leader_now)
      name=$(member_at "$leader")
      pid=${pid_of[$name]}
      line=$(gen failover --system "$system" --endpoints "$endpoints" ${pki:+--pki "$pki"} --leader "$leader" --pid "$pid") &&
        break
      # The generator kills only once writes reach the leader it was given; if leadership
      # moved before that (a loaded machine), nothing was killed and the round can be redone.
      alive "$pid" && [ "$attempt" -lt 3 ] || die "$label leader kill round $round failed"
      say "$label kill round $round: leadership moved before the kill; measuring again"
    done
    gap=$(echo "$line" | field gap_ms)
    say "$label kill round $round: leader $name ($leader) -> write again after $gap ms"
    gaps="$gaps $gap"
    wait_gone "$pid"
    unset "pid_of[$name]"
    start_member "$name"
    caught_up "$name"
  done
  result[$label,gaps]=$gaps
  result[$label,load]="${result[$label,load]} -> $(cut -d' ' -f1 /proc/loadavg)"
  result[$label,gap]=$(echo "$gaps" | median)
}

# --- Specola -----------------------------------------------------------------
say "Specola: 3 coordinator replicas on ${hosts[*]}"
line=$("$bin/specola-bench" setup --dir "$work/specola" --hosts "$(IFS=,; echo "${hosts[*]}")" --peers "${BENCH_PEERS:-direct}") ||
  die "setup failed"
endpoints=${line#ENDPOINTS }
IFS=, read -r -a specola_at <<<"$endpoints"
pki=$work/specola/pki
members=(c1 c2 c3)
specola_env=()
[ "${BENCH_PHASES:-1}" = 1 ] && specola_env+=(SPECOLA_WRITE_PHASES=1)
[ "${BENCH_SYNC_OFF:-0}" = 1 ] && specola_env+=(SPECOLA_TEST_SYNCHRONOUS_OFF=1)
start_member() {
  env "${specola_env[@]}" "$bin/specola-coordinator" --config "$work/specola/$1.yaml" >>"$work/logs/$1.log" 2>&1 &
  pid_of[$1]=$!
  disown "$!"   # no job notice when a round kills it
}
member_at() { local i; for i in 0 1 2; do [ "${specola_at[$i]}" = "$1" ] && { echo "c$((i + 1))"; return; }; done; die "no replica at $1"; }
leader_now() { gen leader --endpoints "$endpoints" --pki "$pki" || die "Specola has no leader"; }
caught_up() {
  gen caughtup --endpoints "$endpoints" --pki "$pki" --endpoint "${specola_at[${1#c} - 1]}" >/dev/null ||
    die "Specola replica $1 did not catch up after its restart"
}
for m in "${members[@]}"; do start_member "$m"; done
measure specola
for m in "${members[@]}"; do stop_member "$m"; done
# The replicas' write-phase sums (SPECOLA_WRITE_PHASES), busiest windows first: kept for the report.
phases_report=$(grep -H "write phases: " "$work"/logs/c?.log 2>/dev/null |
  sed 's|^.*/\(c[0-9]\)\.log:.*write phases: |\1 |' | sort -t= -k2 -rn | head -n 12 || true)

# --- the RPC stack alone -----------------------------------------------------
# Specola's KV API answered at once by a bare grpc-swift server (specola-bench serve-bare) over
# the same mTLS: what the RPC stack costs with nothing of Specola behind it, beside the
# coordinators' stale gets above. It is grpc's transport as shipped, so its answers wait for
# grpc's flush batching (up to 100 us) and each call's deadline starts a task and timer of its
# own; the coordinator sends a lone call's answer at once (FlushFinishedAnswers) and watches
# all deadlines with one timer (CallDeadlines), so its reads can cost less than this server's.
"$bin/specola-bench" serve-bare --pki "$pki" --name c1 --host "${hosts[0]}" >"$work/logs/bare.log" 2>&1 &
pid_of[bare]=$!
deadline=$((SECONDS + 30))
until grep -q '^LISTENING ' "$work/logs/bare.log"; do
  alive "${pid_of[bare]}" && [ $SECONDS -lt $deadline ] || die "the bare server did not start: $(cat "$work/logs/bare.log")"
  sleep 0.1
done
bare_at=$(sed -n 's/^LISTENING //p' "$work/logs/bare.log")
bare_report=$(stale_gets "bare grpc-swift server" specola "$bare_at" "$bare_at" server bare)
stop_member bare

# --- etcd --------------------------------------------------------------------
etcd_version=$(etcd --version | awk '/etcd Version/ { print $3 }')
endpoints=127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793
members=(m1 m2 m3)
spki=$work/specola/pki
# The TLS variant: client and peer mTLS with the bench's CA; the member certificates
# name 127.0.0.1, and the generator presents its user certificate, as to Specola.
etcd_tls=0
etcd_unsafe_flags() {
  [ "${BENCH_SYNC_OFF:-0}" = 1 ] || return 0
  if etcd --help 2>&1 | grep -q -- --unsafe-no-fsync; then echo --unsafe-no-fsync
  else say "BENCH_SYNC_OFF: etcd $etcd_version has no --unsafe-no-fsync; etcd still syncs"; fi
}
etcd_scheme() { [ "$etcd_tls" = 1 ] && echo https || echo http; }
etcd_flags() {
  [ "$etcd_tls" = 1 ] || return 0
  local cert=$spki/coordinator-etcd-$1.pem key=$spki/coordinator-etcd-$1-key.pem
  echo --cert-file "$cert" --key-file "$key" --client-cert-auth --trusted-ca-file "$spki/ca.pem" \
    --peer-cert-file "$cert" --peer-key-file "$key" --peer-client-cert-auth --peer-trusted-ca-file "$spki/ca.pem"
}
etcdctl_tls() {
  [ "$etcd_tls" = 1 ] || return 0
  echo --cacert "$spki/ca.pem" --cert "$spki/user-bench.pem" --key "$spki/user-bench-key.pem"
}
start_member() {
  local i=${1#m} s; s=$(etcd_scheme)
  # shellcheck disable=SC2046  # etcd_flags prints separate words
  # shellcheck disable=SC2046
  etcd --name "$1" $(etcd_unsafe_flags) --data-dir "$work/etcd-$etcd_label/$1" $(etcd_flags "$1") \
    --listen-client-urls "$s://127.0.0.1:2379$i" --advertise-client-urls "$s://127.0.0.1:2379$i" \
    --listen-peer-urls "$s://127.0.0.1:2380$i" --initial-advertise-peer-urls "$s://127.0.0.1:2380$i" \
    --initial-cluster "m1=$s://127.0.0.1:23801,m2=$s://127.0.0.1:23802,m3=$s://127.0.0.1:23803" \
    --initial-cluster-token "bench-raft-$etcd_label" --initial-cluster-state new >>"$work/logs/$etcd_label-$1.log" 2>&1 &
  pid_of[$1]=$!
  disown "$!"
}
member_at() { echo "m${1: -1}"; }
leader_now() {
  local deadline=$((SECONDS + 30)) leader
  while [ $SECONDS -lt $deadline ]; do
    # shellcheck disable=SC2046
    leader=$(timeout 5 etcdctl --endpoints="$endpoints" $(etcdctl_tls) --command-timeout=1s endpoint status -w json 2>/dev/null |
      python3 -c 'import json, sys
for s in json.load(sys.stdin):
    if s["Status"]["header"]["member_id"] == s["Status"]["leader"]: print(s["Endpoint"].split("://")[-1])' 2>/dev/null) || true
    [ -n "$leader" ] && { echo "$leader"; return; }
    sleep 0.2
  done
  die "etcd ($etcd_label) has no leader after 30 s"
}
caught_up() {
  local deadline=$((SECONDS + 30)) at="127.0.0.1:2379${1#m}"
  # shellcheck disable=SC2046
  until timeout 5 etcdctl --endpoints="$at" $(etcdctl_tls) --command-timeout=1s endpoint health >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "etcd member $1 ($etcd_label) not healthy 30 s after its restart"
    sleep 0.2
  done
}
for etcd_label in $etcd_variants; do
  case $etcd_label in
    plain) etcd_tls=0; pki="" ;;
    tls) etcd_tls=1; pki=$spki ;;
    *) die "BENCH_ETCD: unknown etcd variant '$etcd_label' (plain or tls)" ;;
  esac
  say "etcd $etcd_version ($etcd_label): 3 members on 127.0.0.1:2379{1,2,3}"
  for m in "${members[@]}"; do start_member "$m"; done
  measure etcd "etcd-$etcd_label"
  for m in "${members[@]}"; do stop_member "$m"; done
done

# --- report ------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
columns=(specola); for v in $etcd_variants; do columns+=("etcd-$v"); done
header() {
  local c; printf "%-38s" "metric"; for c in "${columns[@]}"; do printf " %12s" "$c"; done
  for c in "${columns[@]:1}"; do printf " %14s" "specola/${c#etcd-}"; done; echo
}
row() {  # label, metric key
  local c; printf "%-38s" "$1"; for c in "${columns[@]}"; do printf " %12s" "${result[$c,$2]:-}"; done
  for c in "${columns[@]:1}"; do printf " %14s" "$(ratio "${result[specola,$2]:-0}" "${result[$c,$2]:-0}")"; done; echo
}
echo
echo "Raft write benchmark: Specola 3 replicas vs etcd $etcd_version 3 members, loopback, $(nproc) cores"
echo "client: specola-bench (grpc-swift-2), ${value_bytes}-byte values, ${seconds} s per client count after 1 s warm-up"
echo "specola: client and peer mTLS (peers: ${BENCH_PEERS:-direct} channel); etcd-plain: plaintext h2c client and peer; etcd-tls: client and peer mTLS (same CA, same client certificate)"
echo "ratios: specola/plain = against plaintext etcd, specola/tls = against etcd over TLS"
echo
header
for n in $clients; do
  row "writes/s, $n clients" "tput$n"
  row "  median latency ms, $n clients" "p50_$n"
  row "  p99 latency ms, $n clients" "p99_$n"
  row "  failed writes, $n clients" "err$n"
  row "  replica CPU us per write, $n clients" "cpu$n"
  row "  context switches per write, $n clients" "ctx$n"
done
row "leader kill -9 -> write, median ms" gap
row "replica VmRSS MiB (max of 3)" rss
echo "  Specola without Raft or disk (stale gets, same client stack):${result[specola,ceiling]}"
for c in "${columns[@]}"; do
  [ "$c" = specola ] && continue
  echo "  $c without Raft or disk (serializable gets, same client stack):${result[$c,ceiling]}"
done
echo "  a bare grpc-swift server with nothing behind it (stale gets, same TLS and client stack):$bare_report"
# Each system's write minus its own read without Raft: what its Raft path (log, replication,
# fsync, apply) adds on top of its RPC stack.
low=$(printf '%s\n' $clients | sort -g | head -n 1); high=$(printf '%s\n' $clients | sort -g | tail -n 1)
echo "  Raft part (a write minus the same system's read without Raft):"
for c in "${columns[@]}"; do
  read -r low_ms _ <"$work/reads-$c-$low" 2>/dev/null || continue
  read -r _ high_cpu <"$work/reads-$c-$high" 2>/dev/null || continue
  echo "    $c: median latency at $low clients $(awk -v w="${result[$c,p50_$low]}" -v r="$low_ms" 'BEGIN { printf "%.3f", w - r }') ms," \
    "CPU per write at $high clients $(( ${result[$c,cpu$high]} - high_cpu )) us"
done
echo -n "  kill rounds, ms:"; for c in "${columns[@]}"; do echo -n " $c${result[$c,gaps]};"; done; echo
echo "  1-min load average at start -> end of each phase (2 cores; other work on the machine skews all):"
echo -n " "; for c in "${columns[@]}"; do echo -n " $c ${result[$c,load]};"; done; echo
echo

met=0
verdict() {  # name, condition (awk), shown value, counts (1: decides the exit status)
  local ok=no; awk "BEGIN { exit !($2) }" && ok=yes
  echo "target: $1: $3 -> met $ok"
  [ "$ok" = yes ] || [ "$4" != 1 ] || met=1
}
unmeasured() {  # name, why, counts
  echo "target: $1: not measured ($2) -> met no"; [ "$3" != 1 ] || met=1
}
# Issue 11's targets. The like-for-like comparison (etcd over TLS) decides; plaintext etcd is
# shown beside it. Each line gives Specola's value, etcd's, and Specola/etcd.
for c in "${columns[@]:1}"; do
  counts=0; { [ "$c" = etcd-tls ] || [ "${#columns[@]}" = 2 ]; } && counts=1
  if [ -n "${result[specola,cpu64]:-}" ]; then
    verdict "replica CPU per write at 64 clients <= $c's" "${result[specola,cpu64]} <= ${result[$c,cpu64]:-0}" \
      "${result[specola,cpu64]} us vs ${result[$c,cpu64]:-?} us = $(ratio "${result[specola,cpu64]}" "${result[$c,cpu64]:-0}")x" $counts
  else unmeasured "replica CPU per write at 64 clients <= $c's" "64 not in BENCH_CLIENTS" $counts; fi
  if [ -n "${result[specola,p50_1]:-}" ]; then
    verdict "median latency at 1 client <= $c's" "${result[specola,p50_1]} <= ${result[$c,p50_1]:-0}" \
      "${result[specola,p50_1]} ms vs ${result[$c,p50_1]:-?} ms = $(ratio "${result[specola,p50_1]}" "${result[$c,p50_1]:-0}")x" $counts
  else unmeasured "median latency at 1 client <= $c's" "1 not in BENCH_CLIENTS" $counts; fi
  if [ -n "${result[specola,tput64]:-}" ]; then
    verdict "writes/s at 64 clients >= $c's" "${result[specola,tput64]} >= ${result[$c,tput64]:-0}" \
      "${result[specola,tput64]} vs ${result[$c,tput64]:-?} = $(ratio "${result[specola,tput64]}" "${result[$c,tput64]:-0}")x" $counts
  else unmeasured "writes/s at 64 clients >= $c's" "64 not in BENCH_CLIENTS" $counts; fi
  echo "report: replica VmRSS (max of 3) ${result[specola,rss]} MiB vs $c ${result[$c,rss]:-?} MiB = $(ratio "${result[specola,rss]}" "${result[$c,rss]:-0}")x"
done
verdict "median unavailability after leader kill <= 0.5 s" "${result[specola,gap]} <= 500" "${result[specola,gap]} ms" 1
if [ -n "${phases_report:-}" ]; then
  echo
  echo "Specola write phases per replica and 5 s window (SPECOLA_WRITE_PHASES; leader: per acknowledged write;"
  echo "every replica: per Ready persisted), busiest windows first:"
  echo "$phases_report"
fi
[ "${BENCH_STRICT:-0}" = 1 ] && [ $met -ne 0 ] && exit 1
exit 0

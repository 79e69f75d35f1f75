#!/bin/bash
# Diagnostic for issue 11 (not a test): profiles the Specola leader during bench-raft.sh's
# 64-client run with perf, and writes flat, per-library and inclusive reports.
# usage (root): start `scripts/bench-raft.sh > LOG 2>&1` and, beside it,
#   scripts/profile-raft-leader.sh LOG OUTPREFIX
# It waits until the log reaches the 16-client run, lets the 64-client run start, takes the
# replica that used the most CPU over 1 s as the leader and samples it for 6 s. It only reads
# the bench's processes (found by their config path); it stops nothing.
log=$1; out=$2
for i in $(seq 1 1200); do grep -q "specola 16 clients" "$log" 2>/dev/null && break; sleep 0.5; done
sleep 3
pids=$(pgrep -f "specola-coordinator --config /tmp/bench-raft" | tr '\n' ',' | sed 's/,$//')
echo "pids $pids" > "$out.pids"
# highest CPU one = leader
for p in ${pids//,/ }; do echo "$p $(awk '{print $14+$15}' /proc/$p/stat)"; done > "$out.cpu0"
sleep 1
for p in ${pids//,/ }; do echo "$p $(awk '{print $14+$15}' /proc/$p/stat)"; done > "$out.cpu1"
leader=$(paste "$out.cpu0" "$out.cpu1" | awk '{print $4-$2, $1}' | sort -rn | head -1 | awk '{print $2}')
echo "leader $leader" >> "$out.pids"
perf record -F 999 -g -o "$out.data" -p "$leader" -- sleep 6 > "$out.rec.log" 2>&1
perf report -i "$out.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v "^#" | grep "%" | head -120 > "$out.flat.txt"
perf report -i "$out.data" --no-children --sort dso --stdio 2>/dev/null | grep -v "^#" | grep "%" | head -30 > "$out.dso.txt"
perf report -i "$out.data" --children --sort sym --stdio -g none 2>/dev/null | grep -v "^#" | grep "%" | head -150 > "$out.children.txt"

#!/bin/bash
# Diagnostic for issue 14's heal benchmark (not a test): where the writer's time goes when a brick
# of a replica-3 volume dies during a 1,000-file (100 MiB) copy through FUSE. Gluster alone, no
# Specola; one variable per step: healthy copy; brick down (no restart); the same with the polling
# three agents do at reportInterval 1 / healInfoInterval 1 (pool list, volume info, volume status,
# heal info summary, each agent after the last); the brick restarted 3 s into the copy with a heal
# triggered (Specola at its fastest). Prints wall time and the CPU every process of the run used
# (cgroup v1 cpuacct), since on 2 shared cores the wall time mostly measures the other load.
# Volume options to try go after DIR as NAME=VALUE (set after create, before start). With
# HEAL_EXP_MODE=quick only two steps run (a few minutes): the healthy copy, and the brick killed
# as the copy starts and restarted 3 s in; it prints the copy time and the time from the kill to
# zero entries to heal (the heal benchmark's measure), and the options' values in force. With
# HEAL_EXP_MODE=rate: the healthy copy, then brick 2 down for a whole copy, then `start force` and
# a heal, timed to zero entries, with the CPU each gluster process spent healing.
# HEAL_EXP_DIR_FIRST=1 makes the copy's target directory before the kill (the benchmark makes
# it during the copy, while the brick is down). HEAL_EXP_RESTART_AFTER=S (quick mode, default 3):
# seconds from the kill to the `start force`.
# Measured with HEAL_EXP_MODE=quick on glusterfs 10.3 (Debian 12), 2 shared cores, load 5-13:
# seconds from the kill to zero entries to heal (copy time in brackets), one run per line.
#   defaults (3 runs)                        48.2 (47.9)  94.4 (9.5)  58.4 (34.6)
#   cluster.locking-scheme granular          43.0 (40.7)
#   cluster.full-lock no                    104.7 (13.4)
#   cluster.shd-max-threads 4                41.3 (41.2)
#   cluster.shd-max-threads 16               62.8 (42.4)
#   cluster.eager-lock off                   54.3 (27.7)
#   cluster.data-self-heal-algorithm full    47.5 (36.1)
#   cluster.granular-entry-heal off          78.5 (38.7)
#   performance.client-io-threads on        100.6 (16.0)
#   cluster.entry-self-heal on               94.2 (19.2)
#   cluster.ensure-durability off            67.6 (17.9)
#   cluster.entry-self-heal on + shd 16      73.9 (73.6)
# Gluster 10.3's defaults already have client-side self-heal off (data, metadata, entry) and
# granular-entry-heal on. Every run lies within the defaults' own spread (48-94 s): either the
# writer is held back until the heal is done, or it finishes fast and the heal trails it; the
# total stays that of the self-heal daemon healing ~1,000 files that the copy created while the
# brick or its new directory was missing there. No option set was adopted.
# With the entries counted at the copy's end (defaults): target directory made during the copy
# 13.0 s copy, 1,502 entries, 113.7 s to zero; made before the kill (HEAL_EXP_DIR_FIRST=1) 10.6 s,
# 1,552 entries, 86.6 s and 8.8 s, 1,642 entries, 79.9 s. The brick left down for a whole copy
# lists ~2,000 (two per file), so most files written after the restart still need healing: the
# FUSE client reconnects only at its next 3 s portmap retry (6.0 s after the kill when the brick
# came back 3.5 s in, per the mount log), and the self-heal daemon then heals ~20 entries/s here.
# Later, on a quiet machine (load < 2), HEAL_EXP_MODE=rate (about 2,000 entries to heal): defaults 80-82 s to zero, and the two source bricks each
# burned ~43 s of CPU, which perf showed in io-threads' mutexes (heal requests come at least
# priority and wait behind the queue); performance.enable-least-priority off: 29 s and ~11 s of CPU
# per source brick; plus cluster.shd-max-threads 4: 32 s (now CPU-bound on 2 cores);
# performance.iot-pass-through on: 24 s (not adopted: the bricks' epoll threads would do disk I/O).
# In quick mode with enable-least-priority off: 986 entries after a 16 s copy, 30.8 s to zero.
# Specola now keeps enable-least-priority off (volume policy healPriority, default normal).
# usage (root, under the process-test lock):
#   flock /tmp/specola-process-tests.lock scripts/heal-write-experiments.sh [DIR [NAME=VALUE ...]]
set -uo pipefail
POOL=$(cd "$(dirname "$0")/.." && pwd)/Tests/Fixtures/gluster/pool.sh
export SPECOLA_GPOOL=hxa SPECOLA_GPOOL_NET=10.77.211
D=$(realpath -m "${1:-/tmp/specola-heal-experiments}"); shift || true
MODE=${HEAL_EXP_MODE:-full}
N=1000; B=$((100*1024*1024/1000))
g() { bash $POOL gluster $D "$@"; }
x() { bash $POOL exec $D "$@"; }
CG=/sys/fs/cgroup/cpuacct/specola-heal-exp; mkdir -p $CG; echo $$ > $CG/cgroup.procs
# Killed or failed midway (a `timeout`, Ctrl-C): the pool, its mounts and the cgroup still go.
teardown() {
  trap - EXIT
  for c in $(pgrep -P $$); do kill $c 2>/dev/null; done
  [ -e $D/peers ] && bash $POOL down $D >/dev/null 2>&1
  echo $$ > /sys/fs/cgroup/cpuacct/cgroup.procs 2>/dev/null
  for t in $(seq 1 50); do [ -s $CG/cgroup.procs ] || break; sleep 0.1; done  # children still exiting
  rmdir $CG 2>/dev/null; rm -rf $D
}
trap teardown EXIT; trap 'exit 143' TERM INT
now() { date +%s.%N; }
el() { echo "$(now) - $1" | bc; }
setup() {
  bash $POOL down $D >/dev/null 2>&1; rm -rf $D; mkdir -p $D/mnt $D/data
  for i in $(seq 1 $N); do head -c $B /dev/urandom > $D/data/f$i; done; sync
  bash $POOL up $D 3
  g 1 volume create v replica 3 10.77.211.1:$D/p1/bricks/v 10.77.211.2:$D/p2/bricks/v 10.77.211.3:$D/p3/bricks/v force >/dev/null
  for o in "$@"; do g 1 volume set v ${o%%=*} ${o#*=} >/dev/null || echo "set $o failed"; done
  g 1 volume start v >/dev/null
  x 1 mount -t glusterfs 10.77.211.1:/v $D/mnt
}
brickpid() { g 1 volume status v 10.77.211.$1:$D/p$1/bricks/v --xml | sed -n 's:.*<pid>\([0-9]*\)</pid>.*:\1:p' | head -1; }
killbrick() { local p=$(brickpid $1); kill -9 $p; while [ -e /proc/$p ]; do sleep 0.05; done; }
pending() { g 1 volume heal v info | awk -F: '/Number of entries/{gsub(/ /,"",$2); if ($2 ~ /^[0-9]+$/) s+=$2; else bad=1; n++} END{ if (bad||n<3) print "x"; else print s}'; }
startforce() { for t in $(seq 1 60); do g 1 volume start v force >/dev/null 2>&1; [ $(g 1 volume status v --xml | grep -c '<status>1</status>') -ge 4 ] && return; sleep 0.5; done; echo "restart failed"; }
waitheal() { local s=${1:-$(now)}; for t in $(seq 1 1200); do [ "$(pending)" = 0 ] && { echo "heal-done $(el $s)"; return; }; sleep 0.25; done; echo "heal timeout"; }
agentloop() { # one agent: a collection (never overlapping), then the report interval
  while :; do local s=$(now); g $1 pool list --xml; g $1 volume info --xml; g $1 volume status v --xml; local h=$(now); timeout 15 bash $POOL gluster $D $1 volume heal v info summary --xml; echo "agent$1 collect $(el $s) heal-summary $(el $h)" >&2; sleep 1; done >/dev/null 2>>$D/agentload.log; }
cliload() { agentloop 1 & agentloop 2 & agentloop 3 & wait; }
stopload() { local d=$(for c in $(pgrep -P $1); do echo $c; pgrep -P $c; done); kill $1 $d 2>/dev/null; wait $1 2>/dev/null; }
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
copy() { # label
  local cl=$(pgrep -f "glusterfs.*--volfile-id=/v.*$D/mnt" | head -1)
  local c0=$(cpu $cl) s=$(now) t0=$(cat $CG/cpuacct.usage)
  x 1 cp -r $D/data $D/mnt/$1
  echo "RESULT $1: copy $(el $s) s, cpu all $(( ($(cat $CG/cpuacct.usage) - t0) / 10000000 )) cs, fuse client $(( $(cpu $cl) - c0 )) cs, load $(cut -d' ' -f1 /proc/loadavg)"
}
setup "$@"
sleep 2
copy healthy1
if [ "$MODE" = quick ]; then
  g 1 volume get v all | grep -E '^(cluster\.(data|metadata|entry)-self-heal |cluster\.granular-entry-heal|cluster\.shd-|cluster\.data-self-heal-algorithm|cluster\.self-heal-window-size|cluster\.locking-scheme|cluster\.eager-lock|cluster\.background-self-heal-count|cluster\.heal-wait-queue-length|performance\.client-io-threads|cluster\.full-lock|cluster\.ensure-durability)' | awk '{printf "%s=%s ", $1, $2} END {print ""}' | sed 's/^/OPTIONS /'
  # HEAL_EXP_DIR_FIRST=1: the copy's target directory exists on every brick before the kill
  [ "${HEAL_EXP_DIR_FIRST:-0}" = 1 ] && { x 1 mkdir $D/mnt/dr; echo "target directory made before the kill"; }
  killbrick 2; k=$(now); x 1 cp -rT $D/data $D/mnt/dr & C=$!; sleep ${HEAL_EXP_RESTART_AFTER:-3}; startforce; g 1 volume heal v >/dev/null 2>&1; echo "restarted at $(el $k)"
  wait $C; echo "RESULT restart3: copy $(el $k) s, then $(pending) entries to heal"; w=$(waitheal $k); echo "RESULT restart3: kill to zero pending ${w#heal-done } s"
  x 1 umount -l $D/mnt; bash $POOL down $D
  echo $$ > /sys/fs/cgroup/cpuacct/cgroup.procs; rmdir $CG 2>/dev/null || true; rm -rf $D
  exit 0
fi
if [ "$MODE" = rate ]; then # gluster's heal rate alone: brick 2 down for the whole copy, then start force + heal
  killbrick 2; x 1 cp -r $D/data $D/mnt/dr
  t0=$(cat $CG/cpuacct.usage); declare -A c0
  for p in $(pgrep -f "glusterfs.*$D|glusterfsd.*$D"); do c0[$p]=$(cpu $p); done
  s=$(now); startforce; g 1 volume heal v >/dev/null 2>&1; w=$(waitheal $s)
  echo "RESULT rate: start force to zero pending ${w#heal-done } s, cpu all $(( ($(cat $CG/cpuacct.usage) - t0) / 10000000 )) cs"
  for p in "${!c0[@]}"; do [ -e /proc/$p ] && echo "  $(( $(cpu $p) - ${c0[$p]} )) cs $(tr '\0' ' ' < /proc/$p/cmdline | grep -o -- '--volfile-id [^ ]*' | head -1)"; done | sort -rn
  x 1 umount -l $D/mnt; bash $POOL down $D
  echo $$ > /sys/fs/cgroup/cpuacct/cgroup.procs; rmdir $CG 2>/dev/null || true; rm -rf $D
  exit 0
fi
killbrick 2; echo "killed brick 2"
copy down1
echo "pending after down1: $(g 1 volume heal v info summary | grep -i 'entries' | head -3 | tr '\n' ' ')"
s=$(now); startforce; echo "start force took $(el $s)"; g 1 volume heal v >/dev/null 2>&1; waitheal
copy healthy2
cliload & L=$!; copy healthy-agentload; stopload $L; sleep 1
killbrick 2; cliload & L=$!; copy down-agentload; stopload $L; sleep 1
s=$(now); startforce; g 1 volume heal v >/dev/null 2>&1; waitheal
# brick restarted 3 s into the copy, heal triggered at once (Specola at its fastest)
killbrick 2; x 1 cp -r $D/data $D/mnt/dr & C=$!; s=$(now); sleep 3; startforce; g 1 volume heal v >/dev/null 2>&1; echo "restarted at $(el $s)"; wait $C; echo "RESULT down-restart3: copy $(el $s)"; waitheal
copy healthy3
tail -5 $D/agentload.log
x 1 umount -l $D/mnt; bash $POOL down $D
echo $$ > /sys/fs/cgroup/cpuacct/cgroup.procs; rmdir $CG 2>/dev/null || true; rm -rf $D

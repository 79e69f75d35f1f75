#!/bin/bash
# The project's copy of testbeds/gluster/pool.sh, used by the GlusterFS tests. Changed from
# the testbed's: `down` finds the pool's processes by namespace (`ip netns pids`), so it also
# ends the bricks of a peer whose glusterd was killed, and clears namespaces a killed run left;
# and each glusterd runs under catatonit, a child subreaper, so a killed brick is reaped at once
# as systemd reaps it in production (this sandbox's PID 1 reaps orphans only about every 2 s, and
# until then glusterd counts the zombie as a running brick and `volume start force` does nothing).
#
# A real GlusterFS trusted pool on one machine: N peers, each glusterd in its own network namespace
# (address 10.77.0.<i>, reachable only from inside the pool's namespaces, never from the host) and
# its own mount namespace (private /run, /var/lib/glusterd, /var/log/glusterfs). Bricks are plain
# directories under DIR. Checked on Debian 12 with glusterfs-server 10.3: probe, replica-3 volume,
# FUSE mount, brick kill -9, `start force`, heal of 201 entries in about 9 s.
#
# usage: pool.sh up DIR [N]      start N peers (default 3) and probe them into one pool
#        pool.sh gluster DIR I ARGS...   run the gluster CLI as peer I (e.g. volume status --xml)
#        pool.sh exec DIR I CMD...       run a command inside peer I's namespaces (mount, ls, kill)
#        pool.sh down DIR        stop every process in the pool's namespaces and delete them
# Namespaces are named <prefix>1..N and <prefix>sw, prefix = SPECOLA_GPOOL (default gp); give each
# concurrent test its own prefix and its own 10.77.X subnet (SPECOLA_GPOOL_NET, default 10.77.0).
set -euo pipefail
P=${SPECOLA_GPOOL:-gp}; NET=${SPECOLA_GPOOL_NET:-10.77.0}
cmd=$1; D=$(realpath -m "$2"); shift 2
pid_of() { cat "$D/p$1/glusterd.pid"; }
case "$cmd" in
up)
  n=${1:-3}; mkdir -p "$D"
  ip netns add ${P}sw; ip netns exec ${P}sw ip link add br0 type bridge; ip netns exec ${P}sw ip link set br0 up
  for i in $(seq 1 "$n"); do
    mkdir -p "$D/p$i/lib" "$D/p$i/log" "$D/p$i/bricks"
    ip netns add $P$i
    ip link add ${P}v$i type veth peer name eth0 netns $P$i
    ip link set ${P}v$i netns ${P}sw
    ip netns exec ${P}sw ip link set ${P}v$i master br0; ip netns exec ${P}sw ip link set ${P}v$i up
    ip netns exec $P$i ip addr add $NET.$i/24 dev eth0; ip netns exec $P$i ip link set eth0 up; ip netns exec $P$i ip link set lo up
    cat > "$D/p$i/glusterd.vol" <<VOL
volume management
    type mgmt/glusterd
    option working-directory /var/lib/glusterd
    option transport-type socket
    option transport.socket.bind-address $NET.$i
    option transport.socket.keepalive-time 10
    option transport.socket.keepalive-interval 2
    option transport.socket.read-fail-log off
    option transport.socket.listen-port 24007
    option ping-timeout 0
    option event-threads 1
    option max-port 60999
end-volume
VOL
    cat > "$D/p$i/start.sh" <<SH
#!/bin/sh
mount -t tmpfs tmpfs /run && mkdir -p /run/gluster
mount --bind $D/p$i/lib /var/lib/glusterd
mount --bind $D/p$i/log /var/log/glusterfs
exec glusterd -N -f $D/p$i/glusterd.vol -p $D/p$i/glusterd.pid --log-file=$D/p$i/log/glusterd.log
SH
    chmod +x "$D/p$i/start.sh"
    ip netns exec $P$i unshare -m --propagation private catatonit -- "$D/p$i/start.sh" >"$D/p$i/out.log" 2>&1 &
  done
  for i in $(seq 1 "$n"); do
    for t in $(seq 1 50); do [ -s "$D/p$i/glusterd.pid" ] && nsenter -t "$(pid_of $i)" -m -n gluster --mode=script peer status >/dev/null 2>&1 && break; sleep 0.2; done
  done
  for i in $(seq 2 "$n"); do nsenter -t "$(pid_of 1)" -m -n gluster --mode=script peer probe $NET.$i >/dev/null; done
  echo "$n" > "$D/peers"; echo "pool up: peers $NET.1-$n; bricks go under $D/p<i>/bricks";;
gluster) i=$1; shift; exec nsenter -t "$(pid_of $i)" -m -n gluster --mode=script "$@";;
exec) i=$1; shift; exec nsenter -t "$(pid_of $i)" -m -n "$@";;
down)
  namespaces=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${P}([0-9]+|sw)$" || true)
  for ns in $namespaces; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  done
  for t in $(seq 1 50); do
    left=""; for ns in $namespaces; do left="$left$(ip netns pids "$ns" 2>/dev/null)"; done
    [ -z "$left" ] && break; sleep 0.1
  done
  for ns in $namespaces; do ip netns del "$ns" 2>/dev/null || true; done
  echo "pool down";;
*) echo "usage: pool.sh up|gluster|exec|down DIR ..." >&2; exit 2;;
esac

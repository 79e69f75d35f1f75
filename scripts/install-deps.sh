#!/usr/bin/env bash
# The one list of Debian (bookworm) packages Specola needs to build and test.
# The Swift toolchain itself is not a Debian package and is not installed here.
#
# usage: scripts/install-deps.sh [GROUP...]     (as root; default: core)
#   core   build + unit/process tests (C libraries, IPMI simulator, libvirt, podman, tools)
#   bench  scripts/bench-footprint.sh anchors (node_exporter, ipmi_exporter)
#   peers  the other real peers of testbeds: GlusterFS, etcd, Alertmanager, a systemd rootfs
#   etcd   only etcd 3.4 server and etcdctl (scripts/bench-raft.sh)
#   protoc regenerating Sources/Wire/Generated and Sources/Protocol/Generated (scripts/generate-protos.sh)
#   all    every group
#
# Idempotent: installs only what is missing, and runs `apt-get update` only then.
# Daemons that packages would start on install are held off (policy-rc.d),
# because some listen on every interface by default.
set -euo pipefail

core=(
  libsqlite3-dev                                   # outbox, coordinator store
  openipmi freeipmi-tools ipmitool                 # ipmi_sim BMC simulator, CLI clients
  libipmimonitoring-dev libfreeipmi-dev            # IPMI collector and fencing (C libraries)
  libvirt-dev libvirt-clients libvirt-daemon       # VM collector; libvirtd for state-change tests
  podman runc catatonit busybox-static             # container collector/executor (catatonit: pause image for kube play), test images
  glusterfs-server glusterfs-client mount catatonit # GlusterFS tests: a real pool (pool.sh, each glusterd under catatonit), FUSE mounts
  e2fsprogs                                        # mkfs.ext4: the disk-failure test's brick on a loop device
  smartmontools                                    # smartctl: SMART health of disks (and the collector test of its real JSON)
  libxml2                                          # FoundationXML (the agent parses gluster's --xml output)
  openssl iptables iproute2                        # PKI checks, partition tests, loopback addresses
  systemd                                          # systemd-analyze (scripts/check-units.sh)
  curl python3                                     # test helpers
  python3-aiosmtpd                                 # SMTP server for the alert e-mail tests
  python3-jsonschema                               # job schema test
  lemonldap-ng lemonldap-ng-fastcgi-server         # OIDC provider for the sign-in tests (Tests/Fixtures/oidc, plackup)
  libgd-securityimage-perl libimage-magick-perl libstring-random-perl
  libio-string-perl libcrypt-openssl-rsa-perl libcrypt-openssl-x509-perl libcrypt-openssl-bignum-perl
  glewlwyd dbconfig-no-thanks sqlite3              # OIDC provider with the device grant (Tests/Fixtures/oidc/start-glewlwyd.sh)
)
bench=(prometheus-node-exporter prometheus-ipmi-exporter)
peers=(glusterfs-server glusterfs-client etcd-server etcd-client prometheus-alertmanager
       debootstrap zstd systemd-container)
etcd=(etcd-server etcd-client)
protoc=(protobuf-compiler)

[ "$(id -u)" = 0 ] || { echo "install-deps: run as root (apt-get needs it)" >&2; exit 1; }
command -v apt-get >/dev/null || { echo "install-deps: apt-get not found; this script is for Debian 12" >&2; exit 1; }

wanted=()
[ $# -gt 0 ] || set -- core
for group in "$@"; do
  case "$group" in
    core) wanted+=("${core[@]}") ;;
    bench) wanted+=("${bench[@]}") ;;
    peers) wanted+=("${peers[@]}") ;;
    etcd) wanted+=("${etcd[@]}") ;;
    protoc) wanted+=("${protoc[@]}") ;;
    all) wanted+=("${core[@]}" "${bench[@]}" "${peers[@]}" "${protoc[@]}") ;;
    *) echo "install-deps: unknown group '$group'; use core, bench, peers, etcd, protoc or all" >&2; exit 1 ;;
  esac
done

missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#wanted[@]} packages present"
  exit 0
fi

# Keep postinst scripts from starting daemons (restored on exit).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
# glewlwyd's postinst would write /etc/glewlwyd and a database; the tests bring their own.
echo "glewlwyd glewlwyd/config_type select No configuration" | debconf-set-selections
echo "install-deps: installing ${missing[*]}"
apt-get update -qq
for pkg in "${missing[@]}"; do
  if [ -z "$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}')" ]; then
    echo "install-deps: package '$pkg' is not available from the configured apt sources (is this Debian 12 with main enabled?)" >&2
    exit 1
  fi
done
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"

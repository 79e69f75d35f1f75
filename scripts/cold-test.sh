#!/usr/bin/env bash
# Runs the README's test command the way CI's next machine would: it purges the Debian packages
# scripts/install-deps.sh installs, empties podman's stores and the apt cache, drops the page
# cache, clones this repository afresh and runs scripts/test.sh there, optionally with a CPU hog
# (stress-ng --cpu 1) on one core for the whole run.
#
# usage: SPECOLA_COLD_TEST=yes scripts/cold-test.sh N [hog]     (as root, on a disposable machine)
#   N    names the clone (/tmp/specola-cold-N) and its log (/tmp/specola-cold-N.log)
# DESTRUCTIVE: it removes packages, /var/lib/containers, /etc/containers and /var/lib/libvirt.
set -uo pipefail
[ "${SPECOLA_COLD_TEST:-}" = yes ] || { echo "cold-test: this purges packages and container state; set SPECOLA_COLD_TEST=yes on a disposable machine" >&2; exit 2; }
n=${1:?usage: cold-test.sh N [hog]}; hog=${2:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
pkgs="openipmi freeipmi-tools ipmitool libipmimonitoring-dev libfreeipmi-dev libvirt-dev libvirt-clients libvirt-daemon
      podman runc catatonit busybox-static iptables python3-aiosmtpd python3-jsonschema conmon
      glusterfs-server glusterfs-client smartmontools lemonldap-ng lemonldap-ng-fastcgi-server libio-string-perl
      glewlwyd glewlwyd-common dbconfig-no-thanks"
export DEBIAN_FRONTEND=noninteractive
if command -v podman >/dev/null; then
  podman system reset --force >/dev/null 2>&1
  CONTAINERS_CONF=$repo/Tests/Fixtures/podman/containers.conf CONTAINERS_STORAGE_CONF=$repo/Tests/Fixtures/podman/storage.conf \
    podman system reset --force >/dev/null 2>&1
fi
apt-get purge -y -qq $pkgs >/dev/null 2>&1
apt-get autoremove --purge -y -qq >/dev/null 2>&1
apt-get clean
rm -rf /var/lib/containers /var/lib/specola-tests /run/specola-tests /run/containers /run/libpod /var/lib/libvirt /etc/containers
sync; echo 3 > /proc/sys/vm/drop_caches
clone=/tmp/specola-cold-$n
rm -rf "$clone" && git clone -q "$repo" "$clone" && cd "$clone" || exit 1
echo "cold run $n at $(git rev-parse --short HEAD), hog='$hog', start $(date -u +%T)"
hogpid=
if [ -n "$hog" ]; then
  command -v stress-ng >/dev/null || apt-get install -y -qq stress-ng >/dev/null
  stress-ng --cpu 1 --timeout 3600 >/dev/null 2>&1 & hogpid=$!
fi
start=$(date +%s)
scripts/test.sh > /tmp/specola-cold-$n.log 2>&1; status=$?
end=$(date +%s)
[ -n "$hogpid" ] && kill "$hogpid"
echo "cold run $n: exit $status, wall $((end - start)) s; $(grep -E 'Test run with' /tmp/specola-cold-$n.log | tail -1)"
exit $status

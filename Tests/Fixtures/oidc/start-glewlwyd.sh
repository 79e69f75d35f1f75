#!/bin/sh
# Runs Glewlwyd (Debian 12: 2.7.5) as an OIDC provider offering the device authorization grant
# (RFC 8628), which LemonLDAP::NG 2.16 lacks, on HOST:PORT with its state in STATE_DIR; then
# setup-glewlwyd.sh configures it through its admin API.
# Usage: start-glewlwyd.sh STATE_DIR HOST PORT
# Needs: glewlwyd (scripts/install-deps.sh), sqlite3.
set -eu
state=$1 host=$2 port=$3
mkdir -p "$state"
rm -f "$state/glewlwyd.db"
# The schema and its one user, admin (password "password"), as Debian ships them.
zcat /usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz | sqlite3 "$state/glewlwyd.db"
# Debian's sample configuration, on HOST:PORT, plain HTTP, its database in STATE_DIR.
zcat /usr/share/doc/glewlwyd/glewlwyd.conf.sample.gz | sed \
    -e "s|^port=.*|port=$port|" -e "s|^#bind_address=.*|bind_address=\"$host\"|" \
    -e "s|^external_url=.*|external_url=\"http://$host:$port\"|" -e "s|^cookie_domain=.*|cookie_domain=\"$host\"|" \
    -e "s|^cookie_secure=.*|cookie_secure=0|" -e "s|^log_level=.*|log_level=\"WARNING\"|" \
    -e "s|/var/cache/glewlwyd/glewlwyd.db|$state/glewlwyd.db|" > "$state/glewlwyd.conf"
exec glewlwyd -c "$state/glewlwyd.conf"

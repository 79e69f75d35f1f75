#!/bin/sh
# Plays the user of the device grant at a Glewlwyd set up by setup-glewlwyd.sh: signs in as dwho,
# consents to client specola-cli's scope specola-cluster, and opens the verification page with USER_CODE.
# Usage: approve-device-code.sh BASE_URL USER_CODE
set -eu
api="$1/api" code=$2
jar=$(mktemp)
trap 'rm -f "$jar"' EXIT
curl -sf -o /dev/null -b "$jar" -c "$jar" -H 'Content-Type: application/json' -d '{"username":"dwho","password":"dwho-secret"}' "$api/auth/"
curl -sf -o /dev/null -b "$jar" -c "$jar" -X PUT -H 'Content-Type: application/json' -d '{"scope":"specola-cluster"}' "$api/auth/grant/specola-cli"
# Glewlwyd answers with a redirect to its "device complete" page once the code is approved.
curl -s -o /dev/null -w '%{redirect_url}\n' -b "$jar" -c "$jar" "$api/oidc/device?code=$code&g_continue"

#!/bin/sh
# Configures a Glewlwyd started by start-glewlwyd.sh through its admin API: an OIDC plugin "oidc"
# (issuer BASE/api/oidc, RS256 key, device grant with a 1 s poll interval, RFC 9068 access tokens),
# a public client specola-cli, a scope specola-cluster (the tokens' audience), and user dwho
# with password dwho-secret.
# Usage: setup-glewlwyd.sh STATE_DIR BASE_URL
set -eu
state=$1 base=$2
api="$base/api"
jar="$state/admin.cookies"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$state/signing.key" 2>/dev/null
openssl pkey -in "$state/signing.key" -pubout -out "$state/signing.pub" 2>/dev/null
post() { # METHOD PATH JSON
    curl -sf -o /dev/null -b "$jar" -c "$jar" -X "$1" -H 'Content-Type: application/json' -d "$3" "$api$2" || { echo "setup: $1 $2 failed" >&2; exit 1; }
}
post POST /auth/ '{"username":"admin","password":"password"}'
KEY="$state/signing.key" PUB="$state/signing.pub" ISSUER="$api/oidc" python3 -c '
import json, os
print(json.dumps({"module": "oidc", "name": "oidc", "display_name": "oidc", "parameters": {
    "iss": os.environ["ISSUER"], "jwt-type": "rsa", "jwt-key-size": "256",
    "key": open(os.environ["KEY"]).read(), "cert": open(os.environ["PUB"]).read(),
    "access-token-duration": 3600, "refresh-token-duration": 86400, "code-duration": 600, "refresh-token-rolling": True,
    "auth-type-code-enabled": True, "auth-type-device-enabled": True, "auth-type-refresh-enabled": True,
    "auth-type-password-enabled": False, "auth-type-client-enabled": False, "auth-type-implicit-enabled": False,
    "auth-type-token-enabled": False, "auth-type-id-token-enabled": True, "auth-type-none-enabled": False,
    "device-authorization-expiration": 600, "device-authorization-interval": 1, "pkce-allowed": True,
    "scope": [], "additional-parameters": [], "claims": [], "allow-non-oidc": True, "jwks-show": True,
    "subject-type": "public", "access-token-jwt-profile": True}}))' > "$state/plugin.json"
post POST /mod/plugin/ "$(cat "$state/plugin.json")"
post POST /scope/ '{"name":"specola-cluster","display_name":"Specola","description":"the Specola cluster","password_required":true,"password_max_age":0,"scheme":{}}'
post POST /client/ '{"client_id":"specola-cli","name":"specola","enabled":true,"confidential":false,"redirect_uri":["http://127.0.0.1/callback"],"authorization_type":["device_authorization","refresh_token"],"scope":[]}'
post POST /user/ '{"username":"dwho","name":"Doctor","password":"dwho-secret","scope":["g_profile","specola-cluster"],"enabled":true}'
rm -f "$jar"

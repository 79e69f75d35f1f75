#!/bin/sh
# Runs LemonLDAP::NG as the tests' OIDC provider on HOST:PORT, its state in STATE_DIR.
# A new KID makes a new signing key (a key rotation); the old state's sessions stay.
# Usage: start-lemonldap.sh STATE_DIR HOST PORT KID [TOKEN_TTL_SECONDS [REDIRECT_PORT]]
# REDIRECT_PORT: the loopback port of the CLI's authorization code redirect (LemonLDAP matches it exactly).
# Needs: lemonldap-ng lemonldap-ng-fastcgi-server (plackup) from Debian (scripts/install-deps.sh).
set -eu
state=$1 host=$2 port=$3 kid=$4 ttl=${5:-300} redirect_port=${6:-8765}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$state/conf" "$state/sessions/lock" "$state/psessions/lock" "$state/cache" "$state/keys"
key="$state/keys/$kid.key"
if [ ! -f "$key" ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key" 2>/dev/null
fi
openssl pkey -in "$key" -pubout -out "$state/keys/$kid.pub" 2>/dev/null
rm -f "$state/conf"/lmConf-*.json
ISSUER="http://$host:$port" STATE="$state" REDIRECT_PORT="$redirect_port" KID="$kid" TTL="$ttl" KEY="$key" PUB="$state/keys/$kid.pub" \
perl -MJSON::PP -e '
    local $/; open my $t, "<", $ARGV[0] or die; my $text = <$t>;
    sub slurp { local $/; open my $f, "<", $_[0] or die "$_[0]: $!"; my $s = <$f>; return $s }
    my $enc = JSON::PP->new->allow_nonref;
    my %v = (ISSUER => $ENV{ISSUER}, STATE => $ENV{STATE}, KID => $ENV{KID},
             PRIVATE_KEY => slurp($ENV{KEY}), PUBLIC_KEY => slurp($ENV{PUB}));
    for my $k (keys %v) { my $j = $enc->encode($v{$k}); $j =~ s/^"|"$//g; $text =~ s/\@$k\@/$j/g }
    $text =~ s/\@TOKEN_TTL\@/$ENV{TTL}/g;
    $text =~ s/\@REDIRECT_PORT\@/$ENV{REDIRECT_PORT}/g;
    print $text' "$here/lmConf.template.json" > "$state/conf/lmConf-1.json"
cat > "$state/lemonldap-ng.ini" <<INI
[all]
logLevel = ${LLNG_LOGLEVEL:-warn}
checkTime = 1
[configuration]
type = File
dirName = $state/conf
[portal]
staticPrefix = /static
templateDir = /usr/share/lemonldap-ng/portal/templates
languages = en
[handler]
status = 0
INI
export LLNG_DEFAULTCONFFILE="$state/lemonldap-ng.ini"
exec plackup --host "$host" --port "$port" /usr/share/lemonldap-ng/portal/htdocs/index.psgi

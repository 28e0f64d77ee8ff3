#!/bin/sh
# Create the secrets of docker-compose.yml, once, before the first start:
#
#   secrets/postgres_password  a random password (40 letters and digits), mode 0444
#   secrets/log_key            the log's Ed25519 key (PKCS#8), mode 0400, owned by
#                              uid 10001, the image's `ledger` user
#   secrets/tls_cert, tls_key  a self-signed certificate for the origin's host name, so
#                              that the proxy starts; replace them by your own (the key
#                              mode 0400, owned by uid 101, nginx's user)
#
# and print the log's vkey (LEDGER_LOG_VKEY). If .env does not exist, it is written from
# deploy/.env.example with LEDGER_ORIGIN and LEDGER_LOG_VKEY filled in.
#
# Usage, from anywhere, as a user who may run docker:
#   deploy/init-secrets.sh [ORIGIN]
# ORIGIN defaults to LEDGER_ORIGIN from the environment or from .env.
#
# Existing secrets are never replaced: a new log key would be a new log identity (its
# old checkpoints would no longer verify), and a new password would lock the api out of
# an initialised database. To rotate either, see deploy/README.md.
#
# Modes: a Docker Compose secret is a bind mount that keeps its file's owner and mode.
# The log key must be readable by uid 10001 and by nobody else (the server refuses a key
# file that its group or others may read); the password must be readable by the
# postgres (999) and ledger (10001) users of two containers, so it is world-readable
# inside a directory (secrets/, mode 0700) that only its owner may enter on the host.
# The key is made inside the image, by the server's own code (deploy/log_key.py), in a
# container with no network.
set -eu

fail() {
    echo "init-secrets: $*" >&2
    exit 1
}

cd "$(dirname "$0")/.."
image=${LEDGER_IMAGE:-endorsement-ledger:local}

origin=${1:-${LEDGER_ORIGIN:-}}
if [ -z "$origin" ] && [ -f .env ]; then
    origin=$(sed -n 's/^LEDGER_ORIGIN=//p' .env | tail -n 1)
fi
[ -n "$origin" ] || fail "give the log's origin (such as ledger.example.org/name) as argument or in .env"

mkdir -p secrets
chmod 0700 secrets

if [ -e secrets/postgres_password ]; then
    echo "secrets/postgres_password exists: kept"
else
    password=$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 40)
    [ ${#password} -eq 40 ] || fail "could not read 40 random characters from /dev/urandom"
    (umask 077 && printf '%s\n' "$password" >secrets/postgres_password)
    unset password
    chmod 0444 secrets/postgres_password
    echo "secrets/postgres_password: created"
fi

host=${origin%%/*}
if [ -e secrets/tls_cert ] || [ -e secrets/tls_key ]; then
    echo "secrets/tls_cert, secrets/tls_key exist: kept"
else
    command -v openssl >/dev/null || fail "openssl is needed for the self-signed certificate (or put your own in secrets/tls_cert and secrets/tls_key)"
    (umask 077 && openssl req -x509 -newkey ed25519 -nodes -days 90 -subj "/CN=$host" \
        -addext "subjectAltName=DNS:$host" -keyout secrets/tls_key -out secrets/tls_cert \
        >/dev/null 2>&1) || fail "could not create the self-signed certificate"
    chmod 0444 secrets/tls_cert
    chmod 0400 secrets/tls_key
    chown 101:101 secrets/tls_key 2>/dev/null || echo "note: chown 101 secrets/tls_key (as root), so that nginx can read it"
    echo "secrets/tls_cert, secrets/tls_key: self-signed for $host, valid 90 days: replace them by a real certificate"
fi

if ! docker image inspect "$image" >/dev/null 2>&1; then
    # docker build, not compose: compose needs LEDGER_LOG_VKEY, which comes next.
    echo "building $image"
    docker build --tag "$image" .
fi

if [ -e secrets/log_key ]; then
    echo "secrets/log_key exists: kept"
else
    docker run --rm -i --network none --user 0:0 --volume "$PWD/secrets:/out" \
        --entrypoint python "$image" - create /out/log_key "$origin" --owner 10001:10001 \
        <deploy/log_key.py >/dev/null \
        || fail "could not create secrets/log_key"
    echo "secrets/log_key: created"
fi

# Read the key back as the server's user, as the api will: this checks owner and mode.
vkey=$(docker run --rm -i --network none \
    --volume "$PWD/secrets/log_key:/run/secrets/log_key:ro" \
    --entrypoint python "$image" - vkey /run/secrets/log_key "$origin" <deploy/log_key.py) \
    || fail "the api's user (10001) cannot use secrets/log_key: it must be owned by 10001, mode 0400"

if [ -e .env ]; then
    echo "Set these in .env:"
    echo "LEDGER_ORIGIN=$origin"
    echo "LEDGER_LOG_VKEY=$vkey"
else
    (umask 077 && ORIGIN="$origin" VKEY="$vkey" awk '
        /^LEDGER_ORIGIN=/ { print "LEDGER_ORIGIN=" ENVIRON["ORIGIN"]; next }
        /^LEDGER_LOG_VKEY=/ { print "LEDGER_LOG_VKEY=" ENVIRON["VKEY"]; next }
        { print }
    ' deploy/.env.example >.env)
    echo ".env: written from deploy/.env.example"
fi
echo "The log's vkey (publish it; verifiers, mirrors and witnesses need it):"
echo "$vkey"

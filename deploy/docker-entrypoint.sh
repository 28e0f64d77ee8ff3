#!/bin/sh
# Entrypoint of the ledger image: `ledger "$@"`, after making the database password of
# a Docker secret available to libpq.
#
# The service takes its database as one URL (LEDGER_DATABASE_URL) and has no setting
# for a password file, while a password written into the URL would show in the
# compose file and in `docker inspect`. So the URL names no password
# (postgresql+psycopg://ledger@postgres:5432/ledger), and when DATABASE_PASSWORD_FILE
# names a file (a Docker secret holding the password alone), this script writes a
# libpq password file (PostgreSQL manual, "The Password File") under $TMPDIR, a
# tmpfs, readable by this user only, and exports PGPASSFILE. psycopg uses libpq,
# which reads it when it connects. Without DATABASE_PASSWORD_FILE nothing is written.
set -eu

fail() {
    echo "ledger-entrypoint: $*" >&2
    exit 2
}

if [ -n "${DATABASE_PASSWORD_FILE:-}" ]; then
    [ -f "$DATABASE_PASSWORD_FILE" ] && [ -r "$DATABASE_PASSWORD_FILE" ] \
        || fail "DATABASE_PASSWORD_FILE=$DATABASE_PASSWORD_FILE is not a readable file"
    # $(...) drops the final newline(s) a password file usually ends with.
    password=$(cat "$DATABASE_PASSWORD_FILE")
    [ -n "$password" ] || fail "the password in $DATABASE_PASSWORD_FILE is empty"
    case "$password" in
        *"
"*) fail "the password in $DATABASE_PASSWORD_FILE has more than one line" ;;
    esac
    # In a password file, '\' and ':' are escaped with '\'.
    escaped=$(printf '%s' "$password" | sed -e 's/\\/\\\\/g' -e 's/:/\\:/g')
    # mktemp creates the file with mode 0600, as libpq requires; the umask of the
    # server (and of the mirror's files, which the web server must read) is left alone.
    pgpass=$(mktemp "${TMPDIR:-/tmp}/ledger-pgpass.XXXXXXXX") \
        || fail "cannot create a password file in ${TMPDIR:-/tmp} (is it a writable tmpfs?)"
    printf '*:*:*:*:%s\n' "$escaped" >"$pgpass"
    unset password escaped
    export PGPASSFILE="$pgpass"
fi

exec ledger "$@"

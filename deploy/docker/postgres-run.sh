#!/usr/bin/env bash
# Entry point of the cancelguard/postgres image, with the official postgres image's interface:
# on first start (empty PGDATA) creates the cluster with POSTGRES_USER (default postgres) and
# POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), and the database POSTGRES_DB
# (default: the user's name); then runs the server, listening on every address of the container.
set -euo pipefail
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

if [[ ! -s $PGDATA/PG_VERSION ]]; then
    if [[ -z ${POSTGRES_PASSWORD:-} && $auth != trust ]]; then
        echo "postgres: set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
        exit 1
    fi
    initdb --username="$user" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") --auth-local=trust \
        --auth-host="$auth" --encoding=UTF8 --locale=C >/dev/null
    echo "host all all all $auth" >>"$PGDATA/pg_hba.conf"
    if [[ $db != postgres ]]; then
        echo "CREATE DATABASE \"$db\"" | postgres --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "postgres: created the cluster in $PGDATA (user $user, database $db)"
fi
if [[ ${1:-} == postgres ]]; then
    shift
    exec postgres -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
fi
exec "$@"

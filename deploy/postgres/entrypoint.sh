#!/bin/sh
# The PostgreSQL container's entrypoint: create the cluster, the application's user and its
# database on first start (an empty PGDATA), then run the server in the foreground as this
# process (so it gets the stop signal). Started as root, it runs everything as the `postgres`
# user (initdb and the server refuse root).
#
#   entrypoint.sh [SERVER-ARGUMENT...]   e.g. -c listen_addresses=127.0.0.1
#
# Arguments (compose's `command:`) go to the server as they do with the official postgres
# image: `-c name=value` settings win over postgresql.conf, at every start.
#
# Environment:
#   POSTGRES_PASSWORD   the application user's password (required on first start)
#   POSTGRES_USER       the application's user [apiclub]
#   POSTGRES_DB         its database [apiclub]
#   POSTGRES_NETWORK    who may connect with the password, a CIDR network [samenet: the
#                       container's own networks]
#   PGDATA              the cluster [/var/lib/postgresql/data]
#   PGPORT              the port [5432] (PostgreSQL reads it itself)
set -eu

log() {
    printf 'apiclub-postgres: %s\n' "$*" >&2
}

fail() {
    log "error: $*"
    exit 1
}

# check NAME VALUE ALLOWED-GLOB-CLASS WHAT: these values land in SQL and pg_hba.conf.
check() {
    case $2 in
        '' | *[!$3]*) fail "$1='$2' is not $4" ;;
    esac
}

bin=$(find /usr/lib/postgresql -path '*/bin/postgres' | sort -V | tail -n 1)
bin=${bin%/postgres}
[ -n "$bin" ] || fail "no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql)"
PGDATA=${PGDATA:-/var/lib/postgresql/data}
user=${POSTGRES_USER:-apiclub}
database=${POSTGRES_DB:-apiclub}
network=${POSTGRES_NETWORK:-samenet}
check POSTGRES_USER "$user" 'a-z0-9_' "a user name (lower-case letters, digits, _)"
check POSTGRES_DB "$database" 'a-z0-9_' "a database name (lower-case letters, digits, _)"
check POSTGRES_NETWORK "$network" '0-9a-f.:/samenet' "a CIDR network (10.89.201.0/24) or samenet"

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
    else
        "$@"
    fi
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password=${POSTGRES_PASSWORD:-}
    [ -n "$password" ] || fail "POSTGRES_PASSWORD is empty: set it in .env (the API's APICLUB_DATABASE_URL carries the same password)"
    check POSTGRES_PASSWORD "$password" 'A-Za-z0-9._~-' "URL-safe (letters, digits, . _ ~ -), as it goes into APICLUB_DATABASE_URL"
    mkdir -p "$PGDATA"
    [ "$(id -u)" != 0 ] || chown postgres:postgres "$PGDATA"
    chmod 0700 "$PGDATA"
    log "creating the cluster in $PGDATA"
    # The superuser has no password and connects over the local socket only ("peer").
    as_postgres "$bin/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    cat >>"$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
unix_socket_directories = '/tmp'
password_encryption = 'scram-sha-256'
CONF
    # Replace initdb's host lines: the application's user, with its password, from the network.
    sed -i '/^host/d' "$PGDATA/pg_hba.conf"
    printf 'host %s %s %s scram-sha-256\n' "$database" "$user" "$network" >>"$PGDATA/pg_hba.conf"
    as_postgres "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    as_postgres "$bin/psql" -h /tmp -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
        -c "CREATE ROLE $user LOGIN PASSWORD '$password'" \
        -c "CREATE DATABASE $database OWNER $user"
    as_postgres "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
    log "created user $user and database $database"
fi

log "serving $database on port ${PGPORT:-5432}"
if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$bin/postgres" -D "$PGDATA" "$@"
fi
exec "$bin/postgres" -D "$PGDATA" "$@"

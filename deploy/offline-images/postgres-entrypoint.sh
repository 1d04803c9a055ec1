#!/bin/sh
# As the official postgres image does, for what the compose files use: on first start, an empty
# $PGDATA is initialised with POSTGRES_USER (default postgres) as superuser, POSTGRES_PASSWORD as
# its password (scram-sha-256 over the network; POSTGRES_HOST_AUTH_METHOD=trust for development
# only) and POSTGRES_DB (default: the user's name) created; then the server listens on every
# interface.
set -eu
if [ "${1:-}" = "postgres" ]; then
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ "$auth" != trust ] && [ -z "${POSTGRES_PASSWORD:-}" ]; then
      echo "postgres: POSTGRES_PASSWORD is required (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
      exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" \
      --encoding=UTF8 --locale=C.UTF-8 > /dev/null
    rm -f "$pwfile"
    echo "host all all all $auth" >> "$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
      # A private socket folder: the health check (pg_isready) must not see this temporary server.
      sock=$(mktemp -d)
      pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$sock" -w start > /dev/null
      createdb --host="$sock" --username="$user" "$db"
      pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
      rmdir "$sock"
    fi
    echo "postgres: initialised $PGDATA (user $user, database $db)"
  fi
  shift
  exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"

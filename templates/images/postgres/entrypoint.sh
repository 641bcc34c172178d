#!/bin/sh
# First start: initdb with the superuser `postgres` (reachable only through the local socket,
# for maintenance), then the app's role POSTGRES_USER, without any special attribute, owning
# POSTGRES_DB: the web app connects and migrates as a role that owns its own database and
# nothing else. Every start sets that role's password to POSTGRES_PASSWORD (or the contents
# of POSTGRES_PASSWORD_FILE), so a changed secret takes effect with the next container (the
# official image keeps the first forever).
#
# A data directory from before this rule has the app's role as its (bootstrap) superuser:
# the next start creates `postgres` first, then takes the app role's attributes away.
set -eu

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

# POSTGRES_PASSWORD_FILE (the deployer's /run/secrets/...) instead of POSTGRES_PASSWORD:
# a value in the environment shows in `docker inspect`. Exactly the file's bytes (`x`
# keeps $(...) from eating trailing newlines).
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
  POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE"; printf x)
  POSTGRES_PASSWORD=${POSTGRES_PASSWORD%x}
fi

superuser=postgres
user=${POSTGRES_USER:-app}
db=${POSTGRES_DB:-$user}
if [ "$user" = "$superuser" ]; then
  echo "POSTGRES_USER must not be $superuser: the app gets a role of its own" >&2
  exit 1
fi

# Only the local socket listens meanwhile (trust auth); psql quotes the values itself
# (:"name" and :'literal'), so no password or name can change a statement.
start_local() { pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null; }
stop_local() { pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null; }
as() {
  login=$1
  shift
  psql -X -v ON_ERROR_STOP=1 -q -U "$login" -d postgres -v role="$user" -v db="$db" "$@"
}
# pg_hba.conf is read top to bottom: the superuser never logs in over the network.
reject_superuser_remotely() {
  grep -q "^host all $superuser all reject" "$PGDATA/pg_hba.conf" ||
    sed -i "1i host all $superuser all reject" "$PGDATA/pg_hba.conf"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set on first start}"
  initdb -D "$PGDATA" -U "$superuser" -E UTF8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  start_local
  as "$superuser" <<'SQL'
CREATE ROLE :"role" LOGIN;
CREATE DATABASE :"db" OWNER :"role";
SQL
  stop_local
fi

if [ -n "${POSTGRES_PASSWORD:-}" ]; then
  start_local
  if ! psql -X -q -U "$superuser" -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
    # An old data directory: only the app's role can log in, and it is the superuser.
    as "$user" <<'SQL'
CREATE ROLE postgres SUPERUSER LOGIN;
SQL
  fi
  # Every start: the role is an ordinary one, owns its database (and not the cluster's
  # own databases), and other databases are not open to it.
  as "$superuser" -v password="$POSTGRES_PASSWORD" <<'SQL'
ALTER ROLE :"role" NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS LOGIN PASSWORD :'password';
ALTER DATABASE :"db" OWNER TO :"role";
ALTER DATABASE postgres OWNER TO postgres;
ALTER DATABASE template0 OWNER TO postgres;
ALTER DATABASE template1 OWNER TO postgres;
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;
SQL
  stop_local
fi
reject_superuser_remotely

if [ "${1:-}" = postgres ]; then
  shift
  exec postgres -D "$PGDATA" "$@"
fi
exec "$@"

#!/usr/bin/env bash
# PostgreSQL (source database) from Debian, without systemd, on a free 127.0.0.1 port.
#
#   bash infra/postgres.sh install   # apt-get install postgresql when initdb is missing (root)
#   bash infra/postgres.sh start     # last line: postgresql+psycopg://pinpipe:PASSWORD@127.0.0.1:PORT/pinpipe
#   bash infra/postgres.sh stop
#
# initdb refuses to run as root, so as root the server runs as the `postgres` system user (created by the
# package); the state dir ${PINPIPE_INFRA_DIR:-infra/.run}/postgres must then be reachable by that user.
set -euo pipefail
source "$(dirname "$0")/common.sh"
svc_init postgres

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

install() {
  if [ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ]; then
    return 0
  fi
  apt_install postgresql
  [ -x "$(pg_bin)/initdb" ] || die "initdb still missing after installing postgresql"
}

# as_pg CMD...: run as the server's user (postgres when we are root)
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  already_running && return 0
  install
  local bin port pass
  bin="$(pg_bin)"
  port="$(saved_port postgres)"
  mkdir -p "$STATE/sock"
  touch "$LOG"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$STATE" "$STATE/sock" "$LOG"
    as_pg test -w "$STATE" || die "user postgres cannot write $STATE: use a PINPIPE_INFRA_DIR it can reach"
  fi
  if [ ! -s "$STATE/password" ]; then
    python3 -c 'import secrets; print(secrets.token_hex(12))' >"$STATE/password"
  fi
  pass="$(cat "$STATE/password")"
  if [ ! -f "$STATE/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$STATE/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >>"$LOG" 2>&1 || die "initdb failed"
  fi
  say "starting postgres on 127.0.0.1:$port, log $LOG"
  as_pg "$bin/pg_ctl" -D "$STATE/data" -l "$LOG" -w -t 120 start \
    -o "-p $port -k $STATE/sock -c listen_addresses=127.0.0.1 -c shared_buffers=64MB -c max_connections=100" \
    >/dev/null 2>&1 || die "pg_ctl start failed"
  head -1 "$STATE/data/postmaster.pid" >"$PIDFILE"
  as_pg "$bin/psql" -h "$STATE/sock" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q >>"$LOG" 2>&1 <<EOF \
    || die "could not create role and database"
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pinpipe') THEN
    CREATE ROLE pinpipe LOGIN CREATEDB PASSWORD '$pass';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE pinpipe OWNER pinpipe' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'pinpipe')
\gexec
EOF
  publish_endpoint "postgresql+psycopg://pinpipe:$pass@127.0.0.1:$port/pinpipe"
}

stop() {
  if pid_alive; then
    as_pg "$(pg_bin)/pg_ctl" -D "$STATE/data" -m fast -w -t 30 stop >/dev/null 2>&1 || stop_pid 10
  fi
  rm -f "$PIDFILE" "$ENDPOINT_FILE"
}

svc_main "$@"

#!/usr/bin/env bash
# MariaDB (MySQL-compatible source database) without systemd, on a free 127.0.0.1 port.
#
#   bash infra/mariadb.sh install   # apt-get install mariadb-server when mariadbd is missing (root)
#   bash infra/mariadb.sh start     # last line: mysql+pymysql://pinpipe:PASSWORD@127.0.0.1:PORT/pinpipe
#   bash infra/mariadb.sh stop
#
# The data directory, socket, log and a generated password live in ${PINPIPE_INFRA_DIR:-infra/.run}/mariadb.
# User `pinpipe` may create other databases (tests use one per test when they need isolation).
set -euo pipefail
source "$(dirname "$0")/common.sh"
svc_init mariadb

bin() { command -v "$1" || ls /usr/sbin/"$1" /usr/bin/"$1" 2>/dev/null | head -1; }

install() {
  if [ -n "$(bin mariadbd)" ] && [ -n "$(bin mariadb-install-db)" ]; then
    return 0
  fi
  apt_install mariadb-server mariadb-client
  [ -n "$(bin mariadbd)" ] || die "mariadbd still missing after installing mariadb-server"
}

client() {
  "$(bin mariadb)" --no-defaults -uroot --socket="$STATE/mysqld.sock" "$@"
}

start() {
  already_running && return 0
  install
  local port pass
  port="$(saved_port mariadb)"
  if [ ! -d "$STATE/data/mysql" ]; then
    "$(bin mariadb-install-db)" --no-defaults --datadir="$STATE/data" --user="$(id -un)" \
      --auth-root-authentication-method=socket --skip-test-db >>"$LOG" 2>&1 || die "mariadb-install-db failed"
  fi
  say "starting mariadbd on 127.0.0.1:$port, log $LOG"
  spawn "$(bin mariadbd)" --no-defaults --datadir="$STATE/data" --socket="$STATE/mysqld.sock" \
    --port="$port" --bind-address=127.0.0.1 --user="$(id -un)" --pid-file="$STATE/mysqld.pid" \
    --skip-name-resolve --innodb-buffer-pool-size=64M --max-connections=200 \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci
  wait_port "$port" 120
  if [ ! -s "$STATE/password" ]; then
    python3 -c 'import secrets; print(secrets.token_hex(12))' >"$STATE/password"
  fi
  pass="$(cat "$STATE/password")"
  client -e "CREATE DATABASE IF NOT EXISTS pinpipe;
    CREATE USER IF NOT EXISTS 'pinpipe'@'127.0.0.1' IDENTIFIED BY '$pass';
    CREATE USER IF NOT EXISTS 'pinpipe'@'localhost' IDENTIFIED BY '$pass';
    GRANT ALL PRIVILEGES ON *.* TO 'pinpipe'@'127.0.0.1';
    GRANT ALL PRIVILEGES ON *.* TO 'pinpipe'@'localhost';" >>"$LOG" 2>&1 || die "could not create database and user"
  publish_endpoint "mysql+pymysql://pinpipe:$pass@127.0.0.1:$port/pinpipe"
}

stop() { stop_server 30; }

svc_main "$@"

#!/usr/bin/env bash
# Third-party Node.js clients the integration tests drive against `pinpipe api serve`: Confluent's REST
# Proxy client (npm `kafka-rest`), pinned by tests/clients/package-lock.json, run with the machine's node.
#
#   bash infra/node-clients.sh install   # npm ci into tests/clients/node_modules (skipped when it is there)
#   bash infra/node-clients.sh start     # nothing to run: the tests start node; last line: the modules dir
#   bash infra/node-clients.sh stop      # nothing to stop
# npm keeps what it downloaded in its cache (~/.npm), so a reinstall works offline.
set -euo pipefail
source "$(dirname "$0")/common.sh"
svc_init node-clients

CLIENTS="$REPO_HOME/tests/clients"

installed() { [ -f "$CLIENTS/node_modules/kafka-rest/package.json" ] && [ -f "$CLIENTS/node_modules/.package-lock.json" ]; }

install() {
  command -v node >/dev/null || apt_install nodejs
  command -v npm >/dev/null || apt_install npm
  installed && return 0
  say "npm ci in $CLIENTS"
  (cd "$CLIENTS" && npm ci --prefer-offline --no-audit --no-fund >>"$LOG" 2>&1) || die "npm ci failed"
}

start() {
  install
  echo "$CLIENTS/node_modules"
}

stop() { :; }
status() { if installed; then echo "installed in $CLIENTS/node_modules"; else echo "missing"; exit 3; fi; }

svc_main "$@"

#!/usr/bin/env bash
# wrk, the HTTP load generator the ingestion benchmarks drive the API with (many concurrent keep-alive
# connections, one Lua script per request shape): Debian's `wrk` package.
#
#   bash infra/wrk.sh install   # apt-get install wrk when it is missing (root)
#   bash infra/wrk.sh start     # nothing to run: the benchmarks start it; last line: its path
#   bash infra/wrk.sh stop      # nothing to stop
set -euo pipefail
source "$(dirname "$0")/common.sh"
svc_init wrk

binary() { command -v wrk || true; }

install() {
  [ -n "$(binary)" ] && return 0
  apt_install wrk
  [ -n "$(binary)" ] || die "wrk still missing after apt-get install wrk"
}

start() {
  install
  binary
}

stop() { :; }
status() { if [ -n "$(binary)" ]; then echo "installed at $(binary)"; else echo "missing"; exit 3; fi; }

svc_main "$@"

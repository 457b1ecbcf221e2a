#!/usr/bin/env bash
# Headless Chromium for the dashboard's browser tests: Debian's `chromium` package (Playwright drives it
# through executable_path; no browser download at run time).
#
#   bash infra/chromium.sh install   # apt-get install chromium when /usr/bin/chromium is missing (root)
#   bash infra/chromium.sh start     # nothing to run: the tests launch the browser; last line: its path
#   bash infra/chromium.sh stop      # nothing to stop
set -euo pipefail
source "$(dirname "$0")/common.sh"
svc_init chromium

browser() { command -v chromium || ls /usr/bin/chromium 2>/dev/null || true; }

install() {
  [ -n "$(browser)" ] && return 0
  apt_install chromium fonts-dejavu-core
  [ -n "$(browser)" ] || die "chromium still missing after apt-get install chromium"
}

start() {
  install
  "$(browser)" --headless --no-sandbox --version >>"$LOG" 2>&1 || die "chromium does not run"
  browser
}

stop() { :; }
status() { if [ -n "$(browser)" ]; then echo "installed at $(browser)"; else echo "missing"; exit 3; fi; }

svc_main "$@"

#!/usr/bin/env bash
# A local AWS endpoint for S3 (the lake) and Kinesis (the streams): moto's server mode on 127.0.0.1.
#
# Why moto: it is a pip package already in the dev extra (no JVM, no npm, nothing to download at start),
# one process answers S3 and Kinesis (and any other AWS API pinpipe may need) on one port, and boto3,
# delta-rs and Spark's s3a talk to it with path-style requests like to any S3-compatible server.
# State is in memory: a restart starts empty (fine for tests; use real S3 for data that matters).
#
#   bash infra/moto.sh install   # checks that moto[server] is installed in .venv (pip install -e '.[dev]')
#   bash infra/moto.sh start     # last line: http://127.0.0.1:PORT
#   bash infra/moto.sh stop
#
# Point clients at it with AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_KINESIS = that URL, and any
# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (moto accepts all), AWS_REGION=us-east-1.
set -euo pipefail
source "$(dirname "$0")/common.sh"
svc_init moto

server_cmd() {
  if [ -x "$REPO_HOME/.venv/bin/moto_server" ]; then
    echo "$REPO_HOME/.venv/bin/moto_server"
  elif command -v moto_server >/dev/null; then
    command -v moto_server
  else
    return 1
  fi
}

install() {
  server_cmd >/dev/null || die "moto_server not found: install the dev extra (.venv/bin/uv pip install -e '.[dev]')"
}

start() {
  already_running && return 0
  install
  local port
  port="$(saved_port moto)"
  say "starting moto server on 127.0.0.1:$port, log $LOG"
  spawn "$(server_cmd)" -H 127.0.0.1 -p "$port"
  wait_port "$port" 60
  py - "$port" <<'EOF' || die "moto does not answer HTTP"
import sys, time, urllib.request
for _ in range(50):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=2).read()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
EOF
  publish_endpoint "http://127.0.0.1:$port"
}

stop() { stop_server 10; }

svc_main "$@"

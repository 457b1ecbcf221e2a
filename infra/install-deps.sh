#!/usr/bin/env bash
# Installs what the integration tests need on a fresh machine; every step is idempotent.
# Each service has its own infra/<service>.sh with `install`, `start` and `stop`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for script in "$here"/*.sh; do
  [ "$(basename "$script")" = "install-deps.sh" ] && continue
  [ "$(basename "$script")" = "common.sh" ] && continue
  bash "$script" install
done

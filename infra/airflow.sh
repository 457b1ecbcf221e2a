#!/usr/bin/env bash
# Apache Airflow in its own environment, .venv-airflow: Airflow pins FastAPI, SQLAlchemy and others to
# versions that conflict with pinpipe's, so it never shares pinpipe's .venv. No server is started: the
# tests run `airflow db migrate` in a temporary AIRFLOW_HOME and `dag.test()`.
#
#   bash infra/airflow.sh install   # python -m venv .venv-airflow + uv/pip install from
#                                   # infra/airflow/requirements.lock (apache-airflow 3.3.2, every
#                                   # dependency pinned: Airflow's own constraint files are not on PyPI),
#                                   # compiled to bytecode: `import airflow` takes 3.0 CPU s without,
#                                   # 1.3 s with, where bytecode is not written back (PYTHONDONTWRITEBYTECODE)
#   bash infra/airflow.sh start     # last line: the Python of .venv-airflow
#   bash infra/airflow.sh stop      # nothing to stop
#
# Re-lock after changing infra/airflow/requirements.in:
#   uv pip compile infra/airflow/requirements.in --python-version 3.11 -o infra/airflow/requirements.lock
set -euo pipefail
source "$(dirname "$0")/common.sh"
svc_init airflow

VENV="${PINPIPE_AIRFLOW_VENV:-$REPO_HOME/.venv-airflow}"
LOCK="$INFRA_HOME/airflow/requirements.lock"

base_python() {
  # the interpreter pinpipe's venv was made from (3.11 here), else python3
  if [ -f "$REPO_HOME/.venv/pyvenv.cfg" ]; then
    local home
    home="$(sed -n 's/^home *= *//p' "$REPO_HOME/.venv/pyvenv.cfg")"
    if [ -x "$home/python3" ]; then echo "$home/python3"; return; fi
  fi
  command -v python3
}

uv_bin() {
  if [ -x "$REPO_HOME/.venv/bin/uv" ]; then echo "$REPO_HOME/.venv/bin/uv"; else command -v uv || true; fi
}

install() {
  local marker="$VENV/.lock-$(file_sha "$LOCK")"
  [ -f "$marker" ] && [ -x "$VENV/bin/airflow" ] && return 0
  say "creating $VENV with apache-airflow (pinned in $LOCK)"
  [ -x "$VENV/bin/python" ] || "$(base_python)" -m venv "$VENV" || die "python -m venv failed"
  local uv
  uv="$(uv_bin)"
  if [ -n "$uv" ]; then
    "$uv" pip install -q --compile-bytecode --python "$VENV/bin/python" -r "$LOCK" >"$STATE/install.log" 2>&1 \
      || { tail -n 30 "$STATE/install.log" >&2; die "installing Airflow failed"; }
  else
    "$VENV/bin/python" -m pip install -q -r "$LOCK" >"$STATE/install.log" 2>&1 \
      || { tail -n 30 "$STATE/install.log" >&2; die "installing Airflow failed"; }
  fi
  "$VENV/bin/python" -c "import airflow" 2>>"$STATE/install.log" || die "airflow does not import"
  rm -f "$VENV"/.lock-*
  touch "$marker"
}

start() {
  install
  echo "$VENV/bin/python"
}

stop() { :; }
status() { if [ -x "$VENV/bin/airflow" ]; then echo "installed in $VENV"; else echo "missing"; exit 3; fi; }

svc_main "$@"

# Shared helpers for infra/<service>.sh (sourced, not run).
#
# Every service script keeps its state (data, logs, pid, ports, endpoint) in one directory:
#   ${PINPIPE_INFRA_DIR:-infra/.run}/<service>
# so tests give each session its own PINPIPE_INFRA_DIR and users get infra/.run by default.
# Downloads are cached in infra/.cache (gitignored). Servers listen on 127.0.0.1 only.

INFRA_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_HOME="$(cd "$INFRA_HOME/.." && pwd)"
CACHE_DIR="${PINPIPE_INFRA_CACHE:-$INFRA_HOME/.cache}"

# svc_init NAME: sets SVC, STATE, LOG, PIDFILE, ENDPOINT_FILE and creates the state dir.
svc_init() {
  SVC="$1"
  local base="${PINPIPE_INFRA_DIR:-$INFRA_HOME/.run}"
  mkdir -p "$base"
  base="$(cd "$base" && pwd)"
  STATE="$base/$SVC"
  LOG="$STATE/$SVC.log"
  PIDFILE="$STATE/$SVC.pid"
  ENDPOINT_FILE="$STATE/endpoint"
  mkdir -p "$STATE"
}

say() { echo "[$SVC] $*" >&2; }

# die MESSAGE: print the message and the tail of the service log to stderr, exit 1.
die() {
  echo "[$SVC] ERROR: $*" >&2
  if [ -n "${LOG:-}" ] && [ -s "$LOG" ]; then
    echo "[$SVC] last lines of $LOG:" >&2
    tail -n 40 "$LOG" >&2
  fi
  exit 1
}

# The project's Python (with the dev extras) when present, else the system one.
py() {
  if [ -x "$REPO_HOME/.venv/bin/python" ]; then "$REPO_HOME/.venv/bin/python" "$@"; else python3 "$@"; fi
}

# free_port: a TCP port free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  python3 - "$1" <<'EOF'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)
EOF
}

# pid_alive: true when the pid in $PIDFILE is a running process.
pid_alive() {
  [ -s "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  kill -0 "$pid" 2>/dev/null || return 1
  # a zombie is not alive
  [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != "Z" ]
}

# wait_port PORT TIMEOUT_S: wait until the port accepts connections; fail early if the process died.
wait_port() {
  local port="$1" timeout="$2" waited=0
  while ! port_open "$port"; do
    pid_alive || die "process exited before listening on 127.0.0.1:$port"
    [ "$waited" -ge "$((timeout * 5))" ] && die "nothing listens on 127.0.0.1:$port after ${timeout}s"
    sleep 0.2
    waited=$((waited + 1))
  done
}

# stop_pid [GRACE_S]: SIGTERM the process in $PIDFILE (and its group), wait, then SIGKILL.
stop_pid() {
  local grace="${1:-20}" pid i
  if ! pid_alive; then
    rm -f "$PIDFILE"
    return 0
  fi
  pid="$(cat "$PIDFILE")"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 5; i++)); do
    pid_alive || break
    sleep 0.2
  done
  if pid_alive; then
    say "still running after ${grace}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$PIDFILE"
}

# spawn CMD...: start CMD in the background (own session), output to $LOG, pid to $PIDFILE.
# Descriptors 3-9 are closed in the server: a lock held by the caller (`flock LOCK bash infra/...`) must
# not stay held for the server's whole life.
spawn() {
  setsid "$@" >>"$LOG" 2>&1 </dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
  echo $! >"$PIDFILE"
}

# already_running: when the service runs, print its endpoint (last line) and return 0.
already_running() {
  if pid_alive && [ -s "$ENDPOINT_FILE" ]; then
    cat "$ENDPOINT_FILE"
    return 0
  fi
  return 1
}

# saved_port NAME: the port remembered in the state dir (so a restart keeps the address), or a new one.
saved_port() {
  local file="$STATE/$1.port"
  if [ -s "$file" ]; then
    cat "$file"
  else
    free_port | tee "$file"
  fi
}

svc_status() {
  if pid_alive; then
    echo "running pid $(cat "$PIDFILE") at $(cat "$ENDPOINT_FILE" 2>/dev/null)"
  else
    echo "stopped"
    return 3
  fi
}

# file_sha FILE: a short content hash, for "is the cache up to date" markers.
file_sha() { sha256sum "$1" | cut -c1-16; }

# apt_install PACKAGE...: install Debian packages (root), without letting their post-install scripts start
# system-wide services (we start our own instances); `apt-get update` only when the first try fails.
apt_install() {
  [ "$(id -u)" = 0 ] || die "$* missing and installing needs root: apt-get install -y $*"
  say "installing $* from Debian"
  local policy=/usr/sbin/policy-rc.d created=0 rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  (apt-get install -y -q "$@" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }) || rc=$?
  if [ "$created" = 1 ]; then rm -f "$policy"; fi
  [ "$rc" = 0 ] || die "apt-get install $* failed"
}

# need_maven: die unless java and mvn are installed (the JVM services fetch their jars with Maven).
need_maven() {
  command -v java >/dev/null || die "java is not installed (apt-get install -y openjdk-17-jre-headless)"
  command -v mvn >/dev/null || die "mvn is not installed (apt-get install -y maven)"
}

# mvn_fetch POM_DIR OUT_DIR MVN_LOG WHAT: copy the runtime dependencies of POM_DIR/pom.xml into OUT_DIR;
# on failure show the tail of MVN_LOG and die. Maven keeps what it downloads in the user's local
# repository (~/.m2/repository, or PINPIPE_MAVEN_REPO), so another checkout on the machine fetches nothing.
mvn_fetch() {
  (cd "$1" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$2" -Dmaven.repo.local="${PINPIPE_MAVEN_REPO:-$HOME/.m2/repository}") >"$3" 2>&1 \
    || { tail -n 30 "$3" >&2; die "mvn could not fetch $4"; }
}

# publish_endpoint ENDPOINT: remember where the started service listens and print it (start's last line).
publish_endpoint() {
  echo "$1" >"$ENDPOINT_FILE"
  cat "$ENDPOINT_FILE"
}

# stop_server GRACE_S: stop the process in $PIDFILE (stop_pid) and forget its endpoint.
stop_server() {
  stop_pid "$1"
  rm -f "$ENDPOINT_FILE"
}

# The default `status` action of a server script; tool-only scripts (no server) define their own.
status() { svc_status; }

usage() {
  echo "usage: $0 install|start|stop|status" >&2
  exit 2
}

# svc_main ACTION: run the script's install, start, stop or status function (the last line of every script).
svc_main() {
  case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
  esac
}

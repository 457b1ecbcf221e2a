#!/usr/bin/env bash
# The JVM jars of the Spark engine (Kafka source/sink, Delta Lake, S3A) from Maven Central, for
# `spark.jars`, and a Spark standalone cluster on 127.0.0.1 made of the pyspark install's own classes.
# Spark itself is pyspark (pip, in .venv): local[*] needs no server.
#
#   bash infra/spark.sh install   # mvn dependency:copy-dependencies from infra/spark/pom.xml, cached in
#                                 # infra/.cache/spark-jars, minus every jar that pyspark already ships
#   bash infra/spark.sh start     # checks java; last line: the comma-separated jar list for spark.jars
#   bash infra/spark.sh stop      # nothing to stop
#
#   bash infra/spark.sh cluster start [--workers N]   # a master and N workers (default 2), each its own
#                                 # JVM (spark-class org.apache.spark.deploy.master.Master / ...worker.Worker);
#                                 # waits until the master counts N alive workers; last line:
#                                 # spark://127.0.0.1:PORT. Run again, it starts only what is not running.
#   bash infra/spark.sh cluster pids     # the master's PID, then one PID per worker (to kill one in a test)
#   bash infra/spark.sh cluster stop     # SIGTERM every JVM (a worker takes its executors down), then SIGKILL
#   bash infra/spark.sh cluster status
#
# Cluster state (ports, each JVM's log, the workers' work and scratch dirs) lives in
# ${PINPIPE_INFRA_DIR:-infra/.run}/spark/cluster: master/ and worker-N/. Each worker offers
# SPARK_WORKER_CORES (default 1) cores and SPARK_WORKER_MEMORY (default 1g) to executors; the daemons
# themselves run with SPARK_DAEMON_MEMORY (default 256m).
#
# Use: SPARK_LOCAL_IP=127.0.0.1, SparkSession.builder.config("spark.jars", "<that list>"), or
# `pinpipe batch run --engine spark --master spark://127.0.0.1:PORT` (docs/spark.md).
set -euo pipefail
source "$(dirname "$0")/common.sh"
svc_init spark

POM="$INFRA_HOME/spark/pom.xml"
JARS="$CACHE_DIR/spark-jars"

pyspark_jars() {
  py -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))' 2>/dev/null
}

install() {
  local marker
  marker="$JARS/.pom-$(file_sha "$POM")"
  [ -f "$marker" ] && return 0
  need_maven
  local shipped
  shipped="$(pyspark_jars)" || die "pyspark is not installed in .venv (install the spark extra)"
  say "fetching Spark jars from Maven Central into $JARS"
  rm -rf "$JARS" "$JARS.all"
  mkdir -p "$JARS" "$JARS.all"
  mvn_fetch "$INFRA_HOME/spark" "$JARS.all" "$CACHE_DIR/spark-mvn.log" "the Spark jars"
  # keep only what pyspark lacks: two versions of one library on the classpath is how Spark breaks
  python3 - "$JARS.all" "$shipped" "$JARS" <<'EOF'
import re, shutil, sys
from pathlib import Path
fetched, shipped, out = (Path(p) for p in sys.argv[1:])
def base(name):
    m = re.match(r"^(?P<base>.+?)-\d[\w.\-]*\.jar$", name)
    return m.group("base") if m else name
have = {base(p.name) for p in shipped.glob("*.jar")}
for jar in sorted(fetched.glob("*.jar")):
    if base(jar.name) not in have:
        shutil.copy2(jar, out / jar.name)
EOF
  rm -rf "$JARS.all"
  touch "$marker"
}

start() {
  install
  command -v java >/dev/null || die "java is not installed"
  ls "$JARS"/*.jar | paste -sd, -
}

stop() { :; }
status() { if [ -n "$(ls "$JARS"/*.jar 2>/dev/null)" ]; then echo "jars in $JARS"; else echo "missing"; exit 3; fi; }

# --- the standalone cluster ---------------------------------------------------------------------------

CLUSTER="$STATE/cluster"

# spark_home: the pyspark package directory (its bin/spark-class and jars/ are a Spark distribution).
spark_home() {
  py -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null \
    || die "pyspark is not installed in .venv (install the spark extra)"
}

# at NODE: PIDFILE and LOG of the cluster node NODE (master, worker-1, ...).
at() {
  mkdir -p "$CLUSTER/$1"
  PIDFILE="$CLUSTER/$1/spark.pid"
  LOG="$CLUSTER/$1/spark.log"
}

# registered WEBUI_PORT WORKER_PORT...: true when the master's status page lists a worker on each port as ALIVE.
registered() {
  python3 - "$@" <<'EOF' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/", timeout=3) as page:
    alive = {w["port"] for w in json.load(page)["workers"] if w["state"] == "ALIVE"}
sys.exit(0 if {int(p) for p in sys.argv[2:]} <= alive else 1)
EOF
}

# spark_class CLASS ARGS...: start a Spark daemon JVM (spawn) as the node `at` chose; SPARK_HOME in $HOME_DIR.
spark_class() {
  SPARK_HOME="$HOME_DIR" SPARK_LOCAL_IP=127.0.0.1 SPARK_DAEMON_MEMORY="${SPARK_DAEMON_MEMORY:-256m}" \
    SPARK_DAEMON_JAVA_OPTS="${SPARK_DAEMON_JAVA_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}" \
    spawn "$HOME_DIR/bin/spark-class" "$@"
}

# worker_ports N: the ports of workers 1..N.
worker_ports() { for ((j = 1; j <= $1; j++)); do cat "$CLUSTER/worker-$j/port"; done; }

# all_alive N: die unless the master and workers 1..N run.
all_alive() {
  local node
  for node in master $(seq -f "worker-%g" 1 "$1"); do
    at "$node"
    pid_alive || die "the $node JVM exited during start-up"
  done
}

cluster_start() {
  local n=2 i port webui endpoint
  case "${1:-}" in
    "") ;;
    --workers)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--workers needs a number of workers, got '${2:-}'"
      n="$2"
      ;;
    *) die "unknown cluster start option '$1' (use: cluster start [--workers N])" ;;
  esac
  if [ -s "$CLUSTER/workers" ] && [ "$(cat "$CLUSTER/workers")" != "$n" ]; then
    die "$CLUSTER holds a $(cat "$CLUSTER/workers")-worker cluster, not $n: stop it first"
  fi
  command -v java >/dev/null || die "java is not installed"
  HOME_DIR="$(spark_home)"
  mkdir -p "$CLUSTER"
  echo "$n" >"$CLUSTER/workers"
  at master
  port="$(saved_port cluster/master/port)"
  webui="$(saved_port cluster/master/webui)"
  endpoint="spark://127.0.0.1:$port"
  if ! pid_alive; then
    say "starting the master at $endpoint (status page http://127.0.0.1:$webui), log $LOG"
    spark_class org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$port" --webui-port "$webui"
    wait_port "$port" 90
  fi
  for ((i = 1; i <= n; i++)); do
    at "worker-$i"
    pid_alive && continue
    mkdir -p "$CLUSTER/worker-$i/work" "$CLUSTER/worker-$i/local"
    free_port >"$CLUSTER/worker-$i/port"
    say "starting worker $i (${SPARK_WORKER_CORES:-1} core(s), ${SPARK_WORKER_MEMORY:-1g}), log $LOG"
    # executors' scratch space (jars fetched, shuffle files) in the worker's dir, not /tmp
    SPARK_LOCAL_DIRS="$CLUSTER/worker-$i/local" spark_class org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --port "$(cat "$CLUSTER/worker-$i/port")" \
      --webui-port "$(free_port)" --cores "${SPARK_WORKER_CORES:-1}" --memory "${SPARK_WORKER_MEMORY:-1g}" \
      --work-dir "$CLUSTER/worker-$i/work" "$endpoint"
  done
  for ((i = 0; i < 300; i++)); do
    # shellcheck disable=SC2046
    registered "$webui" $(worker_ports "$n") && break
    all_alive "$n"
    sleep 0.3
  done
  # shellcheck disable=SC2046
  registered "$webui" $(worker_ports "$n") || die "the master at $endpoint lists fewer than $n alive workers"
  ENDPOINT_FILE="$CLUSTER/endpoint"
  publish_endpoint "$endpoint"
}

# cluster_nodes: master, then worker-1 .. worker-N.
cluster_nodes() {
  echo master
  if [ -s "$CLUSTER/workers" ]; then seq -f "worker-%g" 1 "$(cat "$CLUSTER/workers")"; fi
}

cluster_pids() {
  local node
  for node in $(cluster_nodes); do
    at "$node"
    if pid_alive; then cat "$PIDFILE"; fi
  done
}

cluster_status() {
  local node alive=0 total=0
  for node in $(cluster_nodes); do
    at "$node"
    total=$((total + 1))
    if pid_alive; then alive=$((alive + 1)); fi
  done
  if [ "$alive" -gt 0 ]; then
    echo "running $alive of $total JVMs (master and workers) at $(cat "$CLUSTER/endpoint" 2>/dev/null)"
  else
    echo "stopped"
    return 3
  fi
}

# cluster_stop: the workers first, in parallel (each stops its executors), then the master.
cluster_stop() {
  local node
  for node in $(cluster_nodes | grep -v '^master$'); do
    (at "$node" && stop_pid "${SPARK_STOP_GRACE:-20}") &
  done
  wait
  at master
  stop_pid "${SPARK_STOP_GRACE:-20}"
  rm -f "$CLUSTER/endpoint" "$CLUSTER/workers"
}

cluster() {
  case "${1:-}" in
    start) shift && cluster_start "$@" ;;
    stop) cluster_stop ;;
    pids) cluster_pids ;;
    status) cluster_status ;;
    *)
      echo "usage: $0 cluster start [--workers N]|stop|pids|status" >&2
      exit 2
      ;;
  esac
}

case "${1:-}" in
  cluster) shift && cluster "$@" ;;
  *) svc_main "$@" ;;
esac

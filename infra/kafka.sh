#!/usr/bin/env bash
# Apache Kafka 4.x (KRaft, no ZooKeeper) as one combined broker+controller on 127.0.0.1.
#
#   bash infra/kafka.sh install   # fetch the broker jars from Maven Central (infra/kafka/pom.xml), cached
#   bash infra/kafka.sh start     # format storage once, start, wait for clients; last line: 127.0.0.1:PORT
#   bash infra/kafka.sh start --brokers 3   # a KRaft cluster: 3 combined broker+controller processes,
#                                 # a 3-voter quorum; last line: 127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
#   bash infra/kafka.sh pids      # one broker PID per line (to kill one in a failure test)
#   bash infra/kafka.sh stop      # SIGTERM (controlled shutdown), then SIGKILL after a grace period
#   bash infra/kafka.sh status
#
# State (data, server.properties, log, ports) lives in ${PINPIPE_INFRA_DIR:-infra/.run}/kafka (node N of a
# cluster in kafka/node-N); a stop and start on the same state dir keeps the data and the addresses.
# Heap: KAFKA_HEAP (default -Xmx512m, -Xmx384m per node of a cluster).
set -euo pipefail
source "$(dirname "$0")/common.sh"
svc_init kafka

LIBS="$CACHE_DIR/kafka/libs"
POM="$INFRA_HOME/kafka/pom.xml"

install() {
  if [ -f "$LIBS/.pom-$(file_sha "$POM")" ]; then
    return 0
  fi
  need_maven
  say "fetching Kafka jars from Maven Central into $LIBS"
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  mvn_fetch "$INFRA_HOME/kafka" "$LIBS" "$CACHE_DIR/kafka/mvn.log" Kafka
  touch "$LIBS/.pom-$(file_sha "$POM")"
}

# write_config DIR NODE_ID PORT CPORT VOTERS BROKERS: DIR/server.properties and DIR/log4j2.properties.
# Internal topics get min(BROKERS, 3) replicas (min ISR 2 from three brokers on).
write_config() {
  local dir="$1" node="$2" port="$3" cport="$4" voters="$5" brokers="$6" rf isr
  rf=$((brokers < 3 ? brokers : 3))
  isr=$((rf < 3 ? 1 : 2))
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
default.replication.factor=$rf
auto.create.topics.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=168
log.segment.bytes=67108864
EOF
  cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
}

# JAVA: the java command line up to the main class. KAFKA_HEAP and KAFKA_JVM_OPTS override the defaults,
# which favour a quick start on a small shared machine (C1 JIT only, serial GC) over peak throughput.
# set_java DIR [HEAP]: JAVA for the node whose configuration is in DIR.
set_java() {
  # shellcheck disable=SC2206
  JAVA=(java ${KAFKA_HEAP:-${2:--Xmx512m} -Xms128m} ${KAFKA_JVM_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}
    -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$1/log4j2.properties" -cp "$LIBS/*")
}

# ready PORT [BROKERS]: the broker answers a metadata request listing BROKERS brokers (confluent-kafka
# from .venv when present) and serves consumer groups.
ready() {
  py - "$1" "${2:-1}" <<'EOF' 2>/dev/null
import sys
try:
    from confluent_kafka.admin import AdminClient
except ImportError:
    sys.exit(0)  # TCP check already passed; no client library to ask for metadata
from confluent_kafka import ConsumerGroupTopicPartitions

admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}"})
if len(admin.list_topics(timeout=3).brokers) < int(sys.argv[2]):
    sys.exit(1)
# ready for consumer groups too: this creates and loads __consumer_offsets
request = [ConsumerGroupTopicPartitions("infra-ready-check")]
admin.list_consumer_group_offsets(request, request_timeout=5)["infra-ready-check"].result()
EOF
}

# new_cluster_id: a random KRaft cluster id.
new_cluster_id() {
  python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))'
}

# format_once DIR CLUSTER_ID: format DIR's KRaft storage unless done before.
format_once() {
  if [ ! -f "$1/data/meta.properties" ]; then
    "${JAVA[@]}" kafka.tools.StorageTool format --cluster-id="$2" -c "$1/server.properties" >>"$LOG" 2>&1 \
      || die "could not format KRaft storage in $1"
  fi
}

# wait_ready PORT BROKERS: wait until the broker on PORT answers with BROKERS brokers in its metadata.
wait_ready() {
  local i
  for ((i = 0; i < 120; i++)); do
    ready "$1" "$2" && return 0
    pid_alive || die "broker exited during start-up"
    sleep 0.5
  done
  die "broker listens on $1 but does not answer metadata requests with $2 brokers"
}

start() {
  case "${1:-}" in
    "") start_single ;;
    --brokers)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--brokers needs a number of brokers, got '${2:-}'"
      if [ "$2" = 1 ]; then start_single; else start_cluster "$2"; fi
      ;;
    *) die "unknown start option '$1' (use: start [--brokers N])" ;;
  esac
}

start_single() {
  already_running && return 0
  [ -s "$STATE/brokers" ] && die "$STATE holds a $(cat "$STATE/brokers")-broker cluster: stop it and use another PINPIPE_INFRA_DIR"
  install
  local port cport
  port="$(saved_port broker)"
  cport="$(saved_port controller)"
  write_config "$STATE" 1 "$port" "$cport" "1@127.0.0.1:$cport" 1
  set_java "$STATE"
  format_once "$STATE" "$(new_cluster_id)"
  say "starting broker on 127.0.0.1:$port (controller $cport), log $LOG"
  spawn "${JAVA[@]}" kafka.Kafka "$STATE/server.properties"
  wait_port "$port" 90
  wait_ready "$port" 1
  publish_endpoint "127.0.0.1:$port"
}

# start_cluster N: N combined broker+controller processes, node i in $STATE/node-i with its own ports,
# data, log and pid file; all N are voters of the KRaft quorum.
start_cluster() {
  local n="$1" i voters="" ports=() cports=() dir cluster_id endpoint=""
  if [ -s "$STATE/brokers" ] && [ "$(cat "$STATE/brokers")" != "$n" ]; then
    die "$STATE holds a $(cat "$STATE/brokers")-broker cluster, not $n: stop it and use another PINPIPE_INFRA_DIR"
  fi
  [ -f "$STATE/data/meta.properties" ] && die "$STATE holds a single broker: use another PINPIPE_INFRA_DIR"
  install
  for ((i = 1; i <= n; i++)); do
    mkdir -p "$STATE/node-$i"
    ports[i]="$(saved_port "node-$i/broker")"
    cports[i]="$(saved_port "node-$i/controller")"
    voters+="${voters:+,}$i@127.0.0.1:${cports[i]}"
    endpoint+="${endpoint:+,}127.0.0.1:${ports[i]}"
  done
  echo "$n" >"$STATE/brokers"
  [ -s "$STATE/cluster.id" ] || new_cluster_id >"$STATE/cluster.id"
  cluster_id="$(cat "$STATE/cluster.id")"
  for ((i = 1; i <= n; i++)); do
    dir="$STATE/node-$i"
    PIDFILE="$dir/kafka.pid"
    LOG="$dir/kafka.log"
    pid_alive && continue
    write_config "$dir" "$i" "${ports[i]}" "${cports[i]}" "$voters" "$n"
    set_java "$dir" -Xmx384m
    format_once "$dir" "$cluster_id"
    say "starting node $i on 127.0.0.1:${ports[i]} (controller ${cports[i]}), log $LOG"
    spawn "${JAVA[@]}" kafka.Kafka "$dir/server.properties"
  done
  for ((i = 1; i <= n; i++)); do  # the quorum needs a majority up: wait only once all are started
    PIDFILE="$STATE/node-$i/kafka.pid"
    LOG="$STATE/node-$i/kafka.log"
    wait_port "${ports[i]}" 90
    wait_ready "${ports[i]}" "$n"
  done
  PIDFILE="$STATE/$SVC.pid"
  LOG="$STATE/$SVC.log"
  publish_endpoint "$endpoint"
}

# node_dirs: the state directory of every broker (just $STATE for a single broker).
node_dirs() {
  if [ -s "$STATE/brokers" ]; then
    local i
    for ((i = 1; i <= $(cat "$STATE/brokers"); i++)); do echo "$STATE/node-$i"; done
  else
    echo "$STATE"
  fi
}

pids() {
  local dir
  for dir in $(node_dirs); do
    PIDFILE="$dir/kafka.pid"
    if pid_alive; then cat "$PIDFILE"; fi
  done
}

status() {
  local dir alive=0 total=0
  for dir in $(node_dirs); do
    PIDFILE="$dir/kafka.pid"
    total=$((total + 1))
    if pid_alive; then alive=$((alive + 1)); fi
  done
  if [ "$alive" -gt 0 ]; then
    echo "running $alive of $total broker(s) at $(cat "$ENDPOINT_FILE" 2>/dev/null)"
  else
    echo "stopped"
    return 3
  fi
}

# stop: every broker, in parallel (a controlled shutdown of one waits for the others' quorum).
stop() {
  local dir
  for dir in $(node_dirs); do
    (PIDFILE="$dir/kafka.pid" && stop_pid "${KAFKA_STOP_GRACE:-30}") &
  done
  wait
  rm -f "$ENDPOINT_FILE"
}

case "${1:-}" in
  start) shift && start "$@" ;;
  pids) pids ;;
  *) svc_main "$@" ;;
esac

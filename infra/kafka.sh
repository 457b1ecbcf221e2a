#!/usr/bin/env bash
# Apache Kafka 4.x (KRaft, no ZooKeeper) as one combined broker+controller on 127.0.0.1.
#
#   bash infra/kafka.sh install   # fetch the broker jars from Maven Central (infra/kafka/pom.xml), cached
#   bash infra/kafka.sh start     # format storage once, start, wait for clients; last line: 127.0.0.1:PORT
#   bash infra/kafka.sh stop      # SIGTERM (controlled shutdown), then SIGKILL after a grace period
#   bash infra/kafka.sh status
#
# State (data, server.properties, log, ports) lives in ${PINPIPE_INFRA_DIR:-infra/.run}/kafka; a stop
# and start on the same state dir keeps the data and the address. Heap: KAFKA_HEAP (default -Xmx512m).
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

write_config() {
  local port="$1" cport="$2"
  cat >"$STATE/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$STATE/data
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=168
log.segment.bytes=67108864
EOF
  cat >"$STATE/log4j2.properties" <<EOF
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
set_java() {
  # shellcheck disable=SC2206
  JAVA=(java ${KAFKA_HEAP:--Xmx512m -Xms128m} ${KAFKA_JVM_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}
    -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$STATE/log4j2.properties" -cp "$LIBS/*")
}

# ready PORT: the broker answers a metadata request (confluent-kafka from .venv when present).
ready() {
  py - "$1" <<'EOF' 2>/dev/null
import sys
try:
    from confluent_kafka.admin import AdminClient
except ImportError:
    sys.exit(0)  # TCP check already passed; no client library to ask for metadata
from confluent_kafka import ConsumerGroupTopicPartitions

admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}"})
if not admin.list_topics(timeout=3).brokers:
    sys.exit(1)
# ready for consumer groups too: this creates and loads __consumer_offsets
request = [ConsumerGroupTopicPartitions("infra-ready-check")]
admin.list_consumer_group_offsets(request, request_timeout=5)["infra-ready-check"].result()
EOF
}

start() {
  already_running && return 0
  install
  local port cport i
  port="$(saved_port broker)"
  cport="$(saved_port controller)"
  write_config "$port" "$cport"
  set_java
  if [ ! -f "$STATE/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')"
    "${JAVA[@]}" kafka.tools.StorageTool format --cluster-id="$cluster_id" -c "$STATE/server.properties" >>"$LOG" 2>&1 \
      || die "could not format KRaft storage"
  fi
  say "starting broker on 127.0.0.1:$port (controller $cport), log $LOG"
  spawn "${JAVA[@]}" kafka.Kafka "$STATE/server.properties"
  wait_port "$port" 90
  for ((i = 0; i < 60; i++)); do
    if ready "$port"; then
      publish_endpoint "127.0.0.1:$port"
      return 0
    fi
    pid_alive || die "broker exited during start-up"
    sleep 0.5
  done
  die "broker listens on $port but does not answer metadata requests"
}

stop() { stop_server "${KAFKA_STOP_GRACE:-30}"; }

svc_main "$@"

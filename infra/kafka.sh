#!/usr/bin/env bash
# Local Apache Kafka (KRaft, one combined broker+controller) from Maven Central jars.
#   infra/kafka.sh install|up|down|status
#   infra/kafka.sh consume TOPIC [ConsoleConsumer options]   Kafka's own console consumer, with keys and headers
#   infra/kafka.sh groups [ConsumerGroupCommand options]     Kafka's consumer-group tool (default: --describe --all-groups)
# Data, logs, jars and the pid file live under $MARKETPLACE_LOCAL_DIR/kafka (default .local/kafka).
# When MARKETPLACE_KAFKA_BOOTSTRAP is set, an existing cluster is used: nothing is installed or started.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="${MARKETPLACE_LOCAL_DIR:-$ROOT/.local}"
KDIR="$LOCAL_DIR/kafka"
LIBS="${MARKETPLACE_KAFKA_LIBS:-$KDIR/libs}"
DATA="$KDIR/data"
LOGS="$KDIR/logs"
CONF="$KDIR/server.properties"
PIDFILE="$KDIR/kafka.pid"
HOST=127.0.0.1
PORT="${MARKETPLACE_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${MARKETPLACE_KAFKA_CONTROLLER_PORT:-19093}"
HEAP="${MARKETPLACE_KAFKA_HEAP:-1g}"
POM="$ROOT/infra/kafka/pom.xml"

log() { printf 'kafka: %s\n' "$*" >&2; }

external() { [[ -n "${MARKETPLACE_KAFKA_BOOTSTRAP:-}" ]]; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  if kill -0 "$pid" 2>/dev/null && grep -q 'kafka.Kafka' "/proc/$pid/cmdline" 2>/dev/null; then
    echo "$pid"; return 0
  fi
  return 1
}

install() {
  # The pom's hash names the jar set, so a changed pom triggers a fresh resolve.
  local stamp; stamp="$(sha256sum "$POM" | cut -c1-16)"
  if [[ -f "$LIBS/.resolved-$stamp" ]]; then return 0; fi
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    if [[ "$(id -u)" != 0 ]]; then
      log "java and mvn are needed: sudo apt-get install openjdk-17-jre-headless maven"; exit 1
    fi
    log "installing Java 17 and Maven from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless maven >&2
  fi
  log "resolving Kafka jars from Maven Central (first run only)"
  rm -rf "$LIBS"; mkdir -p "$LIBS"
  mvn -q -B -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$LIBS" -Dmaven.repo.local="$LOCAL_DIR/m2" >&2
  touch "$LIBS/.resolved-$stamp"
}

configure() {
  mkdir -p "$DATA" "$LOGS"
  sed -e "s#@HOST@#$HOST#g" -e "s#@PORT@#$PORT#g" \
      -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" -e "s#@DATA_DIR@#$DATA#g" \
      "$ROOT/infra/kafka/server.properties.in" > "$CONF"
  if [[ ! -f "$DATA/meta.properties" ]]; then
    local cluster_id
    cluster_id="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    log "formatting storage (cluster id $cluster_id)"
    java -cp "$LIBS/*" -Dlog4j2.configurationFile="$ROOT/infra/kafka/log4j2.properties" \
         -Dkafka.logs.dir="$LOGS" \
         kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$CONF" --standalone >&2
  fi
}

start() {
  if external; then log "using existing cluster at $MARKETPLACE_KAFKA_BOOTSTRAP"; return 0; fi
  local pid
  if pid="$(running_pid)"; then
    log "already running (pid $pid) on $HOST:$PORT"
  else
    if port_open "$HOST" "$PORT"; then
      log "port $HOST:$PORT is taken by a process this project did not start; set MARKETPLACE_KAFKA_BOOTSTRAP to use it, or free the port"
      exit 1
    fi
    install
    configure
    log "starting broker on $HOST:$PORT (controller $HOST:$CONTROLLER_PORT)"
    # setsid: the broker must outlive the shell that started it and not get its signals.
    setsid java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$ROOT/infra/kafka/log4j2.properties" \
      -Dkafka.logs.dir="$LOGS" \
      -cp "$LIBS/*" kafka.Kafka "$CONF" >"$LOGS/stdout.log" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
  fi
  wait_ready
}

wait_ready() {
  local deadline=$((SECONDS + ${MARKETPLACE_KAFKA_START_TIMEOUT:-90}))
  until port_open "$HOST" "$PORT"; do
    if ! running_pid >/dev/null; then
      log "broker exited during start-up; last lines of $LOGS/server.log:"
      tail -n 30 "$LOGS/server.log" >&2 || true
      exit 1
    fi
    if (( SECONDS > deadline )); then log "broker not listening after timeout"; exit 1; fi
    sleep 0.5
  done
  log "listening on $HOST:$PORT"
}

stop() {
  if external; then log "existing cluster at $MARKETPLACE_KAFKA_BOOTSTRAP is not ours to stop"; return 0; fi
  local pid
  if ! pid="$(running_pid)"; then log "not running"; rm -f "$PIDFILE"; return 0; fi
  log "stopping broker (pid $pid)"
  kill -TERM "$pid"
  local deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null; do
    if (( SECONDS > deadline )); then log "broker did not stop in 60 s; killing"; kill -KILL "$pid"; fi
    sleep 0.5
  done
  rm -f "$PIDFILE"
  log "stopped"
}

status() {
  if external; then echo "kafka: external cluster at $MARKETPLACE_KAFKA_BOOTSTRAP"; return 0; fi
  local pid
  if pid="$(running_pid)"; then
    echo "kafka: running pid $pid, bootstrap $HOST:$PORT, data $DATA, logs $LOGS"
  else
    echo "kafka: stopped (data $DATA)"; return 3
  fi
}

tool() {
  install
  local bootstrap="${MARKETPLACE_KAFKA_BOOTSTRAP:-$HOST:$PORT}"
  local cls="$1"; shift
  java -cp "$LIBS/*" -Dlog4j2.configurationFile="$ROOT/infra/kafka/log4j2.properties" \
       -Dkafka.logs.dir="$LOGS" "$cls" --bootstrap-server "$bootstrap" "$@"
}

case "${1:-}" in
  consume)
    [[ -n "${2:-}" ]] || { echo "usage: $0 consume TOPIC [options]" >&2; exit 2; }
    topic="$2"; shift 2
    tool org.apache.kafka.tools.consumer.ConsoleConsumer --topic "$topic" --from-beginning \
      --property print.key=true --property print.headers=true --property print.partition=true \
      --property print.offset=true "$@" ;;
  groups)
    shift
    if [[ $# -eq 0 ]]; then set -- --describe --all-groups; fi
    tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@" ;;
  install) install ;;
  start|up) start ;;
  stop|down) stop ;;
  status) status ;;
  *) echo "usage: $0 install|up|down|status|consume TOPIC|groups" >&2; exit 2 ;;
esac

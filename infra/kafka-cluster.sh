#!/usr/bin/env bash
# A local three-node Apache Kafka cluster (KRaft; each node broker and controller) on loopback,
# for the fault tests: replication factor 3, min.insync.replicas 2. Uses the same jars as
# infra/kafka.sh; separate ports and data under $MARKETPLACE_LOCAL_DIR/kafka-cluster.
#   infra/kafka-cluster.sh up|down|status|bootstrap
#   infra/kafka-cluster.sh kill N     SIGKILL node N (1-3), as a crash would
#   infra/kafka-cluster.sh start N    start node N again
#   infra/kafka-cluster.sh wipe       stop every node and delete the cluster's data
# Ports: node N listens on BASE+100*(N-1) (brokers) and that +1 (controllers); BASE is
# $MARKETPLACE_CLUSTER_BASE_PORT, default 18092 (below the ephemeral range, 32768 and up, where an outgoing connection could hold the port).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="${MARKETPLACE_LOCAL_DIR:-$ROOT/.local}"
CDIR="$LOCAL_DIR/kafka-cluster"
LIBS="${MARKETPLACE_KAFKA_LIBS:-$LOCAL_DIR/kafka/libs}"
HOST=127.0.0.1
BASE="${MARKETPLACE_CLUSTER_BASE_PORT:-18092}"
HEAP="${MARKETPLACE_CLUSTER_HEAP:-512m}"
NODES=(1 2 3)

log() { printf 'kafka-cluster: %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
broker_port() { echo $((BASE + 100 * ($1 - 1))); }
controller_port() { echo $((BASE + 100 * ($1 - 1) + 1)); }
node_dir() { echo "$CDIR/node$1"; }

voters() {
  local n out=""
  for n in "${NODES[@]}"; do out+="${out:+,}$n@$HOST:$(controller_port "$n")"; done
  echo "$out"
}

bootstrap() {
  local n out=""
  for n in "${NODES[@]}"; do out+="${out:+,}$HOST:$(broker_port "$n")"; done
  echo "$out"
}

pid_of() {
  local f; f="$(node_dir "$1")/kafka.pid"
  [[ -f "$f" ]] || return 1
  local pid; pid="$(cat "$f")"
  kill -0 "$pid" 2>/dev/null && grep -q 'kafka.Kafka' "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

configure() {
  local n="$1" dir; dir="$(node_dir "$n")"
  mkdir -p "$dir/data" "$dir/logs"
  sed -e "s#@HOST@#$HOST#g" -e "s#@NODE@#$n#g" -e "s#@PORT@#$(broker_port "$n")#g" \
      -e "s#@CONTROLLER_PORT@#$(controller_port "$n")#g" -e "s#@VOTERS@#$(voters)#g" \
      -e "s#@DATA_DIR@#$dir/data#g" "$ROOT/infra/kafka/cluster.properties.in" > "$dir/server.properties"
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    java -cp "$LIBS/*" -Dlog4j2.configurationFile="$ROOT/infra/kafka/log4j2.properties" \
         -Dkafka.logs.dir="$dir/logs" kafka.tools.StorageTool format \
         --cluster-id "$(cat "$CDIR/cluster.id")" --config "$dir/server.properties" >&2
  fi
}

start_node() {
  local n="$1" dir pid; dir="$(node_dir "$n")"
  if pid="$(pid_of "$n")"; then log "node $n already running (pid $pid)"; return 0; fi
  if port_open "$HOST" "$(broker_port "$n")"; then
    log "port $(broker_port "$n") is taken by a process this project did not start"; exit 1
  fi
  configure "$n"
  setsid java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/infra/kafka/log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $! > "$dir/kafka.pid"
  log "node $n starting on $HOST:$(broker_port "$n") (controller $(controller_port "$n"))"
}

wait_node() {
  local n="$1" deadline=$((SECONDS + ${MARKETPLACE_KAFKA_START_TIMEOUT:-120}))
  until port_open "$HOST" "$(broker_port "$n")"; do
    if ! pid_of "$n" >/dev/null; then
      log "node $n exited; its errors and the last lines of its log:"
      grep -h -m 10 -E "ERROR|FATAL|Exception" "$(node_dir "$n")/logs/server.log" "$(node_dir "$n")/logs/stdout.log" >&2 || true
      tail -n 5 "$(node_dir "$n")/logs/server.log" >&2 || true
      exit 1
    fi
    if (( SECONDS > deadline )); then log "node $n not listening after timeout"; exit 1; fi
    sleep 0.5
  done
}

up() {
  "$ROOT/infra/kafka.sh" install
  mkdir -p "$CDIR"
  if [[ ! -f "$CDIR/cluster.id" ]]; then
    java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1 > "$CDIR/cluster.id"
  fi
  local n
  for n in "${NODES[@]}"; do start_node "$n"; done
  for n in "${NODES[@]}"; do wait_node "$n"; done
  log "up: $(bootstrap)"
}

stop_node() {
  local n="$1" signal="${2:-TERM}" pid
  if ! pid="$(pid_of "$n")"; then return 0; fi
  kill -"$signal" "$pid"
  local deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null; do
    if (( SECONDS > deadline )); then kill -KILL "$pid"; fi
    sleep 0.2
  done
  rm -f "$(node_dir "$n")/kafka.pid"
}

node_arg() {
  [[ "${1:-}" =~ ^[123]$ ]] || { echo "usage: $0 kill|start N (N = 1, 2 or 3)" >&2; exit 2; }
}

case "${1:-}" in
  up) up ;;
  down) for n in "${NODES[@]}"; do stop_node "$n"; done; log "stopped" ;;
  wipe) for n in "${NODES[@]}"; do stop_node "$n" KILL; done; rm -rf "$CDIR"; log "wiped" ;;
  kill) node_arg "${2:-}"; stop_node "$2" KILL; log "node $2 killed" ;;
  start) node_arg "${2:-}"; start_node "$2"; wait_node "$2" ;;
  bootstrap) bootstrap ;;
  status)
    for n in "${NODES[@]}"; do
      if pid="$(pid_of "$n")"; then echo "node $n: running pid $pid on $HOST:$(broker_port "$n")"
      else echo "node $n: stopped"; fi
    done ;;
  *) echo "usage: $0 up|down|status|bootstrap|kill N|start N|wipe" >&2; exit 2 ;;
esac

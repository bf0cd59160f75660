#!/usr/bin/env bash
# The private stack of the fault suite (tests/reliability/test_market_faults.py): a three-node
# Kafka cluster (infra/kafka-cluster.sh) and a PostgreSQL cluster (infra/postgres.sh) of its own,
# with data under $MARKETPLACE_LOCAL_DIR/faults and ports apart from the shared stack's, so the
# suite can kill and restart them while other tests keep using the shared Kafka and PostgreSQL.
#   infra/faults.sh env    the MARKETPLACE_* variables that point a command at the private stack
#   infra/faults.sh down   stop what the suite started: its services (by the pids it wrote down),
#                          the cluster and PostgreSQL (their data stays)
#   infra/faults.sh wipe   down, and delete the cluster's data and drop the private database
# Ports: brokers $MARKETPLACE_FAULTS_BASE_PORT (18392), +100, +200 (controllers +1 each);
# PostgreSQL $MARKETPLACE_FAULTS_PG_PORT (15533). All on 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${MARKETPLACE_LOCAL_DIR:-$ROOT/.local}"
DIR="$SHARED/faults"
BASE="${MARKETPLACE_FAULTS_BASE_PORT:-18392}"
PG_PORT="${MARKETPLACE_FAULTS_PG_PORT:-15533}"
LIBS="${MARKETPLACE_KAFKA_LIBS:-$SHARED/kafka/libs}"
PIDS="$DIR/services.pids"

log() { printf 'faults: %s\n' "$*" >&2; }

env_lines() {
  cat <<EOF
MARKETPLACE_LOCAL_DIR=$DIR
MARKETPLACE_KAFKA_LIBS=$LIBS
MARKETPLACE_CLUSTER_BASE_PORT=$BASE
MARKETPLACE_PG_PORT=$PG_PORT
MARKETPLACE_DATABASE_URL=
MARKETPLACE_MIGRATE_DATABASE_URL=
MARKETPLACE_KAFKA_BOOTSTRAP=127.0.0.1:$BASE,127.0.0.1:$((BASE + 100)),127.0.0.1:$((BASE + 200))
MARKETPLACE_TOPIC_REPLICATION=3
MARKETPLACE_TOPIC_MIN_INSYNC=2
EOF
}

# Runs a script of infra/ against the private stack only.
private() {
  local line
  local -a vars=()
  while IFS= read -r line; do vars+=("$line"); done < <(env_lines)
  env "${vars[@]}" "$@"
}

stop_services() {
  [[ -f "$PIDS" ]] || return 0
  local pid
  while read -r pid; do
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    # Only a process the suite started: a `marketplace run` whose pid was written down and
    # that runs on the private stack (a reused pid of another process is left alone).
    if kill -0 "$pid" 2>/dev/null \
        && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q 'marketplace run' \
        && tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "MARKETPLACE_LOCAL_DIR=$DIR"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done < "$PIDS"
  rm -f "$PIDS"
}

down() {
  stop_services
  private "$ROOT/infra/kafka-cluster.sh" down 2>/dev/null || true
  private "$ROOT/infra/postgres.sh" down || true
}

wipe() {
  stop_services
  private "$ROOT/infra/kafka-cluster.sh" wipe 2>/dev/null || true
  # The database goes, the PostgreSQL cluster stays (stopped): initdb is the slow part.
  private "$ROOT/infra/postgres.sh" up >/dev/null 2>&1
  private "$ROOT/infra/postgres.sh" psql postgres -c "DROP DATABASE IF EXISTS marketplace WITH (FORCE)"
  private "$ROOT/infra/postgres.sh" down
  log "wiped"
}

case "${1:-}" in
  env) env_lines ;;
  down) down ;;
  wipe) wipe ;;
  *) echo "usage: $0 env|down|wipe" >&2; exit 2 ;;
esac

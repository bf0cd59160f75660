#!/usr/bin/env bash
# A private single-node Kafka broker for a benchmark or a soak run, so that their traffic and
# their consumers' decisions never mix with the shared broker's (other runs' tests read the same
# topics there, and a soak's matcher would decide on their listings too).
#
#   loadtests/broker.sh up NAME PORT     # broker on 127.0.0.1:PORT (controller PORT+1), topics made
#   loadtests/broker.sh stop NAME        # stops the broker this script started (by its pid)
#
# Data and logs under .local/loadtests/NAME; the Kafka jars of the main stack are reused. Point a
# benchmark at it with MARKETPLACE_KAFKA_PORT=PORT.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
name="${2:?usage: $0 up NAME PORT | stop NAME}"
[[ "$name" =~ ^[a-z0-9-]+$ ]] || { echo "NAME: lower-case letters, digits, dashes" >&2; exit 2; }
dir="$ROOT/.local/loadtests/$name"
case "${1:-}" in
  up)
    port="${3:?usage: $0 up NAME PORT}"
    mkdir -p "$dir"
    MARKETPLACE_LOCAL_DIR="$dir" MARKETPLACE_KAFKA_LIBS="$ROOT/.local/kafka/libs" \
      MARKETPLACE_KAFKA_PORT="$port" MARKETPLACE_KAFKA_CONTROLLER_PORT="$((port + 1))" \
      MARKETPLACE_KAFKA_HEAP="${MARKETPLACE_KAFKA_HEAP:-512m}" "$ROOT/infra/kafka.sh" up
    MARKETPLACE_KAFKA_PORT="$port" "$ROOT/.venv/bin/marketplace" topics
    ;;
  stop)
    pidfile="$dir/kafka/kafka.pid"
    [[ -f "$pidfile" ]] || { echo "no broker $name" >&2; exit 0; }
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null && grep -q 'kafka.Kafka' "/proc/$pid/cmdline"; then
      kill -TERM "$pid"
      for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$pidfile"
    ;;
  *) echo "usage: $0 up NAME PORT | stop NAME" >&2; exit 2 ;;
esac

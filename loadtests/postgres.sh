#!/usr/bin/env bash
# A private PostgreSQL for a benchmark, so that its statements, CPU and fsyncs are not mixed with
# other runs' tests on the shared server (and its statistics can be reset and read freely).
#
#   loadtests/postgres.sh up NAME PORT     # cluster on 127.0.0.1:PORT, roles and database made
#   loadtests/postgres.sh stop NAME PORT   # stops the server this script started
#
# Data under .local/loadtests/NAME (or, as root, the folder infra/postgres.sh picks for it); the
# cluster loads pg_stat_statements. Point a benchmark at it with
#   MARKETPLACE_PG_PORT=PORT MARKETPLACE_PG_LOCAL_DIR=.local/loadtests/NAME
# (the benchmarks' scratch databases are made and dropped through infra/postgres.sh, which finds
# the cluster by that folder).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
name="${2:?usage: $0 up|stop NAME PORT}"
port="${3:?usage: $0 up|stop NAME PORT}"
[[ "$name" =~ ^[a-z0-9-]+$ ]] || { echo "NAME: lower-case letters, digits, dashes" >&2; exit 2; }
[[ "$port" =~ ^[0-9]+$ ]] || { echo "PORT: a number" >&2; exit 2; }
dir="$ROOT/.local/loadtests/$name"
mkdir -p "$dir"
export MARKETPLACE_PG_LOCAL_DIR="$dir" MARKETPLACE_PG_PORT="$port"
unset MARKETPLACE_DATABASE_URL
case "${1:-}" in
  up) "$ROOT/infra/postgres.sh" up ;;
  stop) "$ROOT/infra/postgres.sh" down ;;
  *) echo "usage: $0 up|stop NAME PORT" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Local PostgreSQL for the exchange, from Debian's packages, in a project-local cluster.
#   infra/postgres.sh install|up|down|status|psql
# The cluster lives under $MARKETPLACE_LOCAL_DIR/postgres (default .local/postgres), listens on
# 127.0.0.1:$MARKETPLACE_PG_PORT only, and its unix socket sits in a private folder.
# PostgreSQL refuses to run as root; as root, the server runs as the `postgres` user.
# When MARKETPLACE_DATABASE_URL is set, that server is used: nothing is installed or started.
# MARKETPLACE_PG_LOCAL_DIR, when set, is the folder of the cluster instead of
# $MARKETPLACE_LOCAL_DIR (a benchmark's private server: loadtests/postgres.sh).
# The cluster loads pg_stat_statements (shared_preload_libraries, added to an existing data
# directory too), so that the benchmarks' reports can list the top statements; a server that
# was already running when it was added loads it at its next restart.
# Two roles (docs/operators/security.md): $MARKETPLACE_DB_USER owns the database and its tables and
# runs the migrations; the services log in as $MARKETPLACE_DB_APP_USER, which owns nothing and
# gets its rights from `marketplace migrate` (see infra/migrations/ and marketplace/db.py).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="$(realpath -m "${MARKETPLACE_PG_LOCAL_DIR:-${MARKETPLACE_LOCAL_DIR:-$ROOT/.local}}")"
PORT="${MARKETPLACE_PG_PORT:-15432}"
DB_NAME="${MARKETPLACE_DB_NAME:-marketplace}"
DB_USER="${MARKETPLACE_DB_USER:-marketplace}"
DB_PASSWORD="${MARKETPLACE_DB_PASSWORD:-marketplace}"
APP_USER="${MARKETPLACE_DB_APP_USER:-marketplace_app}"
APP_PASSWORD="${MARKETPLACE_DB_APP_PASSWORD:-marketplace_app}"

log() { printf 'postgres: %s\n' "$*" >&2; }
external() { [[ -n "${MARKETPLACE_DATABASE_URL:-}" ]]; }

if [[ "$(id -u)" == 0 ]]; then AS=(runuser -u postgres --); OWNER=postgres; else AS=(); OWNER="$(id -un)"; fi

pg_base() {
  local base="$LOCAL_DIR/postgres"
  # The postgres user must reach the project's folder; a checkout under /root cannot be.
  if [[ "$(id -u)" == 0 ]] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$LOCAL_DIR" 2>/dev/null; then
    base="/var/lib/postgresql/marketplace-$(printf '%s' "$LOCAL_DIR" | sha256sum | cut -c1-12)"
  fi
  echo "$base"
}

bindir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  [[ -n "$d" && -x "$d/initdb" ]] && echo "$d"
}

install() {
  if bindir >/dev/null; then return 0; fi
  if [[ "$(id -u)" != 0 ]]; then log "PostgreSQL server not installed; run as root or: sudo apt-get install postgresql"; exit 1; fi
  log "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q postgresql >&2
  bindir >/dev/null || { log "install finished but initdb not found"; exit 1; }
}

# From / so that the postgres user is never left in a folder it cannot enter.
as_owner() { (cd / && "${AS[@]}" "$@"); }

BASE="$(pg_base)"; PGDATA="$BASE/data"; SOCK="$BASE/run"; PGLOG="$BASE/postgres.log"

psql_admin() { as_owner "$(bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d postgres "$@"; }

running() { [[ -n "$(bindir || true)" && -f "$PGDATA/PG_VERSION" ]] && as_owner "$(bindir)/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

init_cluster() {
  mkdir -p "$BASE"
  if [[ "$(id -u)" == 0 ]]; then chown postgres:postgres "$BASE"; fi
  as_owner mkdir -p "$SOCK"; as_owner chmod 700 "$SOCK"
  if [[ -f "$PGDATA/PG_VERSION" ]]; then return 0; fi
  log "creating cluster in $PGDATA"
  # trust on the socket only: the socket folder is private to the cluster's owner.
  as_owner "$(bindir)/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  as_owner tee -a "$PGDATA/postgresql.conf" >/dev/null <<CONF
# marketplace: loopback only, private socket
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
unix_socket_permissions = 0700
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
CONF
}

# pg_stat_statements in shared_preload_libraries, idempotently: kept if the last setting in
# postgresql.conf already names it, else a line with the earlier libraries and it is appended.
ensure_preload() {
  local conf="$PGDATA/postgresql.conf" current
  current="$(as_owner sed -n "s/^[[:space:]]*shared_preload_libraries[[:space:]]*=[[:space:]]*'\\([^']*\\)'.*/\\1/p" "$conf" | tail -1)"
  case ",${current// /}," in *,pg_stat_statements,*) return 0 ;; esac
  log "adding pg_stat_statements to shared_preload_libraries in $conf"
  as_owner tee -a "$conf" >/dev/null <<CONF
# marketplace: statement statistics for the benchmarks' reports (loadtests/pgstats.py)
shared_preload_libraries = '${current:+$current,}pg_stat_statements'
pg_stat_statements.track = top
pg_stat_statements.track_utility = off
CONF
}

preloaded() {
  [[ "$(psql_admin -At -c "SELECT current_setting('shared_preload_libraries')")" == *pg_stat_statements* ]]
}

ensure_role() {
  psql_admin -v user="$1" -v password="$2" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'user', :'password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L', :'user', :'password') \gexec
SQL
}

ensure_db() {
  ensure_role "$DB_USER" "$DB_PASSWORD"
  if [[ "$APP_USER" != "$DB_USER" ]]; then ensure_role "$APP_USER" "$APP_PASSWORD"; fi
  psql_admin -v db="$DB_NAME" -v user="$DB_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
}

start() {
  if external; then log "using existing server from MARKETPLACE_DATABASE_URL"; return 0; fi
  install
  if running; then
    log "already running on 127.0.0.1:$PORT ($PGDATA)"
    ensure_preload
  else
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      log "port 127.0.0.1:$PORT is taken by a server this project did not start; set MARKETPLACE_DATABASE_URL to use it, or MARKETPLACE_PG_PORT to move ours"
      exit 1
    fi
    init_cluster
    ensure_preload
    log "starting on 127.0.0.1:$PORT"
    as_owner "$(bindir)/pg_ctl" -D "$PGDATA" -l "$PGLOG" -w -t 60 start >/dev/null
  fi
  ensure_db
  preloaded || log "pg_stat_statements is not loaded (shared_preload_libraries): it is at the server's next restart if postgresql.conf names it and postgresql.auto.conf does not override it"
  log "ready: database $DB_NAME, role $DB_USER at 127.0.0.1:$PORT"
}

stop() {
  if external; then log "an existing server is not ours to stop"; return 0; fi
  if running; then
    as_owner "$(bindir)/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
    log "stopped"
  else
    log "not running"
  fi
}

status() {
  if external; then echo "postgres: external server from MARKETPLACE_DATABASE_URL"; return 0; fi
  if running; then
    echo "postgres: running on 127.0.0.1:$PORT, database $DB_NAME, data $PGDATA, log $PGLOG"
  else
    echo "postgres: stopped (data $PGDATA)"; return 3
  fi
}

case "${1:-}" in
  install) install ;;
  start|up) start ;;
  stop|down) stop ;;
  status) status ;;
  # A superuser session on the local cluster, for operators (and the audit log's tamper tests):
  #   infra/postgres.sh psql [DATABASE] [psql arguments...]
  psql)
    if external; then log "psql: only for the local cluster"; exit 2; fi
    shift; db="${1:-$DB_NAME}"; [[ $# -gt 0 ]] && shift
    as_owner "$(bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d "$db" "$@" ;;
  *) echo "usage: $0 install|up|down|status|psql [DATABASE] [ARGS]" >&2; exit 2 ;;
esac

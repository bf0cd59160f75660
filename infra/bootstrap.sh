#!/usr/bin/env bash
# Installs the project exactly as uv.lock pins it, into .venv, with the machine's Python 3.11+.
#   infra/bootstrap.sh           sync .venv with uv.lock (frozen: the lock is never rewritten)
#   infra/bootstrap.sh check     exit 1 when pyproject.toml and uv.lock disagree
#   infra/bootstrap.sh upgrade   re-resolve every dependency to its newest allowed release
#   infra/bootstrap.sh add PKG   add a dependency (uv add; --group dev for a dev tool)
# uv itself is the one tool outside the lock: pinned with its hash in infra/uv/requirements.txt,
# installed into .local/uv. uv never downloads a Python build here (UV_PYTHON_DOWNLOADS=never).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="${MARKETPLACE_LOCAL_DIR:-$ROOT/.local}"
UV_HOME="$LOCAL_DIR/uv"
PY="${PYTHON:-python3}"
REQ="$ROOT/infra/uv/requirements.txt"

"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "bootstrap: Python 3.11 or newer is required ($PY is $("$PY" --version 2>&1))" >&2; exit 1; }

stamp="$UV_HOME/.installed-$(sha256sum "$REQ" | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  echo "bootstrap: installing uv (pinned in infra/uv/requirements.txt) into $UV_HOME" >&2
  rm -rf "$UV_HOME"
  "$PY" -m venv "$UV_HOME"
  "$UV_HOME/bin/python" -m pip install -q --require-hashes --no-deps -r "$REQ" >&2
  touch "$stamp"
fi

export UV_PYTHON_DOWNLOADS=never
# The interpreter's real path, not a shim's (pyenv): uv compares it with the environment's own
# and would otherwise remove and recreate .venv on every sync.
export UV_PYTHON="$("$PY" -c 'import os, sys; print(os.path.realpath(sys.executable))')"
export UV_PROJECT_ENVIRONMENT="${MARKETPLACE_VENV:-$ROOT/.venv}"
UV="$UV_HOME/bin/uv"
cd "$ROOT"
case "${1:-sync}" in
  # Bytecode compiled ahead: this machine sets PYTHONDONTWRITEBYTECODE=1, so nothing would
  # ever be cached and every process (each test worker and consumer among them) would compile
  # every module it imports from source, about 2 s of CPU per process start. Site-packages are
  # compiled once per lock (a stamp), the project's sources each time (only what changed).
  sync)    "$UV" sync --frozen --quiet
           bytecode="$UV_PROJECT_ENVIRONMENT/.bytecode-$(sha256sum uv.lock | cut -c1-16)"
           if [[ ! -e "$bytecode" ]]; then
             "$UV" sync --frozen --quiet --compile-bytecode && touch "$bytecode"
           fi
           "$UV_PROJECT_ENVIRONMENT/bin/python" -m compileall -q -j 0 -x "/\.local/|/docs/" \
             marketplace consumers producers schemas loadtests tests >/dev/null ;;
  check)   "$UV" lock --check ;;
  upgrade) "$UV" lock --upgrade && "$UV" sync --frozen ;;
  add)     shift; "$UV" add --no-sync "$@" && "$UV" sync --frozen --quiet ;;
  *) echo "usage: infra/bootstrap.sh [sync|check|upgrade|add ARGS]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Creates .venv with Python 3.11+ and installs the project (editable) with its dev tools.
# Re-running is cheap: it reinstalls only when pyproject.toml changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MARKETPLACE_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "bootstrap: Python 3.11 or newer is required ($PY is $("$PY" --version 2>&1))" >&2; exit 1; }

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "bootstrap: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  echo "bootstrap: installing the project and its dev tools into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]" >&2
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi

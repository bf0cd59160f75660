#!/usr/bin/env bash
# The browser libraries the pages serve (htmx and its server-sent-events extension) and the
# browser tests inject (axe-core), pinned with their integrity hashes in infra/web/package-lock.json
# and installed from the npm registry into infra/web/node_modules (git-ignored). No build step:
# the API serves the files as npm ships them.
#   infra/web.sh install   npm ci, when the lock changed since the last install
#   infra/web.sh path      print the node_modules folder (exit 1 if not installed)
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/web"
MODULES="$DIR/node_modules"

case "${1:-}" in
  install)
    command -v npm >/dev/null || { echo "web: npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
    stamp="$MODULES/.installed-$(sha256sum "$DIR/package-lock.json" | cut -c1-16)"
    if [[ ! -f "$stamp" ]]; then
      echo "web: installing htmx and axe-core from infra/web/package-lock.json" >&2
      npm ci --prefix "$DIR" --no-audit --no-fund --ignore-scripts --loglevel=error >&2
      touch "$stamp"
    fi
    ;;
  path)
    [[ -f "$MODULES/htmx.org/dist/htmx.min.js" ]] || { echo "web: run infra/web.sh install" >&2; exit 1; }
    printf '%s\n' "$MODULES"
    ;;
  *) echo "usage: infra/web.sh install|path" >&2; exit 2 ;;
esac

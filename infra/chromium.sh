#!/usr/bin/env bash
# Debian's Chromium for the end-to-end tests of the web pages (headless, loopback only).
#   infra/chromium.sh install   install it if missing (as root, from Debian's packages)
#   infra/chromium.sh path      print the browser's path (exit 1 if missing)
set -euo pipefail

log() { printf 'chromium: %s\n' "$*" >&2; }

find_browser() {
  local b
  for b in "${MARKETPLACE_CHROMIUM:-}" chromium chromium-browser; do
    [[ -n "$b" ]] && command -v "$b" >/dev/null 2>&1 && { command -v "$b"; return 0; }
  done
  return 1
}

install() {
  if find_browser >/dev/null; then return 0; fi
  if [[ "$(id -u)" != 0 ]]; then
    log "not installed; run as root or: sudo apt-get install chromium (or set MARKETPLACE_CHROMIUM)"
    exit 1
  fi
  log "installing Chromium from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends chromium >&2 || {
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends chromium >&2
  }
  find_browser >/dev/null || { log "install finished but no chromium on PATH"; exit 1; }
}

case "${1:-}" in
  install) install; find_browser ;;
  path) find_browser || { log "not installed: infra/chromium.sh install"; exit 1; } ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Debian's DejaVu Sans (package fonts-dejavu-core), embedded in the PDF period reports so that
# Cyrillic and Nordic letters print. The font files are never committed.
#   infra/fonts.sh install   install it if missing (as root, from Debian's packages)
#   infra/fonts.sh path      print the folder holding DejaVuSans.ttf and DejaVuSans-Bold.ttf
#                            (exit 1 if missing)
# MARKETPLACE_PDF_FONT_DIR names another folder with those two files (the PDF code reads it too).
set -euo pipefail

DEBIAN_DIR=/usr/share/fonts/truetype/dejavu

log() { printf 'fonts: %s\n' "$*" >&2; }

find_fonts() {
  local d="${MARKETPLACE_PDF_FONT_DIR:-$DEBIAN_DIR}"
  [[ -f "$d/DejaVuSans.ttf" && -f "$d/DejaVuSans-Bold.ttf" ]] || return 1
  printf '%s\n' "$d"
}

install() {
  if find_fonts >/dev/null; then return 0; fi
  if [[ -n "${MARKETPLACE_PDF_FONT_DIR:-}" ]]; then
    log "MARKETPLACE_PDF_FONT_DIR=$MARKETPLACE_PDF_FONT_DIR lacks DejaVuSans.ttf or DejaVuSans-Bold.ttf"
    exit 1
  fi
  if [[ "$(id -u)" != 0 ]]; then
    log "DejaVu Sans not installed; run as root or: sudo apt-get install fonts-dejavu-core" \
      "(or set MARKETPLACE_PDF_FONT_DIR)"
    exit 1
  fi
  log "installing fonts-dejavu-core from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends fonts-dejavu-core >&2 || {
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends fonts-dejavu-core >&2
  }
  find_fonts >/dev/null || { log "install finished but no DejaVu Sans in $DEBIAN_DIR"; exit 1; }
}

case "${1:-}" in
  install) install; find_fonts ;;
  path)
    find_fonts || {
      log "no DejaVuSans.ttf and DejaVuSans-Bold.ttf in ${MARKETPLACE_PDF_FONT_DIR:-$DEBIAN_DIR}:" \
        "run infra/fonts.sh install (make setup does) or set MARKETPLACE_PDF_FONT_DIR"
      exit 1
    } ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac

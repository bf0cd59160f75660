#!/usr/bin/env bash
# The e-invoice validator: phive (a validation engine from Maven Central) with its packages of the
# official rules, CEN's EN 16931 UBL Schematron and OpenPeppol's BIS Billing 3.0 release (UBL 2.1
# schema, CEN rules, Peppol rules), run on Java 17. No rule file is kept in the repository.
#   infra/einvoice-validator.sh install           resolve the jars pinned in infra/einvoice/pom.xml,
#                                                 check each against infra/einvoice/jars.sha256 and
#                                                 compile infra/einvoice/Validate.java (once per change)
#   infra/einvoice-validator.sh validate FILE...  check UBL invoices: one tab-separated line per finding
#                                                 and per file and rule set; exit 0 when every file
#                                                 passes every rule set with no error, 1 when one fails
#   infra/einvoice-validator.sh checksums         rewrite jars.sha256 from a fresh resolve, after a
#                                                 deliberate change of the pom (review the diff)
# Jars and classes live under $MARKETPLACE_LOCAL_DIR/einvoice (default .local/einvoice, git-ignored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="${MARKETPLACE_LOCAL_DIR:-$ROOT/.local}"
EDIR="$LOCAL_DIR/einvoice"
LIBS="$EDIR/libs"
CLASSES="$EDIR/classes"
SRC="$ROOT/infra/einvoice"
POM="$SRC/pom.xml"
SUMS="$SRC/jars.sha256"

log() { printf 'einvoice-validator: %s\n' "$*" >&2; }

need_java() {
  if command -v java >/dev/null && command -v javac >/dev/null && command -v mvn >/dev/null; then
    return 0
  fi
  if [[ "$(id -u)" != 0 ]]; then
    log "java, javac and mvn are needed: sudo apt-get install openjdk-17-jdk-headless maven"; exit 1
  fi
  log "installing the Java 17 compiler and Maven from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q openjdk-17-jdk-headless maven >&2 || {
    apt-get update -q >&2
    apt-get install -y -q openjdk-17-jdk-headless maven >&2
  }
}

resolve() {
  # -C: a jar whose checksum disagrees with Maven Central's fails the resolve.
  rm -rf "$LIBS"; mkdir -p "$LIBS"
  mvn -q -B -C -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$LIBS" -Dmaven.repo.local="$LOCAL_DIR/m2" >&2
}

stamp() { cat "$POM" "$SUMS" "$SRC/Validate.java" | sha256sum | cut -c1-16; }

install() {
  local s; s="$(stamp)"
  if [[ -f "$EDIR/.installed-$s" ]]; then return 0; fi
  need_java
  # A failed install below must not leave an older stamp standing over a half-made folder.
  rm -f "$EDIR"/.installed-*
  log "resolving phive and the EN 16931 and Peppol rule packages from Maven Central"
  resolve
  # Every jar must be the one pinned, and no other jar may have come along.
  (cd "$LIBS" && sha256sum --quiet --strict -c "$SUMS") || {
    log "the resolved jars differ from infra/einvoice/jars.sha256; refusing them"; exit 1
  }
  local listed present
  listed="$(awk '{print $2}' "$SUMS" | sort)"
  present="$(cd "$LIBS" && ls -1 ./*.jar | sed 's#^\./##' | sort)"
  if [[ "$listed" != "$present" ]]; then
    log "the resolved jar set differs from infra/einvoice/jars.sha256:"
    diff <(echo "$listed") <(echo "$present") >&2 || true
    exit 1
  fi
  rm -rf "$CLASSES"; mkdir -p "$CLASSES"
  javac -Xlint:all -Werror -d "$CLASSES" -cp "$LIBS/*" "$SRC/Validate.java" >&2
  touch "$EDIR/.installed-$s"
  log "installed under $EDIR"
}

checksums() {
  need_java
  resolve
  (cd "$LIBS" && sha256sum ./*.jar | sed 's#  \./#  #' | sort -k2) > "$SUMS"
  log "wrote $SUMS ($(wc -l < "$SUMS") jars)"
}

validate() {
  (( $# > 0 )) || { echo "usage: $0 validate FILE..." >&2; exit 2; }
  install
  exec java -Xss4m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$CLASSES:$LIBS/*" Validate "$@"
}

case "${1:-}" in
  install) install ;;
  validate) shift; validate "$@" ;;
  checksums) checksums ;;
  *) echo "usage: $0 install|validate FILE...|checksums" >&2; exit 2 ;;
esac

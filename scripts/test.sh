#!/usr/bin/env bash
# The test command: bootstrap, then lint (ruff), type-check (mypy), test (pytest).
# Stops at the first failing step. Extra arguments go to pytest, e.g.
#   scripts/test.sh -x -k scheduler      scripts/test.sh tests/unit
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KAWA_ROOT"
t0=$(now_s)

export KAWA_TEST_BASE_IMAGE=${KAWA_TEST_BASE_IMAGE:-kawa/base:bookworm}

step() {
    local name=$1 rc=0
    shift
    log "== $name"
    "$@" || rc=$?
    [ "$rc" = 0 ] || die "$name failed (exit $rc)"
}

step bootstrap bash scripts/bootstrap.sh
step "ruff check" .venv/bin/ruff check src tests
step mypy .venv/bin/mypy
step lint-imports .venv/bin/lint-imports

# A private PostgreSQL so the store tests run against it too (skip: KAWA_TEST_NO_POSTGRES=1).
if [ -z "${KAWA_TEST_POSTGRES_URL:-}" ] && [ -z "${KAWA_TEST_NO_POSTGRES:-}" ]; then
    log "== postgresql (throwaway, 127.0.0.1)"
    KAWA_TEST_POSTGRES_URL=$(bash scripts/postgres.sh start) || die "postgresql failed to start"
    export KAWA_TEST_POSTGRES_URL
    trap 'bash scripts/postgres.sh stop' EXIT
fi

# No path given: run the whole suite under tests/ (options alone keep it).
if [ $# -eq 0 ]; then set -- tests; fi
log "== pytest $*"
rc=0
.venv/bin/pytest -ra "$@" || rc=$?
case $rc in
    0) ;;
    5) die "pytest collected no tests (exit 5); that counts as a failure" ;;
    *) die "pytest failed (exit $rc)" ;;
esac
log "all steps passed in $(( $(now_s) - t0 )) s"

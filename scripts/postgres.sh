#!/usr/bin/env bash
# A throwaway PostgreSQL for the test suite, on 127.0.0.1 only.
#   scripts/postgres.sh start   -> prints the URL to use (KAWA_TEST_POSTGRES_URL)
#   scripts/postgres.sh stop
# Installs Debian's postgresql package when missing (root only). The cluster lives in a
# temporary directory owned by the postgres user and is deleted on stop.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

state=${KAWA_PG_STATE:-/tmp/kawa-test-pg}
port=${KAWA_PG_PORT:-55432}

pg_bin() {
    local dir
    dir=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && echo "$dir"
}

as_postgres() { runuser -u postgres -- "$@"; }

start() {
    if [ -z "$(pg_bin)" ]; then
        [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and we are not root"
        log "installing postgresql (apt)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            postgresql >/dev/null 2>&1 || {
            apt-get update -qq >/dev/null 2>&1
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                postgresql >/dev/null
        }
    fi
    local bin
    bin=$(pg_bin) || die "no PostgreSQL server binaries found"
    stop >/dev/null 2>&1 || true
    mkdir -p "$state"
    chown postgres: "$state"
    as_postgres "$bin/initdb" -D "$state/data" -U postgres --auth=trust -E UTF8 >/dev/null
    as_postgres "$bin/pg_ctl" -D "$state/data" -l "$state/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $state -c fsync=off" start >/dev/null \
        || { tail -20 "$state/server.log" >&2; die "PostgreSQL did not start"; }
    as_postgres "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres kawa_test
    echo "postgresql://postgres@127.0.0.1:$port/kawa_test"
}

stop() {
    local bin
    bin=$(pg_bin) || return 0
    if [ -f "$state/data/postmaster.pid" ]; then
        as_postgres "$bin/pg_ctl" -D "$state/data" -m fast -w stop >/dev/null || true
    fi
    rm -rf --one-file-system "$state"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    *) die "usage: $0 start|stop" ;;
esac

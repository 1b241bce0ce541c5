# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it; do not run it.
#   KAWA_ROOT  the repository root (derived from this file's location)

KAWA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export KAWA_ROOT

# Root's sbin directories are missing from some non-login PATHs; dockerd and
# debootstrap live there.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac
case ":$PATH:" in *:/sbin:*) ;; *) PATH=$PATH:/sbin ;; esac
export PATH

_kawa_tag=$(basename "${0:-kawa}" .sh)

log() { printf '[%s] %s\n' "$_kawa_tag" "$*"; }

die() {
    printf '[%s] ERROR: %s\n' "$_kawa_tag" "$*" >&2
    exit 1
}

# now_s: integer seconds since the epoch.
now_s() { date +%s; }

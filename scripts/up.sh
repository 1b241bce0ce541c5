#!/usr/bin/env bash
# Bring up an all-in-one Kawa cluster (host + local runner) on this machine:
# bootstrap, then `kawa up` with any arguments given here, e.g.
#   scripts/up.sh --data-dir ./kawa-data --port 8420
# Relative paths in the arguments are taken from the caller's directory.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bash "$here/bootstrap.sh"
exec "$here/../.venv/bin/kawa" up "$@"

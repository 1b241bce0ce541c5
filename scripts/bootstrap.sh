#!/usr/bin/env bash
# Install what Kawa's development and tests need; idempotent, fast when done.
#   1. apt packages when missing: docker.io, debootstrap, openssh-client (+ python3-venv)
#   2. a Docker daemon: reuse a running one, else start dockerd in the background
#   3. .venv with `pip install -e '.[dev]'` (redone only when pyproject.toml changes;
#      skipped with KAWA_BOOTSTRAP_VENV=0: a node with Kawa installed from a wheel)
#   4. the registry-free base image kawa/base:bookworm (scripts/base-image.sh)
#   5. the dashboard: `npm ci` in web/ when its lockfile changed, `npm run build` (the
#      type check, then Vite into src/kawa/web/dist) when web/ changed since the last
#      build (nodejs, npm and, for the browser tests, chromium come from apt in step 1)
# Environment:
#   KAWA_PYTHON        interpreter for the venv (default python3, needs >= 3.11)
#   KAWA_DOCKERD_ARGS  extra arguments for a dockerd this script starts
#   KAWA_DOCKERD_LOG   its log file (default /var/log/kawa-dockerd.log)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KAWA_ROOT"
t0=$(now_s)

# One bootstrap per checkout at a time (two concurrent pip installs into one
# venv break it). The lock is this script file itself, so no extra file is made.
exec 9<"$KAWA_ROOT/scripts/bootstrap.sh"
if ! flock -n 9; then
    log "another bootstrap of this checkout is running; waiting for it"
    flock 9
fi

python=${KAWA_PYTHON:-python3}
base_image=kawa/base:bookworm

# ---------------------------------------------------------------- 1. packages
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)   # a bare docker client is not enough
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v ssh >/dev/null || missing+=(openssh-client)   # kawa ssh / vps connect run stock ssh
[ -r /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
command -v node >/dev/null || missing+=(nodejs)          # builds and tests the dashboard
command -v npm >/dev/null || missing+=(npm)
command -v chromium >/dev/null || missing+=(chromium fonts-liberation)  # browser tests
if ! command -v "$python" >/dev/null; then
    missing+=(python3 python3-venv)
elif ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
    command -v apt-get >/dev/null || die "missing packages: ${missing[*]}, and no apt-get to install them"
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_opts=(-q -o DPkg::Lock::Timeout=300)
    # Keep package scripts from starting daemons (no init system here); we start
    # dockerd ourselves below.
    policy=/usr/sbin/policy-rc.d
    own_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
    fi
    apt_log=$(mktemp)
    apt_rc=0
    { apt-get "${apt_opts[@]}" update &&
      apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}"
    } >"$apt_log" 2>&1 </dev/null || apt_rc=$?
    [ -z "$own_policy" ] || rm -f "$policy"
    if [ "$apt_rc" != 0 ]; then
        tail -n 25 "$apt_log" >&2
        rm -f "$apt_log"
        die "apt-get failed (exit $apt_rc) installing: ${missing[*]}"
    fi
    rm -f "$apt_log"
    command -v dockerd >/dev/null || die "dockerd still missing after installing docker.io"
    command -v debootstrap >/dev/null || die "debootstrap still missing after apt-get install"
else
    log "apt: docker.io, debootstrap, nodejs, npm, chromium present"
fi
command -v docker >/dev/null || die "docker client missing (package docker.io)"

# ---------------------------------------------------------------- 2. dockerd
docker_ok() { timeout 15 docker info >/dev/null 2>&1; }
if docker_ok; then
    log "docker: daemon running"
else
    dockerd_log=${KAWA_DOCKERD_LOG:-/var/log/kawa-dockerd.log}
    started_pid=
    pidfile=/var/run/docker.pid
    # (the default daemon's pidfile says nothing when DOCKER_HOST points elsewhere)
    if [ -z "${DOCKER_HOST:-}" ] && [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        log "docker: dockerd (pid $(cat "$pidfile")) is up but not answering yet; waiting"
    else
        [ "$(id -u)" = 0 ] || die "no Docker daemon answers and starting dockerd needs root"
        log "docker: starting dockerd in the background (log: $dockerd_log)"
        mkdir -p "$(dirname "$dockerd_log")"
        (
            # The daemon outlives us: it must hold none of our descriptors (a CI
            # runner waits for every holder of its output pipe; fd 9 is our lock).
            for fd in /proc/"$BASHPID"/fd/*; do
                fd=${fd##*/}
                [ "$fd" -le 2 ] || exec {fd}>&-
            done
            # KAWA_DOCKERD_ARGS is split into words on purpose.
            # shellcheck disable=SC2086
            exec setsid -w nohup dockerd ${KAWA_DOCKERD_ARGS:-} >>"$dockerd_log" 2>&1 </dev/null
        ) &
        started_pid=$!
    fi
    deadline=$(( $(now_s) + 60 ))
    until docker_ok; do
        if [ -n "$started_pid" ] && ! kill -0 "$started_pid" 2>/dev/null; then
            tail -n 20 "$dockerd_log" >&2 || true
            die "dockerd exited during startup; see $dockerd_log"
        fi
        if [ "$(now_s)" -ge "$deadline" ]; then
            [ -z "$started_pid" ] || tail -n 20 "$dockerd_log" >&2 || true
            die "Docker daemon not ready after 60 s (docker info still fails)"
        fi
        sleep 1
    done
    log "docker: daemon ready"
fi

# ---------------------------------------------------------------- 3. venv
if [ "${KAWA_BOOTSTRAP_VENV:-1}" = 0 ]; then
    log "venv: skipped (KAWA_BOOTSTRAP_VENV=0)"
else
venv=$KAWA_ROOT/.venv
marker=$venv/.kawa-installed
venv_ok() {
    [ -x "$venv/bin/python" ] &&
        "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}
if ! venv_ok; then
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$python is $("$python" -V 2>&1); Kawa needs Python >= 3.11 (set KAWA_PYTHON)"
    [ ! -e "$venv" ] || log "venv: .venv unusable; recreating it"
    rm -rf "$venv"
    log "venv: creating .venv with $("$python" -V 2>&1)"
    "$python" -m venv "$venv" || die "python -m venv failed (is python3-venv installed?)"
fi
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
have=$(cat "$marker" 2>/dev/null || true)
if [ "$want" = "$have" ]; then
    log "venv: up to date"
else
    log "venv: pip install -e '.[dev]' (a minute or two on a fresh venv) ..."
    rm -f "$marker"
    PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$venv/bin/python" -m pip install -q -e '.[dev]' ||
        die "pip install -e '.[dev]' failed"
    echo "$want" >"$marker"
    log "venv: installed"
fi
# An editable install leaves the package uncompiled; where PYTHONDONTWRITEBYTECODE is
# set, every `kawa` command would then compile each module it imports. Write the .pyc
# files a regular install has (only stale ones are redone, so this is quick).
"$venv/bin/python" -m compileall -q "$KAWA_ROOT/src/kawa" >/dev/null ||
    log "venv: byte-compiling src/kawa failed; the CLI starts slower"
fi

# ---------------------------------------------------------------- 4. base image
bash "$KAWA_ROOT/scripts/base-image.sh" "$base_image" 9<&- |
    while IFS= read -r line; do log "$line"; done ||
    die "could not build the base image $base_image (scripts/base-image.sh)"

# ---------------------------------------------------------------- 5. dashboard
web=$KAWA_ROOT/web
dist=$KAWA_ROOT/src/kawa/web/dist
# What the build depends on: every file of web/ but its installed packages and stamps.
web_digest() {
    (cd "$web" && find . -path ./node_modules -prune -o -type f ! -name '.*-stamp' -print0 |
        LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}
want=$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)
if [ "$want" = "$(cat "$web/.npm-stamp" 2>/dev/null || true)" ] && [ -d "$web/node_modules" ]; then
    log "dashboard: npm packages up to date"
else
    log "dashboard: npm ci ..."
    rm -f "$web/.npm-stamp"
    (cd "$web" && npm ci --no-audit --no-fund --loglevel=error) 9<&- ||
        die "npm ci in web/ failed"
    echo "$want" >"$web/.npm-stamp"
fi
want=$(web_digest)
if [ "$want" = "$(cat "$web/.build-stamp" 2>/dev/null || true)" ] && [ -f "$dist/index.html" ]; then
    log "dashboard: build up to date"
else
    log "dashboard: npm run build ..."
    rm -f "$web/.build-stamp"
    (cd "$web" && npm run build --silent) 9<&- >/dev/null || die "the dashboard build failed (cd web && npm run build)"
    echo "$want" >"$web/.build-stamp"
    log "dashboard: built into src/kawa/web/dist"
fi

log "ready in $(( $(now_s) - t0 )) s"

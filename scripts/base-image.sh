#!/usr/bin/env bash
# Build Kawa's registry-free base image from the OS package mirror, once.
# Usage: scripts/base-image.sh [IMAGE]        (default kawa/base:bookworm)
#        scripts/base-image.sh --print-mirror (show the mirror it would use)
# Reuses the image when Docker already has it, and a cached rootfs tarball
# (under ${XDG_CACHE_HOME:-~/.cache}/kawa) when the image was removed.
# Environment:
#   KAWA_BASE_SUITE     Debian suite (default bookworm)
#   KAWA_DEBIAN_MIRROR  mirror URL; default: taken from the apt sources
#   KAWA_APT_SOURCES    apt source files to read (whitespace-separated, globs allowed)
set -euo pipefail
suite=${KAWA_BASE_SUITE:-bookworm}
cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/kawa
rootfs_tar=$cache_dir/rootfs-$suite.tar
include=openssh-server,python3,procps,iproute2

mirror_from_apt() {
    # The Debian archive named in the apt sources (deb822 *.sources or one-line
    # *.list style). Each entry that carries component "main" and is not a
    # security archive is a candidate; an entry for $suite itself wins over
    # one for another suite (which must end in /debian), then file order decides. Third-party repositories
    # (other suites/components) and disabled or deb-src entries are ignored.
    local default='/etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list'
    local files=() f uri list
    # shellcheck disable=SC2086  # word splitting and globbing are wanted here
    for f in ${KAWA_APT_SOURCES:-$default}; do
        [ -f "$f" ] && [ -r "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 1
    uri=$(awk -v want="$suite" '
        function reset() { types = uris = suites = comps = enabled = field = "" }
        function emit(us, ss, cs,   n, a, i, r) {
            if (index(" " cs " ", " main ") == 0) return
            r = index(" " ss " ", " " want " ") ? 1 : 2
            n = split(us, a, " ")
            for (i = 1; i <= n; i++) {
                if (a[i] ~ /security/ || a[i] !~ /^((https?|ftp|file):|mirror\+file:)/) continue
                # an entry for another suite counts only if it looks like a Debian archive
                if (r == 2 && a[i] !~ /debian\/?$/) continue
                print r, a[i]
            }
        }
        function flush() {
            if (index(" " types " ", " deb ") && tolower(enabled) != "no")
                emit(uris, suites, comps)
            reset()
        }
        function set(name, val) {
            if (name == "types") types = types " " val
            else if (name == "uris") uris = uris " " val
            else if (name == "suites") suites = suites " " val
            else if (name == "components") comps = comps " " val
            else if (name == "enabled") { gsub(/ /, "", val); enabled = val }
        }
        FNR == 1 { flush() }
        { gsub(/\t/, " ") }
        /^ *#/ { next }
        /^ *$/ { flush(); next }
        /^deb / {                       # one-line style: deb [opts] URI SUITE COMP...
            for (k = 2; k <= NF; k++) if ($k ~ /^[a-z+]+:/) break
            if (k > NF) next
            c = ""; for (j = k + 2; j <= NF; j++) c = c " " $j
            emit($k, $(k + 1), c); next
        }
        /^ / { if (field != "") set(field, $0); next }   # deb822 continuation line
        /^[A-Za-z-]+:/ {
            i = index($0, ":"); field = tolower(substr($0, 1, i - 1))
            set(field, substr($0, i + 1)); next
        }
        END { flush() }
    ' "${files[@]}" | sort -s -n -k1,1 | awk 'NR == 1 { print $2 }')
    case "$uri" in
        mirror+file:*)   # apt mirror list: use its first plain URL
            list=${uri#mirror+file:}; list=/${list#"${list%%[!/]*}"}
            uri=$(grep -m1 -Eo '^(https?|ftp|file):[^[:space:]]+' "$list" 2>/dev/null || true) ;;
    esac
    uri=${uri%/}
    [ -n "$uri" ] || return 1
    echo "$uri"
}

if [ "${1:-}" = --print-mirror ]; then
    mirror_from_apt || { echo "no Debian mirror found in apt sources" >&2; exit 1; }
    exit 0
fi
image=${1:-kawa/base:bookworm}

command -v docker >/dev/null || { echo "docker client missing" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "docker daemon not reachable (docker info fails)" >&2; exit 1; }
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image: present"
    exit 0
fi

# One build at a time per cache: a second caller waits, then reuses the result.
mkdir -p "$cache_dir"
exec 8>"$cache_dir/.lock"
if ! flock -n 8; then
    echo "base image: another build is running; waiting for it ..."
    flock 8
    if docker image inspect "$image" >/dev/null 2>&1; then
        echo "base image $image: present"
        exit 0
    fi
fi

if [ ! -s "$rootfs_tar" ]; then
    command -v debootstrap >/dev/null || {
        echo "debootstrap missing: apt-get install debootstrap" >&2; exit 1; }
    mirror=${KAWA_DEBIAN_MIRROR:-$(mirror_from_apt)} || {
        echo "no Debian mirror found in apt sources; set KAWA_DEBIAN_MIRROR" >&2; exit 1; }
    work=$(mktemp -d)
    cleanup() {
        # debootstrap mounts proc/sys (and may bind /dev) inside the target; if
        # it died mid-way, unmount them so removing the tree cannot reach the host.
        if [ -d "$work/rootfs" ]; then
            awk -v p="$work/rootfs/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r |
                while IFS= read -r m; do umount -l "$m" 2>/dev/null || true; done
        fi
        rm -rf --one-file-system "$work"
    }
    trap cleanup EXIT
    echo "debootstrap $suite from $mirror (minbase + $include); takes a few minutes ..."
    debootstrap --variant=minbase --include="$include" \
        "$suite" "$work/rootfs" "$mirror" >"$cache_dir/debootstrap.log" 2>&1 || {
        tail -20 "$cache_dir/debootstrap.log" >&2
        echo "debootstrap failed; full log: $cache_dir/debootstrap.log" >&2; exit 1; }
    # No apt caches or host keys baked into the image; sshd keys are made per container.
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"* \
           "$work/rootfs/etc/ssh/ssh_host_"*
    tar -C "$work/rootfs" --numeric-owner -cf "$rootfs_tar.partial" .
    mv "$rootfs_tar.partial" "$rootfs_tar"
fi
docker import --change 'CMD ["/bin/bash"]' "$rootfs_tar" "$image" >/dev/null
echo "base image $image: built"

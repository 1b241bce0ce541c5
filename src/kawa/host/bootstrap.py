"""A base environment from the OS package mirror, with no registry: debootstrap a
minimal Debian (python3, openssh-server) into a root filesystem tar.

The same recipe as ``scripts/base-image.sh``, sharing its cache
(``${XDG_CACHE_HOME:-~/.cache}/kawa/rootfs-SUITE.tar``) and its lock, so a rootfs built
by either is reused by both. Needs root and ``debootstrap`` on the host.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

INCLUDE = "openssh-server,python3,procps,iproute2"
APT_SOURCES = (
    "/etc/apt/sources.list",
    "/etc/apt/sources.list.d/*.sources",
    "/etc/apt/sources.list.d/*.list",
)
_URI = re.compile(r"^((https?|ftp|file):|mirror\+file:)")
_SUITE = re.compile(r"[a-z][a-z0-9-]*")


class BootstrapError(Exception):
    """The root filesystem could not be built; the message says why."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kawa"


def _entries(path: Path) -> Iterable[tuple[set[str], list[str], set[str], set[str], bool]]:
    """(types, uris, suites, components, enabled) of each apt source entry in ``path``."""
    text = path.read_text(errors="replace")
    if path.suffix == ".sources":  # deb822 stanzas
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            key = ""
            for line in stanza.splitlines():
                if line.lstrip().startswith("#") or not line.strip():
                    continue
                if line[0].isspace() and key:
                    fields[key] += " " + line.strip()
                elif ":" in line:
                    key, _, value = line.partition(":")
                    key = key.strip().lower()
                    fields[key] = value.strip()
            yield (
                set(fields.get("types", "").split()),
                fields.get("uris", "").split(),
                set(fields.get("suites", "").split()),
                set(fields.get("components", "").split()),
                fields.get("enabled", "yes").strip().lower() != "no",
            )
        return
    for line in text.splitlines():  # one-line style: deb [opts] URI SUITE COMPONENT…
        words = line.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        rest = [w for w in words[1:] if _URI.match(w) or not w.startswith("[")]
        uri = next((i for i, w in enumerate(rest) if _URI.match(w)), None)
        if uri is None or uri + 1 >= len(rest):
            continue
        yield {"deb"}, [rest[uri]], {rest[uri + 1]}, set(rest[uri + 2 :]), True


def mirror_from_apt(suite: str, patterns: Iterable[str] = APT_SOURCES) -> str | None:
    """The Debian archive the apt sources name: an entry with component ``main`` that is
    not a security archive, preferring one for ``suite`` itself."""
    found: list[tuple[int, int, str]] = []
    files = [p for pattern in patterns for p in sorted(Path("/").glob(pattern.lstrip("/")))]
    for path in files:
        if not path.is_file():
            continue
        for types, uris, suites, components, enabled in _entries(path):
            if "deb" not in types or not enabled or "main" not in components:
                continue
            for uri in uris:
                if "security" in uri or not _URI.match(uri):
                    continue
                rank = 1 if suite in suites else 2
                if rank == 2 and not re.search(r"debian/?$", uri):
                    continue
                found.append((rank, len(found), uri))
    if not found:
        return None
    uri = min(found)[2]
    if uri.startswith("mirror+file:"):
        listed = Path("/" + uri.removeprefix("mirror+file:").lstrip("/"))
        urls = re.findall(r"^(?:https?|ftp|file):\S+", listed.read_text(), re.M)
        uri = urls[0] if urls else ""
    return uri.rstrip("/") or None


def rootfs_tar(suite: str, mirror: str | None, say: Callable[[str], None]) -> Path:
    """The cached root filesystem tar for ``suite``, built first if missing."""
    if _SUITE.fullmatch(suite) is None:
        raise BootstrapError(f"bad suite name {suite!r}")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tar = cache / f"rootfs-{suite}.tar"
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per cache; a second caller reuses it
        if tar.is_file() and tar.stat().st_size > 0:
            say(f"using the cached root filesystem {tar}")
            return tar
        if shutil.which("debootstrap") is None:
            raise BootstrapError("debootstrap is not installed on the host (apt-get install it)")
        mirror = mirror or os.environ.get("KAWA_DEBIAN_MIRROR") or mirror_from_apt(suite)
        if not mirror:
            raise BootstrapError("no Debian mirror in the host's apt sources; pass --mirror URL")
        say(f"debootstrap {suite} from {mirror} (takes a few minutes)")
        _debootstrap(suite, mirror, tar, cache / "debootstrap.log")
    return tar


def _debootstrap(suite: str, mirror: str, tar: Path, log: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="kawa-rootfs-") as work:
        root = Path(work) / "rootfs"
        try:
            with log.open("wb") as out:
                done = subprocess.run(
                    [
                        "debootstrap",
                        "--variant=minbase",
                        f"--include={INCLUDE}",
                        suite,
                        str(root),
                        mirror,
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
            if done.returncode != 0:
                tail = log.read_text(errors="replace").splitlines()[-5:]
                raise BootstrapError(f"debootstrap failed ({' / '.join(tail)}); log: {log}")
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for item in (root / junk).glob("*"):
                    if item.is_file():
                        item.unlink()
            for key in (root / "etc/ssh").glob("ssh_host_*"):
                key.unlink()  # sshd keys are made per container, never baked in
            partial = tar.with_name(tar.name + ".partial")
            subprocess.run(
                ["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True
            )
            partial.replace(tar)
        finally:
            _unmount_below(root)


def _unmount_below(root: Path) -> None:
    """debootstrap mounts proc/sys inside the target; if it died half-way, unmount them
    before the tree is removed, so removing it cannot reach the host's."""
    prefix = str(root) + "/"
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f if line.split()[1].startswith(prefix)]
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)

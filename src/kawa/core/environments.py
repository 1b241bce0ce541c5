"""Names and versions of container environments (pure rules, no Docker).

An environment ``NAME`` is packaged into versions; version ``V`` is the Docker image
``kawa-env/NAME:V`` and the tarball ``NAME-V.tar``. Names must be valid as a Docker
repository path component and as part of a container name, so the rule is Docker's
own: lowercase letters and digits, separated by single ``.``, ``_`` or ``-``.
Versions are UTC timestamps (``20261121T184501Z``), with a two-digit counter when one
second sees more than one (``20261121T184501Z-02``); they sort as text in the order
they were made.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime

IMAGE_REPOSITORY = "kawa-env"
MAX_NAME = 64
_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_VERSION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def check_name(name: str) -> str:
    """``name`` if Docker accepts it as an environment name; else ValueError saying why."""
    if not name:
        raise ValueError("an environment name may not be empty")
    if len(name) > MAX_NAME:
        raise ValueError(f"environment name {name[:20]!r}… is longer than {MAX_NAME} characters")
    if _NAME.fullmatch(name) is None:
        hint = " (Docker image names are lowercase)" if name.lower() != name else ""
        raise ValueError(
            f"bad environment name {name!r}{hint}: use lowercase letters and digits, "
            "separated by single '.', '_' or '-' (like 'py312' or 'torch-2.4')"
        )
    return name


def check_version(version: str) -> str:
    """``version`` if it is a valid Docker tag (what a version becomes); else ValueError."""
    if _VERSION.fullmatch(version) is None:
        raise ValueError(f"bad environment version {version!r}")
    return version


def new_version(now: datetime, taken: Collection[str] = ()) -> str:
    """A version for something made at ``now``, different from every one in ``taken``."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    if stamp not in taken:
        return stamp
    n = 2
    while f"{stamp}-{n:02d}" in taken:
        n += 1
    return f"{stamp}-{n:02d}"


def image_ref(name: str, version: str) -> str:
    """The Docker image a version loads as."""
    return f"{IMAGE_REPOSITORY}/{name}:{version}"


def tarball_name(name: str, version: str) -> str:
    return f"{name}-{version}.tar"

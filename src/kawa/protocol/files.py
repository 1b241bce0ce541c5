"""The files API inside a task's container (confined to it): models and path rules
shared by the host, the runner and the client. Pure: no I/O."""

from __future__ import annotations

import posixpath
from enum import StrEnum

from pydantic import BaseModel, Field

from kawa.protocol.bounds import MAX_PATH, PathText

FORBIDDEN_ROOTS = ("/proc", "/sys", "/dev")
"""Kernel filesystems: never read or written through the files API."""


class PathError(ValueError):
    """A path the files API refuses (the message says why)."""


def check_path(path: str) -> str:
    """``path`` normalised (``//`` and ``.`` removed), or PathError.

    Paths must be absolute, may not contain ``..`` (even where it would stay inside
    the container: the rule is simple to state and to check) and may not reach into
    /proc, /sys or /dev.
    """
    if not path:
        raise PathError("a path is required")
    if "\x00" in path:
        raise PathError("a path may not contain NUL characters")
    if len(path) > MAX_PATH:
        raise PathError(f"a path may be at most {MAX_PATH} characters long (got {len(path)})")
    if not path.startswith("/"):
        raise PathError(f"path {path!r} is not absolute: paths in the container start with /")
    if ".." in path.split("/"):
        raise PathError(f"path {path!r} contains '..': give the path without it")
    clean = posixpath.normpath(path)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    for root in FORBIDDEN_ROOTS:
        if clean == root or clean.startswith(root + "/"):
            raise PathError(f"path {clean!r} is under {root}: the files API does not reach there")
    return clean


class FileType(StrEnum):
    FILE = "file"
    DIR = "dir"
    LINK = "link"
    OTHER = "other"


class FileEntry(BaseModel):
    name: str
    path: str
    type: FileType
    size: int = Field(ge=0)
    mode: int = Field(ge=0, description="permission bits, e.g. 0o644")
    mtime: float = Field(description="seconds since the epoch")
    target: str | None = Field(default=None, description="where a link points")


class FileList(BaseModel):
    path: str
    entries: list[FileEntry]


class MkdirRequest(BaseModel):
    path: PathText
    parents: bool = False


class MoveRequest(BaseModel):
    source: PathText
    destination: PathText


class FileWritten(BaseModel):
    path: str
    size: int

"""Bind mount specs: ``SRC:DST[:ro|:rw]``."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass


class MountError(ValueError):
    """A malformed mount spec."""


@dataclass(frozen=True)
class MountSpec:
    source: str
    target: str
    read_only: bool = False

    @classmethod
    def parse(cls, text: str) -> MountSpec:
        """Parse ``SRC:DST[:ro|:rw]``; both paths absolute."""
        parts = text.split(":")
        mode = "rw"
        if len(parts) == 3:
            mode = parts.pop()
        if len(parts) != 2 or mode not in ("ro", "rw"):
            raise MountError(f"bad mount {text!r}: expected SRC:DST[:ro|:rw]")
        spec = cls(parts[0], parts[1], mode == "ro")
        spec.check()
        return spec

    def check(self) -> None:
        for label, path in (("source", self.source), ("target", self.target)):
            if not path.startswith("/"):
                raise MountError(f"mount {label} must be an absolute path, got {path!r}")
            if "\x00" in path or ".." in path.split("/"):
                raise MountError(f"mount {label} {path!r} may not contain '..' or NUL")
        if posixpath.normpath(self.target) == "/":
            raise MountError("mount target may not be '/'")

    def __str__(self) -> str:
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")

"""Placement targets: ``NODE[:NUMA][::GPU[,GPU...]]`` (``node1``, ``node1:0``, ``node3::0,1``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

TARGET_SYNTAX = "NODE[:NUMA][::GPU[,GPU...]]"
TARGET_EXAMPLES = "node1, node1:0, node3::0,1, node2:1::0"

NODE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", re.ASCII)
"""A node name: a letter or digit, then up to 62 letters, digits, dots, underscores or dashes."""

_ID_RE = re.compile(r"[0-9]{1,9}", re.ASCII)


class TargetError(ValueError):
    """A target string or spec that does not follow ``NODE[:NUMA][::GPU[,GPU...]]``."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(
            f"invalid target {target!r}: {reason}; expected {TARGET_SYNTAX} "
            f"(e.g. {TARGET_EXAMPLES})"
        )


def _parse_id(text: str, what: str, target: str) -> int:
    if not _ID_RE.fullmatch(text):
        if not text:
            raise TargetError(target, f"the {what} is missing")
        raise TargetError(target, f"{what} {text!r} is not a non-negative integer")
    return int(text)


@dataclass(frozen=True)
class TargetSpec:
    """Where a task must run: a node, optionally one NUMA zone of it and specific GPUs.

    ``gpus`` is kept sorted, so two specs naming the same GPUs compare equal.
    """

    node: str
    numa: int | None = None
    gpus: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        shown = self._text()
        if not NODE_NAME_RE.fullmatch(self.node):
            raise TargetError(shown, f"node name {self.node!r} is not valid")
        if self.numa is not None and self.numa < 0:
            raise TargetError(shown, f"NUMA id {self.numa} is negative")
        for gpu in self.gpus:
            if gpu < 0:
                raise TargetError(shown, f"GPU id {gpu} is negative")
        ordered = tuple(sorted(self.gpus))
        if len(set(ordered)) != len(ordered):
            repeated = next(g for g in ordered if ordered.count(g) > 1)
            raise TargetError(shown, f"GPU {repeated} is named twice")
        object.__setattr__(self, "gpus", ordered)

    @classmethod
    def parse(cls, text: str) -> TargetSpec:
        """The spec written as ``text``; raises :class:`TargetError` naming the bad part."""
        head, has_gpus, gpu_text = text.partition("::")
        node, has_numa, numa_text = head.partition(":")
        if not node:
            raise TargetError(text, "the node name is missing")
        if not NODE_NAME_RE.fullmatch(node):
            raise TargetError(
                text,
                f"node name {node!r} must start with a letter or digit and contain only "
                "letters, digits, '.', '_' or '-' (at most 63 characters)",
            )
        numa = _parse_id(numa_text, "NUMA id", text) if has_numa else None
        gpus: tuple[int, ...] = ()
        if has_gpus:
            if not gpu_text:
                raise TargetError(text, "the GPU list after '::' is empty")
            parts = gpu_text.split(",")
            if "" in parts:
                raise TargetError(text, f"the GPU list {gpu_text!r} has an empty entry")
            gpus = tuple(_parse_id(part, "GPU id", text) for part in parts)
            repeated = sorted({g for g in gpus if gpus.count(g) > 1})
            if repeated:
                raise TargetError(text, f"GPU {repeated[0]} is named twice")
        return cls(node=node, numa=numa, gpus=gpus)

    def _text(self) -> str:
        text = self.node
        if self.numa is not None:
            text += f":{self.numa}"
        if self.gpus:
            text += "::" + ",".join(str(g) for g in self.gpus)
        return text

    def __str__(self) -> str:
        return self._text()

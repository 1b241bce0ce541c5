"""The line that says how to list the next, older page of tasks (standard library only:
both the full and the quick ``kawa task list`` print it)."""

from __future__ import annotations

import shlex
import sys

from kawa.cli.output import visible


def older_hint(last: str, status: list[str] | None, node: str | None, limit: int | None) -> None:
    """``older tasks: kawa task list … --before ID`` on standard error."""
    words = ["kawa", "task", "list"]
    for s in status or []:
        words += ["--status", s]
    if node:
        words += ["--node", node]
    if limit:
        words += ["--limit", str(limit)]
    words += ["--before", last]
    print(f"older tasks: {visible(shlex.join(words))}", file=sys.stderr)

"""A batch's output read as one: each line of a task's output prefixed with the task's
label, so the tasks can be told apart."""

from __future__ import annotations


def task_label(
    sweep_args: str | None, target: str | None, task_id: str, node: str | None = None
) -> str:
    """How a batch's task is told apart: where it runs (its target, else its node once
    placed) and what it is (its sweep values; else, without a target, its id)."""
    where = target or node
    what = sweep_args or (None if target else task_id)
    return " ".join(part for part in (where, what) if part) or task_id


def line_prefix(label: str) -> bytes:
    """What goes before each line of a task's output: ``[label] ``."""
    return f"[{label}] ".encode()


class PrefixedLines:
    """A task's output chunk by chunk, given back as whole lines, each with ``prefix``; a
    line still open at the end is ended with a newline. With ``longest``, a line longer
    than that many bytes is given back in pieces of ``longest``, each a line of its own
    (so what waits for its newline stays bounded)."""

    def __init__(self, prefix: bytes, longest: int | None = None) -> None:
        if longest is not None and longest < 1:
            raise ValueError(f"longest must be at least 1, not {longest}")
        self.prefix = prefix
        self.longest = longest
        self._open = b""

    def feed(self, chunk: bytes) -> bytes:
        """The lines ``chunk`` completes (the rest waits for the next chunk or the end)."""
        *lines, self._open = (self._open + chunk).split(b"\n")
        if self.longest is not None and len(self._open) > self.longest:
            cut = (len(self._open) - 1) // self.longest * self.longest
            lines.append(self._open[:cut])
            self._open = self._open[cut:]
        return b"".join(self._lines(line) for line in lines)

    def end(self) -> bytes:
        """The last line, when the output did not end with a newline."""
        last, self._open = self._open, b""
        return self._lines(last) if last else b""

    def _lines(self, line: bytes) -> bytes:
        step = self.longest
        if step is None or len(line) <= step:
            return self.prefix + line + b"\n"
        return b"".join(self.prefix + line[i : i + step] + b"\n" for i in range(0, len(line), step))

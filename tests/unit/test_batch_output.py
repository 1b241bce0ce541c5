"""A batch's output read as one: the label each task's lines get, lines put back together
across chunks, and the host's merge (tasks in order, unstarted ones left out, a cut at
the bound on whole lines)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, cast

import pytest

from kawa.core.batch_output import PrefixedLines, line_prefix, task_label
from kawa.host.batch_logs import BatchLogs, BatchTask, cut_note
from kawa.host.errors import Conflict, NotFound


def test_a_task_is_labelled_by_its_sweep_values_else_its_target_else_its_id() -> None:
    assert task_label("0.1 3", "node1", "42") == "node1 0.1 3"
    assert task_label(None, "node1:0::1", "42", "node1") == "node1:0::1"
    assert task_label("0.1 3", None, "42", "node2") == "node2 0.1 3"
    assert task_label(None, None, "42", "node2") == "node2 42"
    assert task_label("0.1 3", None, "42") == "0.1 3"  # not placed yet
    assert task_label(None, None, "42") == "42"
    assert task_label("", "", "42", "") == "42"
    assert line_prefix("0.1 3") == b"[0.1 3] "
    assert line_prefix("é") == "[é] ".encode()


def feed_all(lines: PrefixedLines, *chunks: bytes) -> bytes:
    return b"".join(lines.feed(c) for c in chunks) + lines.end()


def test_lines_split_across_chunks_come_back_whole_and_each_prefixed() -> None:
    out = feed_all(PrefixedLines(b"[a] "), b"one\ntw", b"o\n\nthr", b"ee")
    assert out == b"[a] one\n[a] two\n[a] \n[a] three\n"


def test_a_line_is_given_back_once_its_newline_arrives() -> None:
    lines = PrefixedLines(b"> ")
    assert lines.feed(b"half") == b""
    assert lines.feed(b" done\nnext") == b"> half done\n"
    assert lines.end() == b"> next\n"
    assert lines.end() == b"", "the end gives the last line once"


def test_output_ending_in_a_newline_gets_no_extra_line() -> None:
    assert feed_all(PrefixedLines(b"[x] "), b"a\n", b"b\n") == b"[x] a\n[x] b\n"
    assert feed_all(PrefixedLines(b"[x] ")) == b""
    assert feed_all(PrefixedLines(b"[x] "), b"\n") == b"[x] \n"


def test_a_line_longer_than_longest_comes_in_pieces_and_what_waits_stays_bounded() -> None:
    lines = PrefixedLines(b"> ", longest=4)
    assert lines.feed(b"abcdefghij") == b"> abcd\n> efgh\n"  # "ij" waits for more
    assert lines.feed(b"kl\n") == b"> ijkl\n"
    assert lines.feed(b"0123456789\n") == b"> 0123\n> 4567\n> 89\n"
    lines.feed(b"x" * 8)
    assert lines.feed(b"\n") == b"> xxxx\n", "a piece ending exactly at a newline adds no line"
    assert feed_all(PrefixedLines(b"", longest=3), b"abcdef") == b"abc\ndef\n"
    with pytest.raises(ValueError, match="at least 1"):
        PrefixedLines(b"", longest=0)


class FakeLogs:
    """Each task's output in chunks; a task without output raises as LogService does.
    Notes which bodies were closed."""

    def __init__(self, outputs: dict[str, list[bytes]]) -> None:
        self.outputs = outputs
        self.read_ids: list[str] = []
        self.closed: list[str] = []

    def read(
        self, task_id: str, state: str, url: str | None, stream: str, follow: bool, offset: int
    ) -> AsyncGenerator[bytes, None]:
        assert (stream, follow, offset) == ("stdout", False, 0)
        self.read_ids.append(task_id)
        if state == "pending":
            raise Conflict(f"task {task_id} is pending: no output yet")
        if url is None:
            raise NotFound(f"task {task_id} has no logs (it never ran on a node)")
        return self._body(task_id)

    async def _body(self, task_id: str) -> AsyncGenerator[bytes, None]:
        try:
            for chunk in self.outputs[task_id]:
                yield chunk
        finally:
            self.closed.append(task_id)


def merge(logs: FakeLogs, tasks: list[BatchTask], limit: int = 1 << 20) -> tuple[bytes, int]:
    async def main() -> tuple[bytes, int]:
        merged = BatchLogs(cast(Any, None), cast(Any, logs), limit).merged(tasks, "stdout")
        pieces = [piece async for piece in merged]
        return b"".join(pieces), len(pieces)

    return asyncio.run(main())


URL = "http://node1:8421"


def test_the_merge_is_each_started_task_in_order_and_leaves_out_those_without_output() -> None:
    logs = FakeLogs({"1": [b"one\n", b"uno"], "4": [b"four\n"], "5": [b"five\n"]})
    tasks = [
        BatchTask("1", "a", "completed", URL),
        BatchTask("2", "b", "pending", None),
        BatchTask("3", "c", "killed", None),  # killed while it waited: it never ran
        BatchTask("4", "d", "assigning", URL),
        BatchTask("5", "e", "running", URL),
    ]
    text, _ = merge(logs, tasks)
    assert text == b"[a] one\n[a] uno\n[e] five\n"
    assert logs.read_ids == ["1", "3", "5"], "an unstarted task's log is not even asked for"
    assert logs.closed == ["1", "5"]


def test_past_the_limit_the_merge_stops_on_a_whole_line_with_a_note() -> None:
    logs = FakeLogs({"1": [b"aaaa\nbbbb\n"], "2": [b"cccc\ndddd\n", b"never read\n"]})
    tasks = [BatchTask("1", "1", "completed", URL), BatchTask("2", "2", "completed", URL)]
    # each line is 9 bytes with its prefix: 30 bytes hold three of them
    text, _ = merge(logs, tasks, limit=30)
    assert text == b"[1] aaaa\n[1] bbbb\n[2] cccc\n" + cut_note(30)
    assert logs.closed == ["1", "2"], "the cut task's body is closed, not left open"
    whole, _ = merge(FakeLogs({"1": [b"aaaa\nbbbb\n"]}), tasks[:1], limit=18)
    assert whole == b"[1] aaaa\n[1] bbbb\n", "output that fits exactly is not cut"
    assert cut_note(64 << 20).startswith(b"[kawa] cut here at 64 MiB")
    assert b"30 bytes" in cut_note(30)

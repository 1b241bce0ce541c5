"""The reason a runner gives for a task whose command could not be run, read from
what the task's process printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from kawa.runner.executor import launch_failure


@pytest.mark.parametrize(
    ("code", "stdout", "stderr", "reason"),
    [
        (
            1,
            "",
            "exec /usr/bin/echo: argument list too long\n",
            "the command could not be executed: exec /usr/bin/echo: argument list too long",
        ),
        (
            1,
            "",
            "exec /x/script: exec format error\n",
            "the command could not be executed: exec /x/script: exec format error",
        ),
        (1, "some output\n", "exec /x: exec format error\n", None),  # the program ran
        (1, "", "exec /x: a\nmore\n", None),  # more than the runtime's one line
        (1, "", "", None),
        (
            127,
            "",
            "sh: 1: frobnicate: not found\n",
            "the command was not found (exit code 127): sh: 1: frobnicate: not found",
        ),
        (
            126,
            "x\n",
            "noise\nsh: 1: ./tool: Permission denied\n\n",
            "the command could not be executed (exit code 126): sh: 1: ./tool: Permission denied",
        ),
        (127, "", "", None),
        (2, "", "exec /x: exec format error\n", None),
        (0, "", "exec /x: exec format error\n", None),
        (None, "", "exec /x: exec format error\n", None),
    ],
)
def test_launch_failure(
    tmp_path: Path, code: int | None, stdout: str, stderr: str, reason: str | None
) -> None:
    out, err = tmp_path / "t.out", tmp_path / "t.err"
    out.write_text(stdout)
    err.write_text(stderr)
    assert launch_failure(code, out, err) == reason


def test_missing_log_files_tell_nothing(tmp_path: Path) -> None:
    assert launch_failure(1, tmp_path / "none.out", tmp_path / "none.err") is None

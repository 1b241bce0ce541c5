"""The end of a terminal's input reaches the process as a terminal's Ctrl-D, never as a
closed TTY: Docker, when the exec's stdin is half-closed, may close the TTY before the
process's output has been read (about one fast command in six lost all its output).
Real Docker, real TTY execs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import docker
import pytest

from kawa.docker_exec.exec_tty import ExecTTY
from tests.conftest import BASE_IMAGE


@pytest.fixture(scope="module")
def container(docker_available: None) -> Iterator[str]:
    client = docker.from_env()
    box = client.containers.run(BASE_IMAGE, ["sleep", "600"], detach=True)
    try:
        yield box.id
    finally:
        box.remove(force=True)


async def run(container: str, command: list[str], stdin: bytes) -> tuple[bytes, int | None]:
    """Start ``command`` on a TTY, write ``stdin`` and the end of input, read all output."""
    tty = ExecTTY(docker.from_env(), container)
    await tty.start(command, 24, 80, "xterm")
    try:
        if stdin:
            await tty.write(stdin)
        await tty.write_eof()
        out = b""
        async with asyncio.timeout(30):
            while chunk := await tty.read():
                out += chunk
        return out, await tty.exit_code()
    finally:
        await tty.close()


def test_a_fast_command_keeps_its_output_when_input_ends_at_once(container: str) -> None:
    async def many() -> list[tuple[bytes, int | None]]:
        command = ["/bin/sh", "-c", "echo from-$((3*4)); exit 5"]
        return [await run(container, command, b"") for _ in range(40)]

    results = asyncio.run(many())
    lost = [out for out, _ in results if b"from-12" not in out]
    assert not lost, f"{len(lost)} of {len(results)} lost their output: {lost[:3]}"
    assert {code for _, code in results} == {5}


@pytest.mark.parametrize("stdin", [b"abc", b"abc\n"], ids=["partial-line", "whole-line"])
def test_input_then_end_of_input_reaches_a_reader(container: str, stdin: bytes) -> None:
    out, code = asyncio.run(run(container, ["/bin/sh", "-c", "cat >/tmp/got; echo done"], stdin))
    assert code == 0
    assert out.endswith(b"done\r\n"), out
    check = docker.from_env().containers.get(container).exec_run(["cat", "/tmp/got"])
    assert check.output == b"abc" + (b"\n" if stdin.endswith(b"\n") else b"")

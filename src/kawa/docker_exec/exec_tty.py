"""A process in a container behind ``docker exec`` with a TTY, as a relay pipe.

The exec is created with the Docker SDK; its start is the raw ``POST /exec/ID/start``
upgrade done here on an asyncio connection to the daemon, so no output can be lost to
an HTTP library's read buffer and no thread is held per terminal. Every exec carries a
random ``KAWA_EXEC`` tag in its environment, inherited by everything it starts:
:meth:`ExecTTY.kill` ends those processes when a session goes away with the process
still running (Docker itself leaves such an exec running forever).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlparse

import docker
import docker.errors

from kawa.relay.pipe import SocketPipe, open_socket, open_unix_socket

log = logging.getLogger(__name__)

TAG = "KAWA_EXEC"
DEFAULT_SHELL = ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"]
# Runs in the container: SIGHUP, then SIGKILL, to every process carrying the tag.
_KILL = (
    'for sig in HUP KILL; do for d in /proc/[0-9]*; do case "$(tr "\\0" " " <"$d/environ"'
    ' 2>/dev/null)" in *"$1 "*) kill -s $sig "${d#/proc/}" 2>/dev/null;; esac; done;'
    " [ $sig = HUP ] && sleep 1; done; exit 0"
)


EOF_CHAR = b"\x04"
"""The terminal's end-of-file character (Ctrl-D), as a new TTY has it."""


class ExecError(Exception):
    """Docker refused to start the exec; the message says why."""


class ExecTTY:
    def __init__(self, client: docker.DockerClient, container: str) -> None:
        self.api = client.api
        self.container = container
        self.tag = secrets.token_hex(12)
        self.exec_id = ""
        self._pipe: SocketPipe | None = None
        self._mid_line = False
        """Whether the input written so far ends inside a line."""

    # -- start ---------------------------------------------------------------------------
    async def start(self, command: list[str], rows: int, cols: int, term: str) -> None:
        env = {"TERM": term or "xterm-256color", TAG: self.tag}
        try:
            created = await asyncio.to_thread(
                self.api.exec_create,
                self.container,
                command,
                stdin=True,
                tty=True,
                environment=env,
            )
        except docker.errors.APIError as exc:
            raise ExecError(f"cannot start {command[0]!r}: {exc.explanation or exc}") from None
        self.exec_id = created["Id"]
        pipe = await self._connect()
        body = json.dumps({"Detach": False, "Tty": True, "ConsoleSize": [rows, cols]}).encode()
        pipe.transport.write(
            f"POST /v{self.api._version}/exec/{self.exec_id}/start HTTP/1.1\r\n"
            "Host: docker\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode()
            + body
        )
        head = b""
        async with asyncio.timeout(30):
            while b"\r\n\r\n" not in head:
                chunk = await pipe.read()
                if not chunk:
                    break
                head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"?"
        if status not in (b"101", b"200"):
            pipe.abort()
            raise ExecError(f"docker refused the exec (HTTP {status.decode()}): {rest[:200]!r}")
        pipe.unread(rest)  # the first output, when it came with the answer
        self._pipe = pipe
        await self.resize(rows, cols)

    async def _connect(self) -> SocketPipe:
        adapter = getattr(self.api, "_custom_adapter", None)
        socket_path = getattr(adapter, "socket_path", None)
        if socket_path:
            return await open_unix_socket(socket_path)
        url = urlparse(self.api.base_url)
        if url.scheme == "http" and url.hostname:
            return await open_socket(url.hostname, url.port or 2375)
        raise ExecError(f"terminals need a unix or plain tcp docker endpoint, not {url.scheme}")

    # -- the Pipe interface -------------------------------------------------------------
    @property
    def pipe(self) -> SocketPipe:
        assert self._pipe is not None, "start() first"
        return self._pipe

    async def read(self) -> bytes:
        return await self.pipe.read()

    async def write(self, data: bytes) -> None:
        if data:
            self._mid_line = not data.endswith((b"\n", b"\r"))
        await self.pipe.write(data)

    async def write_eof(self) -> None:
        """End the input as a terminal does: the EOF character (twice after a partial
        line: the first only hands that line over). Half-closing the connection instead
        makes Docker close the TTY, which loses output the process has not yet had read
        (seen on Docker 20.10 in about one exec in six)."""
        await self.pipe.write(EOF_CHAR * 2 if self._mid_line else EOF_CHAR)

    async def close(self) -> None:
        if self._pipe is not None:
            await self._pipe.close()

    # -- control ----------------------------------------------------------------------
    async def resize(self, rows: int, cols: int) -> None:
        """Set the TTY size; retried briefly, as the process may not be started yet."""
        for attempt in range(10):
            try:
                await asyncio.to_thread(self.api.exec_resize, self.exec_id, rows, cols)
                return
            except docker.errors.NotFound:
                return  # the process has already exited
            except docker.errors.APIError as exc:
                if attempt == 9:
                    log.warning("resize of exec %s failed: %s", self.exec_id[:12], exc)
                await asyncio.sleep(0.01 * (attempt + 1))

    def _inspect(self) -> dict[str, Any]:
        return dict(self.api.exec_inspect(self.exec_id))

    async def exit_code(self, timeout: float = 5.0) -> int | None:
        """The exit code once the process has ended (None if unknown)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = await asyncio.to_thread(self._inspect)
            except docker.errors.APIError:
                return None  # the container (and its execs) went away
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.02)

    def kill(self) -> None:
        """End the exec's processes if it still runs (in a background thread)."""
        if self.exec_id:
            threading.Thread(
                target=self._kill, name=f"exec-kill-{self.tag[:6]}", daemon=True
            ).start()

    def _kill(self) -> None:
        try:
            if not self._inspect().get("Running"):
                return
            killer = self.api.exec_create(
                self.container, ["/bin/sh", "-c", _KILL, "kill", f"{TAG}={self.tag}"]
            )
            self.api.exec_start(killer["Id"])
        except docker.errors.APIError as exc:  # the container is gone: so is the exec
            log.debug("exec kill: %s", exc)

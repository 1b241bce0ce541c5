"""The runner of ``kawa up`` in a process of its own, as it runs on a node of a cluster.

Sharing one interpreter with the host made the two queue behind each other's work and
the GIL (docs/benchmarks.md: through the SSH gateway, downloads went from 0.47x
to 0.59x of direct ssh once the runner ran apart). ``kawa up`` forks it once its
configuration is written, watches it, and stops it on the way out; Linux stops it too
if ``kawa up`` is killed outright. If it dies, ``kawa up`` stops and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback

from kawa.settings import RunnerConfig

STOP_GRACE = 10.0
"""Seconds the runner has to stop after SIGTERM before it is killed."""
_PR_SET_PDEATHSIG = 1


def fork_runner(config: RunnerConfig) -> int:
    """Start the runner serving on 127.0.0.1:``config.port`` in a child process; its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _stop_with_parent()
        from kawa.cli.serve import run_event_loop, serve_all, server
        from kawa.runner.app import create_runner_app

        app = create_runner_app(config)
        tls = (config.tls_cert, config.tls_key)
        run_event_loop(serve_all(server(app, "127.0.0.1", config.port, *tls)))
        code = 0
    except KeyboardInterrupt:
        code = 0
    except SystemExit as exc:  # uvicorn exits so when it cannot start
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _stop_with_parent() -> None:
    """Have Linux send this process SIGTERM when ``kawa up`` dies without stopping it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # it died before the request above took effect
        os._exit(1)


async def exited(pid: int) -> int:
    """Wait until the child ``pid`` exits (without a thread: its pidfd); its exit code,
    negative for a signal, as ``subprocess`` reports it."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # a kernel older than 5.3: look every half second
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            await asyncio.sleep(0.5)
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await gone
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def stop(pid: int, grace: float = STOP_GRACE) -> None:
    """SIGTERM the child, give it ``grace`` seconds, then SIGKILL it; reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # already reaped
            return
        if done:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)

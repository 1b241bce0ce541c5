"""``kawa container shell NAME`` on a terminal: an interactive shell in a workspace
container on the host (a real pseudo-terminal via pexpect, real Docker, a real host),
served by the host itself over its WebSocket."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from kawa.client import KawaError
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import KAWA, Cluster, eventually
from tests.integration.env_support import removing_environments

PROMPT = "42> "  # what PS1='$((6*7))> ' shows; its own echo does not match it
WS = "desk"


@pytest.fixture(scope="module")
def host(docker_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A host (no runner needed: workspaces live on the host's Docker) with ``desk``."""
    c = Cluster(Path(tmp_path_factory.mktemp("cshell")), BASE_IMAGE)
    with removing_environments(c):
        c.start_host()
        with c.client() as admin:
            admin.create_workspace(WS, BASE_IMAGE)
            try:
                yield c
            finally:
                for w in admin.workspaces():
                    with contextlib.suppress(KawaError):
                        admin.delete_workspace(w.name, force=True)


def spawn(cluster: Cluster, name: str, *args: str, rows: int = 24, cols: int = 80):  # type: ignore[no-untyped-def]
    env = cluster._env(KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=cluster.token)
    return pexpect.spawn(
        KAWA[0],
        [*KAWA[1:], "container", "shell", name, *args],
        env=env,
        dimensions=(rows, cols),
        timeout=20,
        encoding="utf-8",
    )


def shell(cluster: Cluster, rows: int = 24, cols: int = 80):  # type: ignore[no-untyped-def]
    """An interactive shell in ``desk``, at a prompt that is easy to match."""
    child = spawn(cluster, WS, rows=rows, cols=cols)
    child.sendline("PS1='$((6*7))> '")
    child.expect_exact(PROMPT)
    return child


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF, timeout=20)
    child.close()
    assert child.exitstatus is not None, child.signalstatus
    return int(child.exitstatus)


def running(cluster: Cluster, words: str) -> bool:
    [container] = cluster.containers(workspace=WS)
    return any(words in " ".join(p) for p in container.top(ps_args="-eo pid,args")["Processes"])


def test_echo_resize_and_exit_code(host: Cluster) -> None:
    child = shell(host, rows=24, cols=80)
    child.sendline("echo typed-$((40+2))")
    child.expect_exact("typed-42")
    child.expect_exact(PROMPT)
    child.sendline("stty size")
    child.expect_exact("24 80")
    child.expect_exact(PROMPT)
    child.setwinsize(40, 132)  # SIGWINCH to the client, a RESIZE frame to the host

    def resized() -> bool:
        child.sendline("stty size")
        found: int = child.expect_exact(["40 132", "24 80"])
        child.expect_exact(PROMPT)
        return found == 0

    eventually(resized, timeout=10, what="the remote size to follow")
    child.sendline("exit 4")
    assert finish(child) == 4


def test_ctrl_c_interrupts_and_utf8_round_trips(host: Cluster) -> None:
    child = shell(host)
    child.sendline("sleep 30")
    eventually(lambda: running(host, "sleep 30"), what="the sleep in the workspace")
    started = time.monotonic()
    child.sendcontrol("c")
    child.expect_exact(PROMPT, timeout=10)
    assert time.monotonic() - started < 10, "Ctrl-C interrupted the sleep"
    eventually(lambda: not running(host, "sleep 30"), what="sleep 30 gone")
    child.sendline("printf '%s\\n' 'é漢字🙂-'$((1+1))")  # typed UTF-8 in, UTF-8 out
    child.expect_exact("é漢字🙂-2")
    child.expect_exact(PROMPT)
    child.sendline("exit")
    assert finish(child) == 0


def test_a_file_made_interactively_stays(host: Cluster) -> None:
    child = shell(host)
    child.sendline("echo made-here > /root/interactive.txt && echo wrote-$((2+3))")
    child.expect_exact("wrote-5")
    child.sendline("exit 0")
    assert finish(child) == 0
    scripted = host.cli("container", "shell", WS, input=b"cat /root/interactive.txt\n")
    assert scripted.returncode == 0, scripted.stderr
    assert scripted.stdout == "made-here\n"


def test_command_option_on_a_terminal(host: Cluster) -> None:
    child = spawn(host, WS, "--command", "echo cmd-$((3*4)); exit 5")
    child.expect_exact("cmd-12")
    assert finish(child) == 5


def test_unknown_and_stopped_workspaces_say_why(host: Cluster) -> None:
    child = spawn(host, "nosuch")
    child.expect_exact("no workspace named 'nosuch'")
    assert finish(child) == 1
    with host.client() as admin:
        admin.create_workspace("idle", BASE_IMAGE)
        assert admin.stop_workspace("idle").state == "exited"
        try:
            child = spawn(host, "idle")
            child.expect_exact("workspace idle is exited: kawa container start idle")
            assert finish(child) == 1
        finally:
            admin.delete_workspace("idle", force=True)


def test_delete_under_an_open_interactive_shell_is_refused(host: Cluster) -> None:
    child = shell(host)
    try:
        with host.client() as admin:
            eventually(lambda: any(w.shells for w in admin.workspaces() if w.name == WS))
            with pytest.raises(KawaError) as caught:
                admin.delete_workspace(WS)
            assert caught.value.status == 409, caught.value.message
            assert "1 shell(s) open" in caught.value.message
        child.sendline("exit 0")
        assert finish(child) == 0
    finally:
        child.close(force=True)
    with host.client() as admin:  # once the shell ended, nothing is counted any more
        eventually(lambda: not any(w.shells for w in admin.workspaces() if w.name == WS))

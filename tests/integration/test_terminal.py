"""``kawa connect``: a real pseudo-terminal on the client side (pexpect) typing into a
shell in a real container, through the host and the task's runner."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pexpect
import pytest

from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from kawa.protocol.tasks import TaskAction, TaskSpec
from tests.integration.cluster import KAWA, Cluster, eventually

PROMPT = "42> "  # what PS1='$((6*7))> ' shows; its own echo does not match it


@pytest.fixture(scope="module")
def sleeper(cluster: Cluster) -> Iterator[str]:
    """A running command task to connect to (host network, on node1)."""
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["sleep", "300"], targets=["node1"])).tasks
        eventually(lambda: c.task(t.id).state == "running", what="sleeper running")
        yield t.id
        c.act(t.id, TaskAction.KILL)


def env(cluster: Cluster, token: str | None = None) -> dict[str, str]:
    return cluster._env(KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=token or cluster.token)


def connect(cluster: Cluster, task_id: str, *args: str, rows: int = 24, cols: int = 80):  # type: ignore[no-untyped-def]
    """``kawa connect`` on a pseudo-terminal, at a shell prompt that is easy to match."""
    child = pexpect.spawn(
        KAWA[0],
        [*KAWA[1:], "connect", task_id, *args],
        env=env(cluster),
        dimensions=(rows, cols),
        timeout=20,
        encoding="utf-8",
    )
    if not args:
        child.sendline("PS1='$((6*7))> '")
        child.expect_exact(PROMPT)
    return child


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF, timeout=20)
    child.close()
    assert child.exitstatus is not None, child.signalstatus
    return int(child.exitstatus)


def test_typed_text_echoes_and_exit_code_returns(cluster: Cluster, sleeper: str) -> None:
    child = connect(cluster, sleeper)
    child.sendline("echo typed-$((40+2))")
    child.expect_exact("typed-42")
    child.expect_exact(PROMPT)
    child.sendline("exit 3")
    assert finish(child) == 3


def test_resize_follows_the_local_terminal(cluster: Cluster, sleeper: str) -> None:
    child = connect(cluster, sleeper, rows=24, cols=80)
    child.sendline("stty size")
    child.expect_exact("24 80")
    child.expect_exact(PROMPT)
    child.setwinsize(40, 132)  # SIGWINCH to the client, a RESIZE frame to the runner

    def resized() -> bool:
        child.sendline("stty size")
        found: int = child.expect_exact(["40 132", "24 80"])
        child.expect_exact(PROMPT)
        return found == 0

    eventually(resized, timeout=10, what="the remote size to follow")
    child.sendcontrol("d")  # Ctrl-D at an empty prompt: the shell exits with 0
    assert finish(child) == 0


def processes(cluster: Cluster, task_id: str, words: str) -> int:
    [container] = cluster.containers(task=task_id)
    return sum(words in " ".join(p) for p in container.top(ps_args="-eo pid,args")["Processes"])


def running(cluster: Cluster, task_id: str, words: str) -> bool:
    return processes(cluster, task_id, words) > 0


def test_ctrl_c_and_ctrl_z_reach_the_remote_shell(cluster: Cluster, sleeper: str) -> None:
    child = connect(cluster, sleeper)
    child.sendline("sleep 4030")
    eventually(lambda: running(cluster, sleeper, "sleep 4030"), what="the remote sleep")
    started = time.monotonic()
    child.sendcontrol("c")
    child.expect_exact(PROMPT, timeout=10)
    assert time.monotonic() - started < 10, "Ctrl-C interrupted the remote sleep"
    eventually(lambda: not running(cluster, sleeper, "sleep 4030"), what="sleep 4030 gone")
    child.sendline("sleep 4031")
    eventually(lambda: running(cluster, sleeper, "sleep 4031"), what="the second sleep")
    child.sendcontrol("z")
    child.expect("Stopped.*sleep 4031")
    # End the stopped job before exit, else bash answers "There are stopped jobs.". A
    # plain `kill %1` leaves the job marked stopped until bash hears that it went on (the
    # kernel tells it only once the job runs again), and `wait` returns at once for a
    # job marked stopped. `bg` marks it running itself, so `wait` reaps it: the marker
    # comes after the job is gone.
    child.sendline("bg %1 >/dev/null; kill %1; wait %1; echo killed-$((1+1))")
    child.expect_exact("killed-2")
    child.sendline("exit 0")
    assert finish(child) == 0


def test_utf8_split_across_frames_arrives_intact(cluster: Cluster, sleeper: str) -> None:
    child = connect(cluster, sleeper)
    child.sendline(r"printf '\303\251\346\274\242\345\255\227\360\237\231\202\n'")
    child.expect_exact("é漢字🙂")
    # ~330 kB of 2-, 3- and 4-byte characters: frame boundaries fall inside characters
    child.sendline("python3 -c \"print('<' + 'é漢字🙂' * 30000 + '>')\"")
    child.expect_exact("<" + "é漢字🙂" * 30000 + ">", timeout=30)
    child.sendline("exit")
    assert finish(child) == 0


def test_closing_the_client_kills_the_exec(cluster: Cluster, sleeper: str) -> None:
    shells = processes(cluster, sleeper, "bash")
    child = connect(cluster, sleeper)
    child.sendline("sleep 4242")
    eventually(lambda: running(cluster, sleeper, "sleep 4242"), what="the remote sleep")
    assert processes(cluster, sleeper, "bash") == shells + 1
    child.close(force=True)  # the user's terminal goes away: SIGHUP, then SIGKILL
    eventually(
        lambda: (
            not running(cluster, sleeper, "4242") and processes(cluster, sleeper, "bash") == shells
        ),
        timeout=15,
        what="the exec'd shell and its sleep to end",
    )


def test_command_option_without_a_tty(cluster: Cluster, sleeper: str) -> None:
    r = subprocess.run(
        [*KAWA, "connect", sleeper, "--command", "echo from-$((3*4)); exit 5"],
        env=env(cluster),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 5, r.stderr
    assert b"from-12" in r.stdout


def test_connect_refusals_say_why(cluster: Cluster, sleeper: str) -> None:
    with cluster.client() as c:
        [done] = c.submit(TaskSpec(command=["true"])).tasks
        c.wait([done.id], timeout=60)
        [paused] = c.submit(TaskSpec(command=["sleep", "60"])).tasks
        eventually(lambda: c.task(paused.id).state == "running", what="running")
        c.act(paused.id, TaskAction.PAUSE)
        try:
            for ref, words in [
                (done.id, f"task {done.id} is completed (exit code 0)"),
                (paused.id, f"task {paused.id} is paused"),
                ("999999", "no task with id 999999"),
            ]:
                r = subprocess.run(
                    [*KAWA, "connect", ref],
                    env=env(cluster),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert r.returncode == 1, (ref, r.stdout, r.stderr)
                assert words in r.stderr.replace("\n", " "), r.stderr
        finally:
            c.act(paused.id, TaskAction.KILL)


def test_other_users_and_viewers_cannot_connect(cluster: Cluster, sleeper: str) -> None:
    sessions = prepare_database(cluster.host_config())
    try:
        auth = Authenticator(sessions, cluster.secret)
        bob, viewer = auth.create_token("bob-t", "user"), auth.create_token("vic-t", "viewer")
    finally:
        sessions.kw["bind"].dispose()
    for token, words in [
        (bob, f"no task with id {sleeper}"),  # not his to see: "not found"
        (viewer, f"no task with id {sleeper}"),
        ("kawa_wrong", "invalid token"),
    ]:
        r = subprocess.run(
            [*KAWA, "connect", sleeper],
            env=env(cluster, token),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 1 and words in r.stderr, (token, r.stderr)

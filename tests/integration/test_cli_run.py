"""``kawa run`` as a user types it, against a real host and runners in Docker: output
byte for byte (piped and on a pseudo-terminal), standard error apart, exit codes, a
queued task's output, batches, Ctrl-C, --detach, -it, and bad input."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from collections.abc import Iterator

import pexpect
import pytest

from kawa.protocol.tasks import TaskAction, TaskSpec
from tests.integration.cluster import KAWA, Cluster, eventually


def kawa(cluster: Cluster, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """``kawa ARGS`` with its output piped, as bytes."""
    env = cluster._env(KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=cluster.token)
    return subprocess.run([*KAWA, *args], env=env, capture_output=True, timeout=timeout)


def spawn(cluster: Cluster, *args: str) -> pexpect.spawn:
    env = cluster._env(KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=cluster.token)
    return pexpect.spawn(
        KAWA[0], [*KAWA[1:], *args], env=env, dimensions=(24, 80), timeout=60, encoding="utf-8"
    )


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus is not None, child.signalstatus
    return int(child.exitstatus)


def task_ids(cluster: Cluster) -> set[str]:
    with cluster.client() as c:
        return {t.id for t in c.tasks(limit=10_000)}


def test_output_exact_and_apart_with_the_exit_code(cluster: Cluster) -> None:
    script = "printf 'out1\\n'; printf 'err1\\n' >&2; printf 'out2 no newline'; exit 3"
    done = kawa(cluster, "run", "--", "sh", "-c", script)
    assert done.stdout == b"out1\nout2 no newline"
    assert done.stderr.startswith(b"err1\n"), done.stderr
    assert b"failed: exited with code 3" in done.stderr
    assert done.returncode == 3


def test_success_prints_only_the_output(cluster: Cluster) -> None:
    done = kawa(cluster, "run", "--", "sh", "-c", "echo hi")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"hi\n", b"")


def test_fifty_megabytes_of_binary_bytes_arrive_exactly(cluster: Cluster) -> None:
    size = 50_000_000
    script = (
        f"head -c {size} /dev/urandom > /tmp/blob; sha256sum /tmp/blob | cut -d' ' -f1 >&2; "
        "cat /tmp/blob"
    )
    done = kawa(cluster, "run", "--", "sh", "-c", script, timeout=300)
    assert done.returncode == 0, done.stderr[-500:]
    assert len(done.stdout) == size
    assert hashlib.sha256(done.stdout).hexdigest() == done.stderr.decode().strip()
    every = bytes(range(256))
    done = kawa(cluster, "run", "--", "sh", "-c", 'printf "$0"', _printf_escapes(every))
    assert done.stdout == every, (done.returncode, done.stdout[:300], done.stderr)


def _printf_escapes(data: bytes) -> str:
    return "".join(f"\\{b:03o}" for b in data)


def test_a_queued_task_loses_no_output(cluster: Cluster) -> None:
    with cluster.client() as c:
        [blocker] = c.submit(TaskSpec(command=["sleep", "300"], targets=["node1"], cores=2)).tasks
        eventually(lambda: c.task(blocker.id).state == "running", what="blocker running")
        before = task_ids(cluster)
        env = cluster._env(KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=cluster.token)
        proc = subprocess.Popen(
            [*KAWA, "run", "--target", "node1", "--cores", "2", "--", "seq", "1", "100000"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            queued = eventually(
                lambda: next(
                    (t for t in c.tasks(limit=50) if t.id not in before and t.state == "pending"),
                    None,
                ),
                what="the run's task queued",
            )
            c.act(blocker.id, TaskAction.KILL)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert out == "".join(f"{i}\n" for i in range(1, 100_001)).encode()
        assert b"waiting" not in err  # standard error is no terminal: no status line
        assert c.task(queued.id).state == "completed"


def test_several_targets_prefix_every_line_with_the_node(cluster: Cluster) -> None:
    script = 'echo "a $KAWA_NODE"; echo b >&2; [ "$KAWA_NODE" = node1 ]'
    done = kawa(cluster, "run", "--target", "node1", "--target", "node2", "--", "sh", "-c", script)
    assert sorted(done.stdout.decode().splitlines()) == ["node1 | a node1", "node2 | a node2"], (
        done.stdout,
        done.stderr,
    )
    lines = done.stderr.decode().splitlines()
    assert "node1 | b" in lines and "node2 | b" in lines
    assert done.returncode == 1  # node2's task failed


def test_ctrl_c_kills_the_task(cluster: Cluster) -> None:
    before = task_ids(cluster)
    child = spawn(cluster, "run", "--", "sh", "-c", "echo started; sleep 600")
    child.expect_exact("started")
    [task] = task_ids(cluster) - before
    child.sendintr()
    child.expect_exact(f"killed task {task}")
    assert finish(child) == 130
    with cluster.client() as c:
        assert c.task(task).state == "killed"
    eventually(lambda: not cluster.containers(task=task), what="the container removed")


def test_on_a_terminal_output_and_code_come_through(cluster: Cluster) -> None:
    child = spawn(cluster, "run", "--", "sh", "-c", "echo on-a-tty; exit 4")
    child.expect_exact("on-a-tty")
    assert finish(child) == 4


def test_detach_prints_the_id_and_leaves_it_running(cluster: Cluster) -> None:
    done = kawa(cluster, "run", "--detach", "--", "sleep", "300")
    assert done.returncode == 0, done.stderr
    task = done.stdout.decode().strip()
    with cluster.client() as c:
        eventually(lambda: c.task(task).state == "running", what="detached task running")
        c.act(task, TaskAction.KILL)


def test_interactive_terminal_in_a_fresh_task(cluster: Cluster) -> None:
    before = task_ids(cluster)
    child = spawn(cluster, "run", "-it", "--", "sh")
    child.sendline("echo typed-$((40+2))")
    child.expect_exact("typed-42")
    child.sendline("exit 5")
    assert finish(child) == 5
    [task] = task_ids(cluster) - before
    with cluster.client() as c:
        final = c.wait([task], timeout=30)[0]
    assert (final.state, final.exit_code) == ("failed", 5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["echo", "hi"], b"put the command after --"),
        (["--bogus", "--", "echo"], b"no such option: --bogus"),
        (["--"], b"no command given"),
        (["--memory", "lots", "--", "true"], b"memory"),
        (["-i", "--", "sh"], b"-i and -t go together"),
    ],
)
def test_bad_input_is_a_usage_error_and_stores_nothing(
    cluster: Cluster, args: list[str], message: bytes
) -> None:
    before = task_ids(cluster)
    done = kawa(cluster, "run", *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert task_ids(cluster) == before


def test_a_refusal_is_the_hosts_message(cluster: Cluster) -> None:
    done = kawa(cluster, "run", "--target", "nosuchnode", "--", "true")
    assert done.returncode != 0
    assert b"nosuchnode" in done.stderr, done.stderr


@pytest.fixture
def lone(fresh_cluster: Cluster) -> Iterator[Cluster]:
    fresh_cluster.add_runner("solo", cores=2)
    yield fresh_cluster


def test_host_gone_mid_stream_says_so_and_the_task_keeps_running(lone: Cluster) -> None:
    env = lone._env(KAWA_CLIENT_URL=lone.url, KAWA_CLIENT_TOKEN=lone.token)
    proc = subprocess.Popen(
        [*KAWA, "run", "--", "sh", "-c", "echo begun; sleep 600"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"begun\n"
        lone.kill_host()
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert b"cannot reach the Kawa host" in err and b"keeps running" in err, err
    [container] = lone.containers()
    assert container.status == "running"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--memory", "64M", "--", "python3", "-c", "b = bytearray(400 * 1000 * 1000)"],
            b"oom_killed: reached its 64 MB memory limit",
        ),
        (["--timeout", "1s", "--", "sleep", "60"], b"timed_out after 1s"),
    ],
)
def test_why_it_failed_in_one_line(cluster: Cluster, args: list[str], line: bytes) -> None:
    done = kawa(cluster, "run", *args)
    assert done.returncode != 0
    assert line in done.stderr, done.stderr
    waited = kawa(cluster, "task", "submit", "--wait", *args)
    assert waited.returncode != 0
    assert line.split(b" ", 1)[1].removeprefix(b"after ") in waited.stdout, waited.stdout


def test_logs_resume_from_an_offset(cluster: Cluster) -> None:
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["printf", "abcdef"])).tasks
        c.wait([t.id], timeout=60)
        assert b"".join(c.logs(t.id, offset=3)) == b"def"
        assert b"".join(c.logs(t.id, follow=True, offset=6)) == b""
        response = c._http.get(f"/tasks/{t.id}/logs", params={"offset": "-1"})
        assert response.status_code == 422


def test_retry_resubmits_as_a_new_task_that_names_the_original(cluster: Cluster) -> None:
    with cluster.client() as c:
        spec = TaskSpec(
            command=["sh", "-c", "echo again; exit 3"],
            targets=["node2"],
            env={"K": "v"},
            name="retried",
            timeout=600,
        )
        [old] = c.submit(spec).tasks
        c.wait([old.id], timeout=60)
        done = kawa(cluster, "task", "retry", old.id)
        assert done.returncode == 0, done.stderr
        new_id = done.stdout.decode().split()[1]
        assert new_id != old.id
        [new] = c.wait([new_id], timeout=60)
        assert (new.command, new.target, new.env, new.name, new.timeout, new.exit_code) == (
            old.command, old.target, old.env, old.name, old.timeout, 3,
        )  # fmt: skip
        assert c.task(new_id).history[0].cause == f"retry of task {old.id} by admin"
        assert b"".join(c.logs(new_id)) == b"again\n"
    missing = kawa(cluster, "task", "retry", "999999")
    assert missing.returncode == 1 and b"999999" in missing.stderr, missing.stderr


def test_on_a_terminal_a_queued_run_says_why_and_ctrl_c_drops_it(cluster: Cluster) -> None:
    with cluster.client() as c:
        [blocker] = c.submit(TaskSpec(command=["sleep", "300"], targets=["node1"], cores=2)).tasks
        try:
            eventually(lambda: c.task(blocker.id).state == "running", what="blocker running")
            before = task_ids(cluster)
            child = spawn(cluster, "run", "--target", "node1", "--cores", "2", "--", "true")
            child.expect_exact("waiting: ")
            [task] = task_ids(cluster) - before
            reason = c.task(task).waiting_reason
            assert reason
            child.expect_exact(reason[:20])
            child.sendintr()
            child.expect_exact(f"killed task {task}")
            assert finish(child) == 130
            assert c.task(task).state == "killed"
        finally:
            c.act(blocker.id, TaskAction.KILL)


def test_a_closed_pipe_kills_the_task_as_it_would_a_local_command(cluster: Cluster) -> None:
    env = cluster._env(KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=cluster.token)
    before = task_ids(cluster)
    run = " ".join(shlex.quote(w) for w in [*KAWA, "run", "--", "sh", "-c", "seq 1 100000000"])
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {run} | head -n 2"],
        env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.stdout == b"1\n2\n"
    assert done.returncode == 141, done.stderr
    [task] = task_ids(cluster) - before
    with cluster.client() as c:
        assert c.task(task).state == "killed"

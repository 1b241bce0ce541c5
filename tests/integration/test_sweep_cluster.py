"""Sweeps on a real cluster: ``kawa task submit --sweep`` as one batch (with a cap on how
many run at once), and ``kawa sweep`` inside a task whose image has no kawa."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from kawa.protocol.tasks import TaskSpec, TaskView
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import KAWA, Cluster, eventually, when

GATE_TIMEOUT = 120


@pytest.fixture(scope="module")
def shared_cluster(
    docker_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A host and two runners of 2 cores each that share one directory (/shared)."""
    root = Path(tmp_path_factory.mktemp("sweep-cluster"))
    c = Cluster(root, BASE_IMAGE)
    try:
        c.start_host()
        c.add_runner("node1", cores=2, shared_dir=root / "nfs")
        c.add_runner("node2", cores=2, shared_dir=root / "nfs")
        yield c
    finally:
        c.close()


def shared(c: Cluster) -> Path:
    """The host side of ``/shared`` in the tasks' containers."""
    return c.root / "nfs" / "shared_data"


def batch(c: Cluster, batch_id: str) -> list[TaskView]:
    with c.client() as client:
        found = client.tasks(None, None, batch_id, "command", 10_000)
    return sorted(found, key=lambda t: int(t.id))


# Each task notes its start, waits for the gate file, prints its combination, notes its
# end, and fails for the combination (3, b).
STEP = textwrap.dedent(
    """
    import os, sys, time
    d, number, letter = sys.argv[1], sys.argv[2], sys.argv[3]
    index = os.environ["KAWA_SWEEP_INDEX"]
    def note(what):
        with open(os.path.join(d, f"{index}.{what}"), "w") as f:
            f.write(repr(time.time()))
    note("start")
    deadline = time.monotonic() + GATE_TIMEOUT
    while not os.path.exists(os.path.join(d, "gate")):
        if time.monotonic() > deadline:
            sys.exit("the gate never opened")
        time.sleep(0.05)
    print("out", number, letter, index, os.environ["KAWA_SWEEP_ARGS"])
    note("end")
    sys.exit(3 if (number, letter) == ("3", "b") else 0)
    """
).replace("GATE_TIMEOUT", str(GATE_TIMEOUT))


def test_sweep_batch_respects_max_parallel_and_reports_failure(shared_cluster: Cluster) -> None:
    c = shared_cluster
    work = shared(c) / "capped"
    work.mkdir(parents=True)
    env = c._env(KAWA_CLIENT_URL=c.url, KAWA_CLIENT_TOKEN=c.token, COLUMNS="200")
    options = ["--sweep", "--max-parallel", "3", "--wait", "--name", "grid"]
    command = ["python3", "-c", STEP, "/shared/capped", "span:{1..4}", "span:[a,b,c]"]
    submit = [*KAWA, "task", "submit", *options, "--", *command]
    waiter = subprocess.Popen(submit, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with c.client() as client:
            tasks = eventually(
                lambda: when(ts := client.tasks(None, None, None, "command", 100), len(ts) == 12),
                60,
                "the batch of 12 to be stored",
            )
        batch_id = tasks[0].batch_id
        assert {t.batch_id for t in tasks} == {batch_id}

        # The gate is closed, so whatever starts keeps running: exactly 3, never a 4th
        # (the two runners have 4 cores between them).
        def three_started() -> list[TaskView] | None:
            ts = batch(c, batch_id)
            started = [t for t in ts if t.state.value != "pending"]
            assert len(started) <= 3, [(t.name, t.state.value) for t in started]
            return when(ts, len([p for p in work.iterdir() if p.suffix == ".start"]) == 3)

        held = eventually(three_started, 90, "three tasks of the batch to start")
        pending = [t for t in held if t.state.value == "pending"]
        assert len(pending) == 9
        # One core is still free. A later task outside the batch gets it only if the
        # scheduler holds the batch's next task (earlier in the queue) back for its cap.
        with c.client() as client:
            extra = client.submit(TaskSpec(command=["true"])).tasks[0]
            (done,) = client.wait([extra.id], timeout=90)
        assert done.state.value == "completed"
        still = batch(c, batch_id)
        assert len([t for t in still if t.state.value != "pending"]) == 3
        assert all(t.waiting_reason == "its batch runs at most 3 at once" for t in pending)
        early = c.cli("task", "logs", "--batch", batch_id)
        assert early.returncode == 0, early.stderr
        assert early.stderr.count("pending: no output yet") == 9, early.stderr
        assert f"[{pending[0].env['KAWA_SWEEP_ARGS']}] pending: no output yet" in early.stderr
        (work / "gate").touch()
        out, err = waiter.communicate(timeout=300)
    finally:
        if waiter.poll() is None:
            waiter.kill()
        waiter.communicate()  # reaps it and closes its pipes
    assert waiter.returncode != 0, (out, err)
    failed_line = next(line for line in out.decode().splitlines() if "grid[3 b]" in line)
    assert "failed (exit code 3): exited with code 3" in failed_line, failed_line

    final = batch(c, batch_id)
    combos = [(n, x) for n in "1234" for x in "abc"]
    assert [t.name for t in final] == [f"grid[{n} {x}]" for n, x in combos]
    assert [t.env["KAWA_SWEEP_INDEX"] for t in final] == [str(i) for i in range(12)]
    assert {t.node for t in final} == {"node1", "node2"}
    states = {t.name: (t.state.value, t.exit_code) for t in final}
    assert states.pop("grid[3 b]") == ("failed", 3)
    assert set(states.values()) == {("completed", 0)}

    # Never more than 3 at once: the intervals the tasks recorded overlap at most 3 deep.
    spans = [
        (float((work / f"{i}.start").read_text()), float((work / f"{i}.end").read_text()))
        for i in range(12)
    ]
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    depth = deepest = 0
    for _, step in edges:
        depth += step
        deepest = max(deepest, depth)
    assert deepest <= 3

    listed = c.cli("task", "list", "--batch", batch_id)
    assert listed.returncode == 0, listed.stderr
    assert all(f"grid[{n} {x}]" in listed.stdout for n, x in combos)

    logs = c.cli("task", "logs", "--batch", batch_id)
    assert logs.returncode == 0, logs.stderr
    ran_on = {t.env["KAWA_SWEEP_ARGS"]: t.node for t in final}  # each line names its node
    assert logs.stdout.splitlines() == [
        f"[{ran_on[f'{n} {x}']} {n} {x}] out {n} {x} {i} {n} {x}" for i, (n, x) in enumerate(combos)
    ]


def test_sweep_needs_a_span_and_bad_ones_store_nothing(shared_cluster: Cluster) -> None:
    c = shared_cluster
    before = c.cli("task", "list", "--json", "--limit", "10000").stdout
    for args, mentions in [
        (["--", "echo", "no", "spans"], "--sweep needs a span:"),
        (["--", "echo", "span:[a,b"], "span:[ is not closed"),
        (["--", "echo", "span:{1..}"], "expected span:{START..END}"),
        (["--", "echo", "span:{a..z}"], "expected span:{START..END}"),
        (["--", "echo", "span:[]"], "the list is empty"),
        (["--max-parallel", "0", "--", "echo", "span:[a]"], "max_parallel"),
    ]:
        done = c.cli("task", "submit", "--sweep", *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert mentions in done.stderr, (args, done.stderr)
    with c.client() as client:
        # The host's own checks, for clients that skip the CLI's.
        for command, mentions in [
            (["echo", "plain"], "--sweep needs a span:"),
            (["echo", "span:{1..101}", "span:{1..100}"], "10,100 combinations"),
        ]:
            spec = TaskSpec(command=command, sweep=True)
            with pytest.raises(Exception, match=mentions):
                client.submit(spec)
        spec = TaskSpec(command=["echo", "span:{1..50}"], sweep=True, targets=["node1", "nosuch"])
        with pytest.raises(Exception, match="unknown node 'nosuch'"):
            client.submit(spec)
    assert c.cli("task", "list", "--json", "--limit", "10000").stdout == before


def test_sweep_inside_a_task_without_kawa_in_the_image(shared_cluster: Cluster) -> None:
    """The image has python3 but no kawa: the runner's program answers `kawa sweep`."""
    import docker

    bare = docker.from_env().containers.run(
        BASE_IMAGE, ["sh", "-c", "command -v kawa || echo none"], remove=True
    )
    assert bare.decode().strip() == "none"
    script = "import os, sys; print(sys.argv[1:], os.environ['KAWA_SWEEP_INDEX'])"
    done = c_submit(
        shared_cluster,
        "--target", "node1", "--wait", "--",
        "kawa", "sweep", "--parallel", "python3", "-c", script, "span:[1,2,3]", "x",
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout, done.stderr)
    task_id = done.stdout.split()[0]
    logs = shared_cluster.cli("task", "logs", task_id)
    assert sorted(logs.stdout.splitlines()) == [f"[{n}] ['{n}', 'x'] {n - 1}" for n in (1, 2, 3)], (
        logs.stdout
    )
    other = c_submit(shared_cluster, "--target", "node2", "--wait", "--", "kawa", "task", "list")
    assert other.returncode == 2
    task_id = other.stdout.split()[0]
    err = shared_cluster.cli("task", "logs", "--stderr", task_id).stdout
    assert "only `kawa sweep` is available inside a task" in err
    mounted = c_submit(
        shared_cluster, "--target", "node1", "--wait", "--", "sh", "-c",
        "test ! -w /usr/local/bin/kawa && ! touch /usr/local/bin/kawa 2>/dev/null",
    )  # fmt: skip
    assert mounted.returncode == 0, "the program must be mounted read-only"


def c_submit(c: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return c.cli("task", "submit", *args, timeout=180)


def test_a_big_sweep_is_stored_whole_in_one_request(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.add_runner("node1", cores=2)
    with c.client() as client:
        client.drain("node1")  # the batch stays pending: this test is about storing it
        spec = TaskSpec(command=["echo", "span:{1..50}", "span:{1..40}"], sweep=True, name="big")
        result = client.submit(spec)
        assert len(result.tasks) == 2000
        stored = client.tasks(None, None, result.batch_id, "command", 10_000)
    assert len(stored) == 2000
    assert {t.state.value for t in stored} == {"pending"}
    last = max(stored, key=lambda t: int(t.id))
    assert last.name == "big[50 40]"
    assert last.command == ["echo", "50", "40"]
    assert last.env == {"KAWA_SWEEP_INDEX": "1999", "KAWA_SWEEP_ARGS": "50 40"}
    assert shlex.split(last.env["KAWA_SWEEP_ARGS"]) == ["50", "40"]


@pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="native tasks need root for cgroups (and must run under CI=true)",
)
def test_sweep_inside_a_native_task(shared_cluster: Cluster) -> None:
    """A native task finds the runner's program on its PATH, unless the node has a kawa."""
    c = shared_cluster
    own = shutil.which("kawa", path=os.environ.get("PATH", ""))
    expected = own or str(c.runners["node2"].data_dir / "task-tools" / "kawa")
    script = "command -v kawa; kawa sweep echo 'span:{1..2}'"
    done = c_submit(c, "--native", "--target", "node2", "--wait", "--", "sh", "-c", script)
    assert done.returncode == 0, (done.stdout, done.stderr)
    task_id = done.stdout.split()[0]
    logs = c.cli("task", "logs", task_id).stdout.splitlines()
    assert logs == [expected, "[1] 1", "[2] 2"]

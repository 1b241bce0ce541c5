"""Bad input gets a clear error naming the problem, and changes nothing (SPEC §3, §5, §8).

Every case checks three things: the message names the problem, the status (HTTP status
through the API, a non-zero exit and ``error: …`` without a traceback through the CLI),
and that nothing was stored or started: the task list and the cluster's containers are
the same afterwards.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kawa.client import KawaError
from kawa.core.task_states import FINAL_STATES
from kawa.protocol.tasks import TaskAction, TaskSpec, TaskView
from tests.integration.cluster import KAWA, Cluster, eventually


@dataclass(frozen=True)
class Snapshot:
    task_ids: list[str]
    containers: set[str]


def snapshot(cluster: Cluster) -> Snapshot:
    with cluster.client() as c:
        tasks = c.tasks(limit=10000)
    return Snapshot([t.id for t in tasks], {x.id for x in cluster.containers()})


@contextmanager
def nothing_changes(cluster: Cluster) -> Iterator[None]:
    """No task is stored and no container is started by the body of the ``with``."""
    before = snapshot(cluster)
    yield
    after = snapshot(cluster)
    assert after.task_ids == before.task_ids, "a rejected request stored task(s)"
    started = after.containers - before.containers
    assert not started, f"a rejected request started container(s): {started}"


def flat(text: str) -> str:
    """Text with line wrapping undone (rich wraps long error lines)."""
    return " ".join(text.split())


def assert_api_error(exc: pytest.ExceptionInfo[KawaError], status: int, *needles: str) -> None:
    assert exc.value.status == status, (exc.value.status, exc.value.message)
    for needle in needles:
        assert needle in exc.value.message, (needle, exc.value.message)


def assert_cli_error(r: Any, *needles: str, code: int | None = None) -> None:
    out = f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert r.returncode != 0, out
    if code is not None:
        assert r.returncode == code, out
    assert "Traceback" not in r.stderr, out
    assert r.stderr.startswith("error:"), out
    for needle in needles:
        assert needle in flat(r.stderr), (needle, out)


def post_raw(cluster: Cluster, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {cluster.token}"}
    with httpx.Client(base_url=cluster.url, headers=headers, timeout=30) as h:
        if isinstance(body, str):
            return h.post(
                "/api/v1/tasks", content=body, headers={"Content-Type": "application/json"}
            )
        return h.post("/api/v1/tasks", json=body)


def assert_raw_error(r: httpx.Response, status: int, *needles: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str), f"detail should be a readable string: {detail!r}"
    for needle in needles:
        assert needle in detail, (needle, detail)


def run_to_end(cluster: Cluster, spec: TaskSpec) -> list[TaskView]:
    with cluster.client() as c:
        submitted = c.submit(spec)
        return c.wait([t.id for t in submitted.tasks], timeout=120)


# -- placement problems found by the host -----------------------------------------------

PLACEMENT = [
    pytest.param(
        {"targets": ["ghost"]}, ["unknown node 'ghost'", "node1", "node2"], id="unknown-node"
    ),
    pytest.param(
        {"targets": ["node1", "ghost"]}, ["unknown node 'ghost'"], id="unknown-node-in-batch"
    ),
    pytest.param({"targets": ["node1:7"]}, ["unknown NUMA id 7", "node1"], id="unknown-numa"),
    pytest.param({"targets": ["node1::3"]}, ["unknown GPU id 3", "node1"], id="unknown-gpu"),
    pytest.param({"cores": 64}, ["64 cores", "largest: 2"], id="cores-64"),
    pytest.param({"memory": "10T"}, ["10T memory"], id="memory-10T"),
    pytest.param(
        {"cores": 3, "targets": ["node1"]}, ["3 cores", "'node1' has 2"], id="cores-3-on-node1"
    ),
    pytest.param({"gpus": 1}, ["1 GPU"], id="gpus-on-gpuless-cluster"),
]


@pytest.mark.parametrize(("spec", "needles"), PLACEMENT)
def test_impossible_placement_is_refused_by_the_api(
    cluster: Cluster, spec: dict[str, Any], needles: list[str]
) -> None:
    with nothing_changes(cluster), cluster.client() as c, pytest.raises(KawaError) as exc:
        c.submit(TaskSpec(command=["true"], **spec))
    assert_api_error(exc, 400, *needles)


CLI_PLACEMENT = [
    pytest.param(["--target", "ghost"], ["unknown node 'ghost'"], id="unknown-node"),
    pytest.param(["--memory", "10T"], ["10T memory"], id="memory-10T"),
    pytest.param(
        ["--cores", "3", "--target", "node1"], ["3 cores", "'node1' has 2"], id="cores-3-on-node1"
    ),
    pytest.param(
        ["--container", "nope"], ["unknown container environment 'nope'"], id="unknown-environment"
    ),
]


@pytest.mark.parametrize(("args", "needles"), CLI_PLACEMENT)
def test_impossible_placement_is_refused_by_the_cli(
    cluster: Cluster, args: list[str], needles: list[str]
) -> None:
    with nothing_changes(cluster):
        r = cluster.cli("task", "submit", *args, "--", "echo", "hi")
    assert_cli_error(r, *needles)


def test_unknown_environment_is_named(cluster: Cluster) -> None:
    with nothing_changes(cluster), cluster.client() as c, pytest.raises(KawaError) as exc:
        c.submit(TaskSpec(command=["true"], container="nope"))
    assert_api_error(exc, 400, "'nope'", "default")


# -- malformed input: refused by the client (CLI) and by the API (raw JSON) ---------------

CLI_MALFORMED = [
    pytest.param(["--target", "node1::x"], ["node1::x", "GPU id 'x'"], id="target-gpu-x"),
    pytest.param(["--target", ":0"], ["':0'", "node name is missing"], id="target-no-node"),
    pytest.param(["--target", "node1:a"], ["node1:a", "NUMA id 'a'"], id="target-numa-a"),
    pytest.param(
        ["--memory", "12XB"], ["invalid memory size '12XB'", "unknown unit"], id="memory-12XB"
    ),
    pytest.param(
        ["--memory", "-1G"], ["invalid memory size '-1G'", "negative"], id="memory-negative"
    ),
    pytest.param(["--env", "NOEQUALS"], ["--env 'NOEQUALS'", "KEY=VALUE"], id="env"),
    pytest.param(["--mount", "relative:/x"], ["absolute path", "'relative'"], id="mount-relative"),
    pytest.param(["--mount", "/a:/b:zz"], ["'/a:/b:zz'", "SRC:DST"], id="mount-mode"),
    pytest.param(["--timeout", "5x"], ["invalid duration '5x'", "unknown unit 'x'"], id="timeout"),
    pytest.param(["--network", "wifi"], ["network", "'host'", "'bridge'"], id="network"),
    pytest.param(["--workdir", "tmp"], ["workdir", "absolute"], id="workdir-relative"),
]


@pytest.mark.parametrize(("args", "needles"), CLI_MALFORMED)
def test_malformed_option_is_refused_by_the_cli(
    cluster: Cluster, args: list[str], needles: list[str]
) -> None:
    with nothing_changes(cluster):
        r = cluster.cli("task", "submit", *args, "--", "echo", "hi")
    assert_cli_error(r, *needles, code=2)


RAW_MALFORMED = [
    pytest.param(
        {"targets": ["node1::x"]}, ["targets", "node1::x", "GPU id 'x'"], id="target-gpu-x"
    ),
    pytest.param({"targets": [":0"]}, ["targets", "node name is missing"], id="target-no-node"),
    pytest.param({"targets": ["node1:a"]}, ["targets", "NUMA id 'a'"], id="target-numa-a"),
    pytest.param({"memory": "12XB"}, ["memory", "invalid memory size '12XB'"], id="memory-12XB"),
    pytest.param({"memory": "-1G"}, ["memory", "negative"], id="memory-negative"),
    pytest.param({"memory": -5}, ["memory", "greater than 0"], id="memory-negative-int"),
    pytest.param({"timeout": "5x"}, ["timeout", "invalid duration '5x'"], id="timeout"),
    pytest.param({"network": "wifi"}, ["network"], id="network"),
    pytest.param({"env": {"A=B": "x"}}, ["env", "'A=B'"], id="env-name"),
    pytest.param(
        {"mounts": [{"source": "relative", "target": "/x"}]},
        ["absolute path", "'relative'"],
        id="mount-relative",
    ),
    pytest.param({"cores": 0}, ["cores"], id="cores-zero"),
    pytest.param({"command": []}, ["no command"], id="no-command"),
    pytest.param({"colour": "blue"}, ["colour"], id="unknown-field"),
]


@pytest.mark.parametrize(("fields", "needles"), RAW_MALFORMED)
def test_malformed_json_is_refused_by_the_api(
    cluster: Cluster, fields: dict[str, Any], needles: list[str]
) -> None:
    with nothing_changes(cluster):
        r = post_raw(cluster, {"command": ["true"], **fields})
    assert_raw_error(r, 422, *needles)


def test_body_that_is_not_json_is_refused(cluster: Cluster) -> None:
    with nothing_changes(cluster):
        r = post_raw(cluster, "{not json")
    assert_raw_error(r, 422, "JSON")


# -- the command itself -------------------------------------------------------------------


def test_command_without_double_dash_is_refused(cluster: Cluster) -> None:
    with nothing_changes(cluster):
        r = cluster.cli("task", "submit", "echo", "hi")
    assert_cli_error(r, "put the command after --", code=2)


def test_double_dash_without_command_is_refused(cluster: Cluster) -> None:
    with nothing_changes(cluster):
        r = cluster.cli("task", "submit", "--cores", "1", "--")
    assert_cli_error(r, "no command given", code=2)


# -- task ids -----------------------------------------------------------------------------


def test_unknown_task_id(cluster: Cluster) -> None:
    with nothing_changes(cluster):
        with cluster.client() as c, pytest.raises(KawaError) as exc:
            c.task("999999")
        assert_api_error(exc, 404, "no task with id 999999")
        r = cluster.cli("task", "status", "999999")
    assert_cli_error(r, "no task with id 999999")


@pytest.mark.parametrize("ref", ["abc", "12ab", "-5"])
def test_non_digit_task_id(cluster: Cluster, ref: str) -> None:
    with nothing_changes(cluster):
        with cluster.client() as c, pytest.raises(KawaError) as exc:
            c.task(ref)
        assert_api_error(exc, 400, f"bad task id {ref!r}", "digits")


def test_non_digit_task_id_in_the_cli(cluster: Cluster) -> None:
    with nothing_changes(cluster):
        r = cluster.cli("task", "kill", "abc")
    assert_cli_error(r, "bad task id 'abc'", "digits")


def test_ambiguous_task_id_prefix(cluster: Cluster) -> None:
    finished = run_to_end(cluster, TaskSpec(command=["true"], targets=["node1", "node2"]))
    a, b = sorted(t.id for t in finished)
    prefix = a[: next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)]
    assert len(prefix) >= 10, (a, b)
    with nothing_changes(cluster):
        with cluster.client() as c:
            with pytest.raises(KawaError) as exc:
                c.task(prefix)
            assert_api_error(exc, 409, "ambiguous", a, b)
            with pytest.raises(KawaError) as exc:
                c.act(prefix, TaskAction.KILL)
            assert_api_error(exc, 409, "ambiguous")
            assert c.task(a).id == a, "full ids still resolve"
        r = cluster.cli("task", "status", prefix)
    assert_cli_error(r, "ambiguous", a)


# -- actions the task's state does not allow -------------------------------------------------


def test_pause_resume_kill_of_a_completed_task_conflict(cluster: Cluster) -> None:
    [done] = run_to_end(cluster, TaskSpec(command=["true"]))
    assert done.state == "completed"
    with cluster.client() as c:
        history = len(c.task(done.id).history)
        with nothing_changes(cluster):
            for action in (TaskAction.PAUSE, TaskAction.RESUME, TaskAction.KILL):
                with pytest.raises(KawaError) as exc:
                    c.act(done.id, action)
                assert_api_error(exc, 409, f"cannot {action.value}", "completed")
            for verb in ("pause", "kill"):
                r = cluster.cli("task", verb, done.id)
                assert_cli_error(r, f"cannot {verb}", "completed")
        after = c.task(done.id)
    assert after.state == "completed"
    assert len(after.history) == history, "a refused action recorded a transition"


def test_resume_of_a_running_task_conflicts(cluster: Cluster) -> None:
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["sleep", "60"], targets=["node1"])).tasks
        try:
            eventually(lambda: c.task(t.id).state == "running", 60, "task running")
            history = len(c.task(t.id).history)
            with nothing_changes(cluster):
                with pytest.raises(KawaError) as exc:
                    c.act(t.id, TaskAction.RESUME)
                assert_api_error(exc, 409, "cannot resume", "running")
                r = cluster.cli("task", "resume", t.id)
                assert_cli_error(r, "cannot resume", "running")
            now = c.task(t.id)
            assert now.state == "running"
            assert len(now.history) == history
            [container] = cluster.containers(task=t.id)
            container.reload()
            assert container.status == "running", "the container was not touched"
        finally:
            if c.task(t.id).state not in FINAL_STATES:
                c.act(t.id, TaskAction.KILL)
            [final] = c.wait([t.id], timeout=60)
    assert final.state == "killed"
    eventually(lambda: not cluster.containers(task=t.id), 30, "container removed")


def test_unknown_state_filter_is_refused(cluster: Cluster) -> None:
    with cluster.client() as c, pytest.raises(KawaError) as exc:
        c.tasks(states=["sleeping"])
    assert_api_error(exc, 400, "unknown state 'sleeping'", "running")
    r = cluster.cli("task", "list", "--status", "sleeping")
    assert_cli_error(r, "unknown state 'sleeping'")


# -- regressions: ids past 64 bits, NUL bytes, markup in error messages ----------------------


@contextmanager
def settled(cluster: Cluster) -> Iterator[None]:
    """Whatever tasks the body wrongly stores are waited for and their containers removed,
    so that later tests' snapshots are not disturbed."""
    with cluster.client() as c:
        before = {t.id for t in c.tasks(limit=10000)}
    try:
        yield
    finally:
        with cluster.client() as c:
            stray = [t.id for t in c.tasks(limit=10000) if t.id not in before]
            if stray:
                c.wait(stray, timeout=60)
        for task_id in stray:

            def gone(task: str = task_id) -> bool:
                return not cluster.containers(task=task)

            eventually(gone, 30, "stray container gone")


@pytest.mark.parametrize("ref", ["9999999999999999999", "9223372036854775808"])
def test_task_id_beyond_64_bits_is_not_found(cluster: Cluster, ref: str) -> None:
    with nothing_changes(cluster):
        with cluster.client() as c, pytest.raises(KawaError) as exc:
            c.task(ref)
        assert_api_error(exc, 404, f"no task with id {ref}")


NUL_FIELDS = [
    pytest.param({"command": ["echo", "a\x00b"]}, "command", id="command"),
    pytest.param({"env": {"A": "x\x00y"}}, "env", id="env-value"),
    pytest.param({"workdir": "/tmp\x00x"}, "workdir", id="workdir"),
]


@pytest.mark.parametrize(("fields", "where"), NUL_FIELDS)
def test_nul_bytes_are_refused_before_anything_is_stored(
    cluster: Cluster, fields: dict[str, Any], where: str
) -> None:
    with settled(cluster), nothing_changes(cluster):
        r = post_raw(cluster, {"command": ["true"], **fields})
    assert_raw_error(r, 422, where)


def offline_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI with a config of its own and no host (client-side errors only)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("KAWA_")}
    full.update(KAWA_CONFIG=str(tmp_path / "kawa.toml"), COLUMNS="200", **env)
    return subprocess.run([*KAWA, *args], env=full, capture_output=True, text=True, timeout=60)


MARKUP = [
    pytest.param(
        ["task", "submit", "--mount", "[b]:/x", "--", "true"], {}, "'[b]'", id="bracket-eaten"
    ),
    pytest.param(
        ["task", "submit", "--target", "node1::[/x]", "--", "true"],
        {},
        "[/x]",
        id="closing-tag-crashes",
    ),
    pytest.param(
        ["task", "list"], {"KAWA_CLIENT_TOKEN": ""}, "[client] token", id="config-hint-eaten"
    ),
]


@pytest.mark.parametrize(("args", "env", "shown"), MARKUP)
def test_error_messages_are_printed_verbatim(
    tmp_path: Path, args: list[str], env: dict[str, str], shown: str
) -> None:
    r = offline_cli(tmp_path, *args, **env)
    assert_cli_error(r, shown)

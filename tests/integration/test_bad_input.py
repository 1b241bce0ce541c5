"""Bad input gets a clear error naming the problem, and changes nothing: in the API, the
CLI, the configuration and WebSocket frames alike.

Every case checks three things: the message names the problem, the status (HTTP status
through the API, a non-zero exit and ``error: …`` without a traceback through the CLI),
and that nothing was stored or started: the task list and the cluster's containers are
the same afterwards.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from kawa.client import KawaError
from kawa.client.files import RemoteFiles
from kawa.core.task_states import FINAL_STATES
from kawa.protocol import streams as proto
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


# -- the table: bad input at the API's edge, REST, files and WebSocket frames ----------------
#
# Each case names the request, the status it gets and words its message must contain; the
# request changes nothing (no task stored or started, no container, no file on the host).

KiB = 1024
MiB = 1024 * KiB
TASK = "{task}"
"""Stands for the id of a running task (a ``sleep`` on node1) in a case's path."""
RUNNER = {"Authorization": "Bearer {secret}"}
"""A runner's credential (the cluster secret), for the calls runners make."""
AT = "2026-01-01T00:00:00Z"
INVENTORY = {"cores": 1, "memory": 1}
HEARTBEAT_WITH_INFINITY = (
    '{"name": "node1", "usage": {"at": "' + AT + '", "cpu_percent": Infinity, '
    '"memory_used": 1, "memory_percent": 1}}'
)


@dataclass(frozen=True)
class Bad:
    method: str
    path: str
    status: int
    needles: tuple[str, ...]
    json: Any = None
    content: str | bytes | None = None
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None


def submit(status: int, *needles: str, content: str | bytes | None = None, **fields: Any) -> Bad:
    """A task submission with ``fields`` added to a valid one (or a raw ``content`` body)."""
    body = None if content is not None else {"command": ["true"], **fields}
    headers = {"Content-Type": "application/json"}
    return Bad("POST", "/tasks", status, needles, json=body, content=content, headers=headers)


def get(where: str, status: int, /, *needles: str, **params: str) -> Bad:
    return Bad("GET", where, status, needles, params=params or None)


def chunks(body: bytes, size: int = 64 * KiB) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


FILES = f"/tasks/{TASK}/files"
REST: list[Any] = [
    # what runners send: ids, URLs and numbers are bounded too
    pytest.param(
        Bad(
            "POST",
            "/runner/report",
            422,
            ("task_id", "at most 64 characters"),
            json={"task_id": "9" * 65, "node": "node1", "state": "ended", "at": AT},
            headers=RUNNER,
        ),
        id="runner-report-id-65-digits",
    ),
    pytest.param(
        Bad(
            "POST",
            "/runner/environments/progress",
            422,
            ("tasks.0", "at most 19 characters"),
            json={"node": "node1", "tasks": ["9" * 200], "text": "syncing"},
            headers=RUNNER,
        ),
        id="runner-progress-id-200-digits",
    ),
    pytest.param(
        Bad(
            "POST",
            "/runner/register",
            422,
            ("url", "at most 512"),
            json={
                "name": "n9",
                "url": "http://" + "a" * 600,
                "inventory": {"cores": 1, "memory": 1},
            },
            headers=RUNNER,
        ),
        id="runner-register-url-607",
    ),
    pytest.param(
        Bad(
            "POST",
            "/runner/heartbeat",
            422,
            ("usage.cpu_percent", "finite"),
            content=HEARTBEAT_WITH_INFINITY,
            headers={**RUNNER, "Content-Type": "application/json"},
        ),
        id="runner-heartbeat-Infinity",
    ),
    # numbers: finite and in range
    pytest.param(
        submit(422, "timeout", "finite", content='{"command":["true"],"timeout":Infinity}'),
        id="timeout-Infinity",
    ),
    pytest.param(
        submit(422, "timeout", "finite", content='{"command":["true"],"timeout":NaN}'),
        id="timeout-NaN",
    ),
    pytest.param(
        submit(422, "timeout", "finite", content='{"command":["true"],"timeout":-Infinity}'),
        id="timeout-minus-Infinity",
    ),
    pytest.param(
        submit(422, "timeout", "less than or equal to 31622400", timeout=1e300), id="timeout-1e300"
    ),
    pytest.param(
        submit(422, "timeout", "less than or equal", timeout="100000d"), id="timeout-100000d"
    ),
    pytest.param(submit(422, "timeout", "greater than 0", timeout=0), id="timeout-zero"),
    pytest.param(submit(422, "cores", "less than or equal to 4096", cores=10**30), id="cores-1e30"),
    pytest.param(submit(422, "cores", "integer", cores=1.5), id="cores-fraction"),
    pytest.param(submit(422, "cores", "integer", cores="two"), id="cores-text"),
    pytest.param(
        submit(422, "memory", content='{"command":["true"],"memory":Infinity}'),
        id="memory-Infinity",
    ),
    pytest.param(submit(422, "memory", memory=1e300), id="memory-1e300"),
    pytest.param(
        submit(422, "memory", "larger than", memory="9999999T"), id="memory-beyond-64-bits"
    ),
    pytest.param(
        submit(422, "priority", "less than or equal to 1000", priority=10**20), id="priority-huge"
    ),
    pytest.param(
        submit(422, "priority", "greater than or equal to -1000", priority=-1001), id="priority-low"
    ),
    pytest.param(submit(422, "gpus", "less than or equal to 64", gpus=65), id="gpus-65"),
    pytest.param(submit(422, "gpus", "greater than or equal to 0", gpus=-1), id="gpus-negative"),
    pytest.param(
        submit(
            400, "error parsing the body", content='{"command":["true"],"cores":' + "9" * 5000 + "}"
        ),
        id="cores-5000-digits",
    ),
    # names: no control characters, bounded
    pytest.param(
        submit(422, "name", "control character", name="\x1b[31mRED\x07\nline2"),
        id="name-escape-codes",
    ),
    pytest.param(
        submit(422, "name", "control character", name="a\u2028b"), id="name-line-separator"
    ),
    pytest.param(
        submit(422, "name", "bidirectional override", name="invoice\u202egnp.exe"),
        id="name-bidi-override",
    ),
    pytest.param(submit(422, "name", "at most 128", name="n" * 129), id="name-129"),
    pytest.param(submit(422, "name", "at least 1", name=""), id="name-empty"),
    pytest.param(
        submit(422, "container", "control character", container="py\n312"), id="container-newline"
    ),
    pytest.param(
        submit(422, "image", "not a Docker image reference", image="__main__"),
        id="image-underscore",
    ),
    pytest.param(
        submit(422, "image", "not a Docker image reference", image="Debian:12 latest"),
        id="image-space",
    ),
    pytest.param(submit(422, "image", "at most 256", image="a" * 257), id="image-257"),
    pytest.param(
        submit(422, "targets.0", "control character", targets=["node1\n"]), id="target-newline"
    ),
    pytest.param(
        submit(422, "targets", "at most 256 items", targets=["node1"] * 257), id="targets-257"
    ),
    # sizes of the command, the environment, mounts, paths, keys
    pytest.param(
        submit(422, "command.0", "at most 131072", command=["x" * (129 * KiB)]),
        id="argument-129KiB",
    ),
    pytest.param(
        submit(422, "command", "at most 4096 items", command=["x"] * 4097), id="arguments-4097"
    ),
    pytest.param(
        submit(422, "command", "in all", "131072", command=["x" * (70 * KiB)] * 2),
        id="command-140KiB",
    ),
    pytest.param(
        submit(422, "env.A", "at most 32768", env={"A": "x" * (33 * KiB)}), id="env-value-33KiB"
    ),
    pytest.param(
        submit(422, "env", "at most 256 items", env={f"V{i}": "" for i in range(257)}),
        id="env-257-vars",
    ),
    pytest.param(submit(422, "env", "at most 256", env={"K" * 257: "x"}), id="env-key-257"),
    pytest.param(
        submit(422, "env", "in all", env={f"V{i}": "x" * (30 * KiB) for i in range(9)}),
        id="env-270KiB",
    ),
    pytest.param(submit(422, "env", "NUL", env={"A\x00B": "x"}), id="env-key-nul"),
    pytest.param(
        submit(
            422,
            "mounts",
            "at most 64 items",
            mounts=[{"source": "/a", "target": f"/m{i}"} for i in range(65)],
        ),
        id="mounts-65",
    ),
    pytest.param(
        submit(
            422,
            "mounts.0.source",
            "at most 4096",
            mounts=[{"source": "/" + "a" * 4096, "target": "/m"}],
        ),
        id="mount-path-4097",
    ),
    pytest.param(
        submit(422, "workdir", "at most 1024", workdir="/" + "w" * 1024), id="workdir-1025"
    ),
    pytest.param(
        submit(
            422,
            "ssh_key",
            "at most 16384",
            kind="vps",
            command=[],
            ssh_key="ssh-ed25519 " + "A" * 16 * KiB,
        ),
        id="ssh-key-16KiB",
    ),
    # the body
    pytest.param(
        submit(413, "larger than the limit of 1048576 bytes", env={"A": "x" * (20 * MiB)}),
        id="body-20MiB",
    ),
    pytest.param(
        submit(413, "larger than the limit", content=b"{" + b" " * (2 * MiB) + b"}"),
        id="body-2MiB-blank",
    ),
    pytest.param(
        submit(422, "Input should be a valid dictionary", content="[1, 2]"), id="body-array"
    ),
    pytest.param(submit(422, "JSON", content='{"command": ["true"]'), id="body-truncated"),
    # ids in paths and queries: signed 64-bit
    pytest.param(
        get(
            "/tasks",
            422,
            "batch",
            "less than or equal to 9223372036854775807",
            batch="9999999999999999999",
        ),
        id="batch-beyond-64-bits",
    ),
    pytest.param(
        get("/tasks", 422, "batch", "greater than or equal to 0", batch="-1"), id="batch-negative"
    ),
    pytest.param(get("/tasks", 422, "batch", "integer", batch="12abc"), id="batch-text"),
    pytest.param(
        get("/tasks", 422, "limit", "less than or equal to 10000", limit="1" + "0" * 30),
        id="limit-huge",
    ),
    pytest.param(
        get("/tasks", 422, "limit", "greater than or equal to 1", limit="0"), id="limit-zero"
    ),
    pytest.param(
        get("/tasks", 422, "node", "control character", node="node1\x00"), id="node-filter-nul"
    ),
    pytest.param(get("/tasks", 422, "kind", "pattern", kind="VPS;drop"), id="kind-filter-pattern"),
    pytest.param(
        get("/tasks/9223372036854775808", 404, "no task with id 9223372036854775808"),
        id="task-2^63",
    ),
    pytest.param(get("/tasks/" + "9" * 5000, 404, "no task with id 9999"), id="task-5000-digits"),
    pytest.param(get("/tasks/12%2034", 400, "bad task id", "digits"), id="task-id-with-space"),
    pytest.param(
        Bad("POST", "/tasks/99999999999999999999/kill", 404, ("no task with id",)),
        id="kill-beyond-64-bits",
    ),
    pytest.param(
        Bad("POST", f"/tasks/{TASK}/explode", 422, ("action", "kill")), id="unknown-action"
    ),
    pytest.param(
        get(f"/tasks/{TASK}/logs", 400, "unknown stream 'stdin'", stream="stdin"), id="logs-stream"
    ),
    pytest.param(
        get("/batches/1/logs", 400, "unknown stream 'stdin'", stream="stdin"),
        id="batch-logs-stream",
    ),
    pytest.param(
        get("/batches/-1/logs", 422, "batch_id", "greater than or equal to 0"),
        id="batch-logs-negative",
    ),
    pytest.param(get("/batches/12345/logs", 404, "no tasks in batch 12345"), id="batch-logs-none"),
    # no redirects: a trailing slash is not found
    pytest.param(get("/tasks/", 404, "Not Found"), id="tasks-trailing-slash"),
    pytest.param(get("/nodes/", 404, "Not Found"), id="nodes-trailing-slash"),
    pytest.param(get("/nodes/node1%0Ax", 422, "name", "control character"), id="node-newline"),
    pytest.param(get("/nodes/" + "n" * 64, 422, "name", "at most 63"), id="node-64"),
    pytest.param(Bad("POST", "/nodes/ghost/drain", 404, ("ghost",)), id="drain-unknown-node"),
    pytest.param(get("/nodes/ghost/history", 404, "ghost"), id="history-unknown-node"),
    pytest.param(get("/nodes/node1/history", 422, "window", window="7d"), id="history-window"),
    pytest.param(
        get("/tasks", 422, "before", "less than or equal", before="9" * 20), id="before-huge"
    ),
    pytest.param(get("/tasks", 422, "q", "NUL", q="a\x00b"), id="text-filter-nul"),
    pytest.param(get("/tasks", 422, "owner", "at most 64", owner="o" * 65), id="owner-65"),
    pytest.param(
        Bad(
            "POST",
            "/tasks/dry-run",
            400,
            ("no node has 99 cores",),
            json={"command": ["true"], "cores": 99},
        ),
        id="dry-run-impossible",
    ),
    pytest.param(
        Bad("POST", "/tasks/dry-run", 422, ("command",), json={"command": "true"}),
        id="dry-run-malformed",
    ),
    pytest.param(
        Bad(
            "POST", "/environments", 422, ("name", "control character"), json={"name": "py\x1b312"}
        ),
        id="workspace-escape",
    ),
    pytest.param(
        Bad(
            "POST",
            "/environments",
            422,
            ("image", "not a Docker image reference"),
            json={"name": "fine", "image": "LPT1"},
        ),
        id="workspace-image",
    ),
    pytest.param(
        get("/environments/tarballs", 422, "name", "at most 256", name="e" * 257),
        id="tarballs-name-257",
    ),
    # the files API: paths stay inside the container, away from kernel filesystems
    pytest.param(
        get(FILES, 400, "not absolute", path="../../etc/passwd"), id="files-relative-traversal"
    ),
    pytest.param(
        get(f"{FILES}/content", 400, "contains '..'", path="/tmp/../../etc/passwd"),
        id="files-dotdot",
    ),
    pytest.param(get(f"{FILES}/content", 400, "/proc", path="/proc/1/environ"), id="files-proc"),
    pytest.param(
        get(f"{FILES}/content", 400, "/proc", path="//proc/self/mem"), id="files-proc-double-slash"
    ),
    pytest.param(get(FILES, 400, "/sys", path="/sys/kernel"), id="files-sys"),
    pytest.param(
        Bad("PUT", f"{FILES}/content", 400, ("/dev",), params={"path": "/dev/sda"}, content=b"x"),
        id="files-write-dev",
    ),
    pytest.param(get(f"{FILES}/stat", 400, "NUL", path="/tmp/a\x00b"), id="files-nul"),
    pytest.param(
        get(FILES, 422, "path", "at most 4096", path="/" + "p" * 4096), id="files-path-4097"
    ),
    pytest.param(
        Bad(
            "PUT",
            f"{FILES}/content",
            400,
            ("not absolute",),
            params={"path": "etc/x"},
            content=b"x",
        ),
        id="files-write-relative",
    ),
    pytest.param(
        Bad("POST", f"{FILES}/mkdir", 422, ("path", "NUL"), json={"path": "/tmp/x\x00"}),
        id="files-mkdir-nul",
    ),
    pytest.param(
        Bad(
            "POST",
            f"{FILES}/move",
            400,
            ("contains '..'",),
            json={"source": "/etc/hostname", "destination": "/tmp/../../x"},
        ),
        id="files-move-dotdot",
    ),
    pytest.param(
        Bad("DELETE", FILES, 400, ("/proc",), params={"path": "/proc/1", "recursive": "true"}),
        id="files-delete-proc",
    ),
    pytest.param(
        get(f"{FILES}/content", 404, "no such file", path="/tmp/nïcht-dä-\U0001f600"),
        id="files-unicode-missing",
    ),
    pytest.param(
        get("/tasks/99999999999999999999/files", 404, "no task with id", path="/etc"),
        id="files-task-beyond-64-bits",
    ),
]


@pytest.fixture(scope="module")
def running(cluster: Cluster) -> Iterator[str]:
    """A running ``sleep`` task on node1: the target of the files and stream cases."""
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["sleep", "600"], targets=["node1"])).tasks
        eventually(lambda: c.task(t.id).state == "running", 60, "task running")
        yield t.id
        c.act(t.id, TaskAction.KILL)
        c.wait([t.id], timeout=60)


def call(cluster: Cluster, bad: Bad, task: str) -> httpx.Response:
    given = {k: v.replace("{secret}", cluster.secret) for k, v in (bad.headers or {}).items()}
    headers = {"Authorization": f"Bearer {cluster.token}", **given}
    path = "/api/v1" + bad.path.replace(TASK, task)
    content: Any = bad.content
    if isinstance(content, bytes) and len(content) > MiB:
        content = chunks(content)  # no Content-Length: counted as it arrives
    with httpx.Client(base_url=cluster.url, timeout=60) as h:
        return h.request(
            bad.method, path, headers=headers, params=bad.params, json=bad.json, content=content
        )


@pytest.mark.parametrize("bad", REST)
def test_bad_request_is_refused_and_changes_nothing(
    cluster: Cluster, running: str, bad: Bad
) -> None:
    with nothing_changes(cluster):
        r = call(cluster, bad, running)
    assert r.status_code == bad.status, (r.status_code, r.text[:2000])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body["detail"], str), body
    for needle in bad.needles:
        assert needle in body["detail"], (needle, body["detail"][:2000])
    if r.status_code == 422:
        assert body["errors"], body
    with cluster.client() as c:
        assert c.task(running).state == "running", "the running task was disturbed"


def test_env_value_of_20_mib_is_not_stored(cluster: Cluster) -> None:
    """A refused 20 MiB value leaves the task list as small as it was."""
    with httpx.Client(base_url=cluster.url, timeout=60) as h:
        auth = {"Authorization": f"Bearer {cluster.token}"}
        before = len(h.get("/api/v1/tasks", headers=auth).content)
        r = h.post(
            "/api/v1/tasks",
            headers=auth,
            json={"command": ["true"], "env": {"A": "x" * (20 * MiB)}},
        )
        after = len(h.get("/api/v1/tasks", headers=auth).content)
    assert r.status_code == 413, r.text
    assert after == before


# -- files: links inside the container that point out of it ----------------------------------


def test_links_out_of_the_container_stay_inside_it(
    cluster: Cluster, running: str, tmp_path: Path
) -> None:
    """A symlink in the container to a host directory (or to /proc) is followed inside
    the container's filesystem, never the host's: nothing is written on the host."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    [container] = cluster.containers(task=running)
    made = container.exec_run(
        ["sh", "-c", f"ln -s {outside} /tmp/escape && ln -s /proc/1/environ /tmp/environ"]
    )
    assert made.exit_code == 0, made.output
    with RemoteFiles(cluster.url, cluster.token) as files:
        with pytest.raises(KawaError) as exc:
            files.read(running, "/tmp/escape/secret")
        assert exc.value.status == 404, exc.value.message
        try:
            files.write(running, "/tmp/escape/pwned", b"pwned", parents=True)
        except KawaError as refused:
            assert refused.status in (400, 404, 409), refused.message
    assert sorted(p.name for p in outside.iterdir()) == ["secret"], "a file was written on the host"
    assert (outside / "secret").read_text() == "host secret"


# -- WebSocket stream sessions: bad frames close the session with a reason --------------------

HEADER = proto.HEADER


def frame(kind: int, stream: int, payload: bytes = b"", flags: int = 0) -> bytes:
    return HEADER.pack(kind, flags, stream) + payload


WS: list[Any] = [
    pytest.param("text frame", proto.CLOSE_UNSUPPORTED, "text messages are not frames", id="text"),
    pytest.param(
        b"\x02\x00\x00", proto.CLOSE_PROTOCOL, "shorter than the 6-byte header", id="short"
    ),
    pytest.param(frame(99, 1), proto.CLOSE_PROTOCOL, "unknown frame type 99", id="unknown-type"),
    pytest.param(frame(2, 1, b"x", flags=1), proto.CLOSE_PROTOCOL, "flags must be 0", id="flags"),
    pytest.param(frame(2, 0, b"x"), proto.CLOSE_PROTOCOL, "DATA on stream 0", id="data-on-session"),
    pytest.param(
        frame(9, 3), proto.CLOSE_PROTOCOL, "READY belongs on stream 0", id="ready-on-stream"
    ),
    pytest.param(
        frame(3, 1, b"x"), proto.CLOSE_PROTOCOL, "EOF carries no payload", id="eof-payload"
    ),
    pytest.param(
        frame(4, 1, b"xy"), proto.CLOSE_PROTOCOL, "CLOSE carries no payload", id="close-payload"
    ),
    pytest.param(
        frame(6, 1, b"\x00\x01"),
        proto.CLOSE_PROTOCOL,
        "WINDOW payload must be 4 bytes",
        id="window-size",
    ),
    pytest.param(
        frame(6, 1, b"\x00\x00\x00\x00"),
        proto.CLOSE_PROTOCOL,
        "WINDOW increment 0",
        id="window-zero",
    ),
    pytest.param(
        frame(6, 1, b"\xff\xff\xff\xff"),
        proto.CLOSE_PROTOCOL,
        "outside 1..2147483647",
        id="window-huge",
    ),
    pytest.param(
        frame(7, 1, b"\x00\x18"),
        proto.CLOSE_PROTOCOL,
        "RESIZE payload must be 4 bytes",
        id="resize-size",
    ),
    pytest.param(
        frame(7, 1, b"\x00\x00\x00\x50"),
        proto.CLOSE_PROTOCOL,
        "at least one row",
        id="resize-zero-rows",
    ),
    pytest.param(
        frame(8, 1, b"\x00" * 5),
        proto.CLOSE_PROTOCOL,
        "EXIT payload must be 4 bytes",
        id="exit-size",
    ),
    pytest.param(
        frame(2, 1, b"x" * (proto.MAX_PAYLOAD + 1)),
        proto.CLOSE_TOO_BIG,
        "exceeds the limit",
        id="oversize",
    ),
]


def session(cluster: Cluster, path: str, token: str | None = None) -> Any:
    url = cluster.url.replace("http://", "ws://") + "/api/v1" + path
    return ws_connect(
        url,
        subprotocols=[Subprotocol(proto.SUBPROTOCOL)],
        additional_headers={"Authorization": f"Bearer {token or cluster.token}"},
        max_size=None,
        open_timeout=30,
        close_timeout=10,
    )


def closed(ws: Any) -> tuple[int, str]:
    """Read until the server closes: its close code and reason."""
    deadline = time.monotonic() + 30
    with pytest.raises(ConnectionClosed) as exc:
        while time.monotonic() < deadline:
            ws.recv(timeout=deadline - time.monotonic())
    assert exc.value.rcvd is not None, "closed without a close frame"
    return exc.value.rcvd.code, exc.value.rcvd.reason


@pytest.mark.parametrize(("message", "code", "needle"), WS)
def test_bad_frame_closes_the_terminal_session(
    cluster: Cluster, running: str, message: bytes | str, code: int, needle: str
) -> None:
    with nothing_changes(cluster), session(cluster, f"/tasks/{running}/terminal") as ws:
        ready = proto.decode(ws.recv(timeout=30))
        assert ready.type is proto.FrameType.READY
        ws.send(message)
        got_code, reason = closed(ws)
    assert got_code == code, (got_code, reason)
    assert needle in reason, (needle, reason)
    with cluster.client() as c:
        assert c.task(running).state == "running"


OPEN_ERRORS = [
    pytest.param(b"{not json", "bad OPEN: parameters are not JSON", id="open-bad-json"),
    pytest.param(b"[1, 2]", "bad OPEN: parameters must be a JSON object", id="open-array"),
]


@pytest.mark.parametrize(("payload", "needle"), OPEN_ERRORS)
def test_bad_open_is_refused_on_its_stream_only(
    cluster: Cluster, running: str, payload: bytes, needle: str
) -> None:
    with nothing_changes(cluster), session(cluster, f"/tasks/{running}/forward") as ws:
        assert proto.decode(ws.recv(timeout=30)).type is proto.FrameType.READY
        ws.send(frame(proto.FrameType.OPEN, 1, payload))
        answer = proto.decode(ws.recv(timeout=30))
        assert (answer.type, answer.stream) == (proto.FrameType.ERROR, 1), answer
        assert needle in answer.message(), answer.message()
        ws.send(frame(proto.FrameType.DATA, 7, b"x"))  # a stream never opened
        answer = proto.decode(ws.recv(timeout=30))
        assert (answer.type, answer.stream) == (proto.FrameType.ERROR, 7), answer
        assert "unknown stream id 7" in answer.message()


REFUSED_SESSIONS = [
    pytest.param(
        "/tasks/9223372036854775808/terminal", None, 4404, "no task with id", id="id-beyond-64-bits"
    ),
    pytest.param(
        "/tasks/" + "9" * 3000 + "/forward", None, 4404, "no task with id", id="id-3000-digits"
    ),
    pytest.param("/tasks/12ab/terminal", None, 4400, "bad task id", id="id-text"),
    pytest.param(f"/tasks/{TASK}/terminal", "not-a-token", 4401, "", id="bad-token"),
]


@pytest.mark.parametrize(("path", "token", "code", "needle"), REFUSED_SESSIONS)
def test_bad_session_request_is_closed_with_a_reason(
    cluster: Cluster, running: str, path: str, token: str | None, code: int, needle: str
) -> None:
    with nothing_changes(cluster), session(cluster, path.replace(TASK, running), token) as ws:
        got_code, reason = closed(ws)
    assert got_code == code, (got_code, reason)
    assert needle in reason, (needle, reason)


def test_runner_report_for_an_id_beyond_64_bits_is_ignored(cluster: Cluster) -> None:
    """A runner may report ids the host never gave (none are its tasks): ignored, not a 500."""
    report = {"task_id": "9" * 25, "node": "node1", "state": "ended", "at": AT}
    with nothing_changes(cluster), httpx.Client(base_url=cluster.url, timeout=30) as h:
        r = h.post(
            "/api/v1/runner/report",
            json=report,
            headers={"Authorization": f"Bearer {cluster.secret}"},
        )
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True

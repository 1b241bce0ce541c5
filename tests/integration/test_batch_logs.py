"""A batch's logs in one answer (``GET /batches/{id}/logs``) from a real host and two real
runners: each started task's lines prefixed as ``kawa task logs --batch`` prints them,
tasks that have not started left out, and only the caller's own tasks."""

from __future__ import annotations

import httpx
import pytest

from kawa.client import KawaClient, KawaError
from kawa.core.task_states import FINAL_STATES
from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from kawa.protocol.tasks import TaskAction, TaskSpec, TaskView
from tests.integration.cluster import Cluster, eventually

API = "/api/v1"


def submitted(cluster: Cluster, spec: TaskSpec) -> list[TaskView]:
    with cluster.client() as c:
        return c.submit(spec).tasks


def finished(cluster: Cluster, tasks: list[TaskView]) -> list[TaskView]:
    with cluster.client() as c:
        return c.wait([t.id for t in tasks], timeout=120)


def batch_logs(cluster: Cluster, batch: str, stream: str = "stdout") -> str:
    with cluster.client() as c:
        return b"".join(c.batch_logs(batch, stream)).decode()


def test_each_tasks_lines_are_prefixed_with_its_target_in_submission_order(
    cluster: Cluster,
) -> None:
    script = (
        'echo "out of $KAWA_TASK_ID"; echo second; echo "err of $KAWA_TASK_ID" >&2; printf last'
    )
    tasks = submitted(cluster, TaskSpec(command=["sh", "-c", script], targets=["node1", "node2"]))
    first, second = sorted(finished(cluster, tasks), key=lambda t: int(t.id))
    assert (first.state, second.state) == ("completed", "completed")
    assert (first.node, second.node) == ("node1", "node2")
    assert batch_logs(cluster, first.batch_id).splitlines() == [
        f"[node1] out of {first.id}", "[node1] second", "[node1] last",
        f"[node2] out of {second.id}", "[node2] second", "[node2] last",
    ]  # fmt: skip
    assert batch_logs(cluster, first.batch_id, "stderr") == (
        f"[node1] err of {first.id}\n[node2] err of {second.id}\n"
    )
    # the CLI prints the same lines: the host prefixes them for both
    cli = cluster.cli("task", "logs", "--batch", first.batch_id)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout == batch_logs(cluster, first.batch_id)


def test_a_sweeps_tasks_are_labelled_by_their_values(cluster: Cluster) -> None:
    spec = TaskSpec(command=["echo", "span:{1..3}", "span:[a,b]"], sweep=True)
    tasks = finished(cluster, submitted(cluster, spec))
    assert {t.state for t in tasks} == {"completed"}
    node = {t.env["KAWA_SWEEP_ARGS"]: t.node for t in tasks}  # wherever each ran
    expected = [f"[{node[f'{n} {x}']} {n} {x}] {n} {x}" for n in "123" for x in "ab"]
    assert batch_logs(cluster, tasks[0].batch_id).splitlines() == expected


def test_tasks_that_have_not_started_are_left_out_and_the_cli_notes_them(
    cluster: Cluster,
) -> None:
    spec = TaskSpec(
        command=["sh", "-c", 'echo "started $0"; sleep 120', "span:[x,y]"],
        sweep=True,
        max_parallel=1,
    )
    tasks = submitted(cluster, spec)
    batch = tasks[0].batch_id
    try:
        text = eventually(lambda: batch_logs(cluster, batch) or None, 90, "the first task's output")
        with cluster.client() as c:
            node = c.task(tasks[0].id).node
            assert c.task(tasks[1].id).state == "pending"
        assert text == f"[{node} x] started x\n"
        cli = cluster.cli("task", "logs", "--batch", batch)
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout == f"[{node} x] started x\n"
        assert "[y] pending: no output yet" in cli.stderr
    finally:
        with cluster.client() as c:
            for t in tasks:
                if c.task(t.id).state not in FINAL_STATES:
                    c.act(t.id, TaskAction.KILL)
            c.wait([t.id for t in tasks], timeout=60)


def test_another_users_batch_is_not_found_and_bad_input_is_refused(cluster: Cluster) -> None:
    [task] = finished(cluster, submitted(cluster, TaskSpec(command=["echo", "admin's"])))
    sessions = prepare_database(cluster.host_config())
    try:
        bob = Authenticator(sessions, cluster.secret).create_token("bob", "user")
    finally:
        sessions.kw["bind"].dispose()
    with KawaClient(cluster.url, bob) as c:
        with pytest.raises(KawaError, match=f"no tasks in batch {task.batch_id}"):
            b"".join(c.batch_logs(task.batch_id))
        [own] = c.submit(TaskSpec(command=["echo", "bob's"])).tasks
        c.wait([own.id], timeout=120)
        ran_on = c.task(own.id).node
        assert b"".join(c.batch_logs(own.batch_id)) == f"[{ran_on} {own.id}] bob's\n".encode()

    def get(path: str, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {cluster.token}"}
        return httpx.get(cluster.url + API + path, params=params, headers=headers, timeout=30)

    logs = f"/batches/{task.batch_id}/logs"
    r = get(logs, stream="stdin")
    assert r.status_code == 400 and "unknown stream 'stdin'" in r.json()["detail"], r.text
    r = get(logs, stream="STDOUT")
    assert r.status_code == 422 and "stream" in r.text, r.text
    for bad in ("-1", "abc", "9" * 20):
        r = get(f"/batches/{bad}/logs")
        assert r.status_code == 422 and "batch_id" in r.text, (bad, r.text)
    r = get("/batches/12345/logs")
    assert r.status_code == 404 and r.json()["detail"] == "no tasks in batch 12345", r.text
    assert get(logs).content == f"[{task.node} {task.id}] admin's\n".encode()

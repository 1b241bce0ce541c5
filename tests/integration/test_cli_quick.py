"""The quick path of ``kawa run`` and ``kawa task submit`` (standard library only)
against the full CLI, on a real host and runners in Docker: the same output, errors and
exit codes for plain command lines, refusals, bad input and an unreachable host; the
quick path imports none of the heavy libraries; and the long-poll route it uses."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx
import pytest

from kawa.protocol.tasks import TaskAction, TaskSpec
from tests.integration.cluster import KAWA, Cluster, eventually, free_port

FULL = [
    sys.executable,
    "-c",
    "import sys, kawa.cli.quick_tasks as q\n"
    "q.fast_path = lambda argv: None\n"
    "sys.argv[0] = 'kawa'\n"
    "from kawa.cli.main import run\n"
    "run()",
]
"""The CLI with its quick path turned off."""
HEAVY = ("typer", "click", "rich", "httpx", "pydantic", "websockets", "http", "email", "ssl")
HEAVY_TOO = ("tomllib", "typing")  # cheap alone, but a tenth of what the quick path may spend
Outcome = tuple[int, bytes, bytes]
_ID = re.compile(rb"\b[0-9]{12,20}\b")


def _both(cluster: Cluster, *args: str, url: str | None = None) -> tuple[Outcome, Outcome]:
    env = cluster._env(
        KAWA_CLIENT_URL=url or cluster.url, KAWA_CLIENT_TOKEN=cluster.token, COLUMNS="200"
    )
    results = []
    for cmd in (KAWA, FULL):
        done = subprocess.run([*cmd, *args], env=env, capture_output=True, timeout=120)
        results.append(
            (done.returncode, _ID.sub(b"ID", done.stdout), _ID.sub(b"ID", done.stderr))
        )
    return results[0], results[1]


def _count(cluster: Cluster) -> int:
    with cluster.client() as c:
        return c.task_counts().total


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--target", "node1", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
        ["run", "--cores", "1", "--memory=64M", "-e", "A=1", "--env", "B=2", "--name", "q",
         "--target", "node1", "--", "sh", "-c", "echo $A$B"],
        ["run", "--detach", "--", "true"],
        ["task", "submit", "--", "echo", "hi"],
        ["task", "submit", "-t", "node2", "--wait", "--", "sh", "-c", "exit 4"],
        ["task", "submit", "-t", "node1", "--wait", "--timeout", "1s", "--", "sleep", "30"],
        ["run", "--target", "node2", "--timeout", "1s", "--", "sleep", "30"],
    ],
    ids=["run-fails", "run-options", "detach", "submit", "submit-wait", "wait-timeout", "timeout"],
)
def test_plain_lines_print_the_same_as_the_full_cli(cluster: Cluster, args: list[str]) -> None:
    """(Lines that print a node name pin their target: placement may differ per run.)"""
    quick, full = _both(cluster, *args)
    assert quick == full


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--memory", "zz", "--", "true"],
        ["run", "--cores", "0", "--", "true"],
        ["run", "--target", "nosuchnode", "--", "true"],
        ["task", "submit", "--wait", "--container", "no-such-env", "--", "true"],
        ["run", "--cores", "x", "--", "true"],
        ["run", "--env", "NOEQUALS", "--", "true"],
        ["run", "--"],
        ["run", "echo", "hi"],
    ],
    ids=["memory", "cores", "target", "container", "not-int", "env", "no-command", "no-dashes"],
)
def test_bad_input_gets_the_full_cli_s_answer_and_stores_nothing(
    cluster: Cluster, args: list[str]
) -> None:
    before = _count(cluster)
    quick, full = _both(cluster, *args)
    assert quick == full
    assert quick[0] != 0 and quick[2].startswith(b"error: "), quick
    assert _count(cluster) == before


def test_logs_print_the_same_as_the_full_cli(cluster: Cluster) -> None:
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["sh", "-c", "printf 'a\\tb\\033[0m'; echo e >&2"])).tasks
        c.wait([t.id], timeout=60)
    for args in (["-f"], ["--stderr"], [], ["--stderr", "-f"]):
        quick, full = _both(cluster, "task", "logs", *args, t.id)
        assert quick == full and quick[0] == 0, (args, quick, full)
    assert _both(cluster, "task", "logs", t.id)[0][1] == b"a\tb\033[0m"
    for bad in (["999999999999"], ["x1"], [t.id, "--batch", "1"]):
        quick, full = _both(cluster, "task", "logs", *bad)
        assert quick == full and quick[0] != 0, (bad, quick)


def test_listings_and_status_as_json_or_ids_print_the_same(cluster: Cluster) -> None:
    with cluster.client() as c:
        made = c.submit(TaskSpec(command=["true"], targets=["node1"] * 3, name="héllo")).tasks
        c.wait([t.id for t in made], timeout=60)
    newest = max((t.id for t in made), key=int)
    lines = [
        ["task", "list", "-o", "ids"],
        ["task", "list", "--json", "--limit", "2"],
        ["task", "list", "-o", "json", "-s", "completed", "--node", "node1", "--limit=1"],
        ["task", "list", "--output=ids", "--before", newest, "--limit", "2"],
        ["task", "status", newest, "--json"],
        ["task", "status", "--json", "999999999999"],
        ["task", "list", "-o", "ids", "--status", "nosuchstate"],
        ["task", "list", "-o", "ids", "--limit", "0"],
    ]
    for args in lines:
        quick, full = _both(cluster, *args)
        assert quick == full, (args, quick[2], full[2])
    out, heavy = _heavy_imports(cluster, "task", "status", newest, "--json")
    assert b'"name": "h\\u00e9llo"' in out and not heavy, (out[:300], heavy)
    out, heavy = _heavy_imports(cluster, "task", "list", "-o", "ids", "--limit", "1")
    assert out == f"{newest}\n".encode() or int(out) > int(newest)
    assert not heavy, heavy


def test_an_unreachable_host_is_said_the_same_way(cluster: Cluster) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    quick, full = _both(cluster, "run", "--", "true", url=url)
    assert quick == full
    assert quick[0] == 1 and b"cannot reach the Kawa host" in quick[2], quick


def _heavy_imports(cluster: Cluster, *args: str) -> tuple[bytes, list[str]]:
    """The standard output of ``kawa ARGS`` and the heavy modules it imported, with the
    client configured by a file as ``kawa up`` writes it."""
    config = cluster.config_file.with_name("quick-client.toml")
    config.write_text(f'[client]\nurl = "{cluster.url}"\ntoken = "{cluster.token}"\n')
    env = cluster._env(KAWA_CONFIG=str(config))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kawa.cli.main", *args],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {
        line.rsplit(b"|", 1)[-1].strip().decode()
        for line in done.stderr.splitlines()
        if line.startswith(b"import time:")
    }
    assert "kawa.cli.quick_tasks" in imported, "import log not captured"
    return done.stdout, sorted(m for m in imported if m.split(".")[0] in HEAVY + HEAVY_TOO)


@pytest.mark.parametrize(
    ("args", "printed"),
    [
        (["run", "--", "echo", "hi"], b"hi\n"),
        (["task", "submit", "--wait", "--", "echo", "hi"], b": completed (exit code 0)\n"),
    ],
)
def test_the_quick_path_imports_no_heavy_library(
    cluster: Cluster, args: list[str], printed: bytes
) -> None:
    out, heavy = _heavy_imports(cluster, *args)
    assert out.endswith(printed), out
    assert not heavy, heavy
    task_id = out.split()[0].decode() if args[0] == "task" else None
    if task_id is not None:
        assert _heavy_imports(cluster, "task", "logs", task_id) == (b"hi\n", [])


def _wait(cluster: Cluster, task_id: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{cluster.url}/api/v1/tasks/{task_id}/wait",
        params=params,
        headers={"Authorization": f"Bearer {cluster.token}"},
        timeout=30,
    )


def test_the_long_poll_answers_at_its_deadline_or_at_the_change(cluster: Cluster) -> None:
    with cluster.client() as c:
        [blocker] = c.submit(TaskSpec(command=["sleep", "300"], targets=["node1"], cores=2)).tasks
        eventually(lambda: c.task(blocker.id).state == "running", what="blocker running")
        [queued] = c.submit(TaskSpec(command=["echo", "hi"], targets=["node1"])).tasks
        t0 = time.monotonic()
        answer = _wait(cluster, queued.id, until="started", timeout="0.5")
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "pending"
        assert time.monotonic() - t0 >= 0.45  # the host waited its 0.5 s (timer resolution)
        c.act(blocker.id, TaskAction.KILL)
        answer = _wait(cluster, queued.id, until="done", timeout="60")
        assert answer.json()["state"] == "completed", answer.json()
        assert answer.json()["exit_code"] == 0
        for params in ({"until": "soon"}, {"timeout": "301"}, {"timeout": "-1"}):
            assert _wait(cluster, queued.id, **params).status_code == 422, params
        assert _wait(cluster, "999999999999", timeout="1").status_code == 404

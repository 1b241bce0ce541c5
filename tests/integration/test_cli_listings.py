"""Listings as a user sees them: they fit COLUMNS=80 without wrapped rows, ``-o``
formats (``-o ids`` into ``xargs kawa task kill``), and ``task list --watch``
updating in place on a pseudo-terminal."""

from __future__ import annotations

import json
import subprocess

import pexpect
import pytest

from kawa.protocol.tasks import TaskSpec
from tests.integration.cluster import KAWA, Cluster, eventually


def kawa(cluster: Cluster, *args: str, columns: str = "80") -> subprocess.CompletedProcess[str]:
    return cluster.cli(*args, extra_env={"COLUMNS": columns})


@pytest.fixture(scope="module")
def sleepers(cluster: Cluster) -> list[str]:
    long = "x" * 150
    with cluster.client() as c:
        result = c.submit(
            TaskSpec(
                command=["sh", "-c", f"sleep 300 # {long}"],
                targets=["node1", "node2"],
                name="a-rather-long-task-name-" + "y" * 40,
            )
        )
        ids = [t.id for t in result.tasks]
        eventually(lambda: all(c.task(i).state == "running" for i in ids), what="sleepers")
    return ids


@pytest.mark.parametrize(
    "listing",
    [
        ["task", "list"],
        ["node", "list"],
        ["vps", "list", "--all"],
        ["container", "list"],
        ["container", "tarballs"],
    ],
)
def test_listings_fit_80_columns_without_wrapped_rows(
    cluster: Cluster, sleepers: list[str], listing: list[str]
) -> None:
    table = kawa(cluster, *listing)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.rstrip("\n").split("\n")
    assert all(len(line) <= 80 for line in lines), lines
    data = json.loads(kawa(cluster, *listing, "-o", "json").stdout)
    if data:
        assert len(lines) == 1 + len(data), lines  # one line per item: nothing wrapped


def test_task_list_cuts_with_an_ellipsis_and_wide_keeps_everything(
    cluster: Cluster, sleepers: list[str]
) -> None:
    narrow = kawa(cluster, "task", "list").stdout
    row = next(line for line in narrow.splitlines() if line.startswith(sleepers[0]))
    assert "…" in row and "ago" in row
    wide = kawa(cluster, "task", "list", "-o", "wide").stdout
    row = next(line for line in wide.splitlines() if line.startswith(sleepers[0]))
    assert "x" * 150 in row and "…" not in row


def test_ids_pipe_into_xargs_kill(cluster: Cluster, sleepers: list[str]) -> None:
    ids = kawa(cluster, "task", "list", "--status", "running", "-o", "ids").stdout.split()
    assert set(sleepers) <= set(ids)
    env = cluster._env(KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=cluster.token)
    cli = " ".join(KAWA)
    pipeline = f"{cli} task list -s running -o ids | xargs -n1 {cli} task kill"
    done = subprocess.run(["sh", "-c", pipeline], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with cluster.client() as c:
        final = c.wait(sleepers, timeout=60)
    assert [t.state for t in final] == ["killed", "killed"]


def test_a_bad_output_format_is_a_usage_error(cluster: Cluster) -> None:
    done = kawa(cluster, "task", "list", "-o", "yaml")
    assert done.returncode == 2 and "use one of wide, json, ids" in done.stderr


def test_watch_shows_a_task_appear_and_end(cluster: Cluster) -> None:
    env = cluster._env(KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=cluster.token)
    child = pexpect.spawn(
        KAWA[0], [*KAWA[1:], "task", "list", "--watch", "--limit", "5"],
        env=env, dimensions=(24, 100), timeout=60, encoding="utf-8",
    )  # fmt: skip
    try:
        child.expect_exact("COMMAND")
        with cluster.client() as c:
            [t] = c.submit(TaskSpec(command=["sh", "-c", "sleep 2; echo watched-task"])).tasks
        child.expect(rf"{t.id}\s+\S*\s*running")
        child.expect(rf"{t.id}\s+\S*\s*completed")
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


def test_task_list_pages_back_with_before(cluster: Cluster) -> None:
    with cluster.client() as c:
        submitted = c.submit(
            TaskSpec(command=["true"], targets=["node1"] * 5, name="paged")
        ).tasks
    newest_first = sorted((t.id for t in submitted), key=int, reverse=True)
    first = kawa(cluster, "task", "list", "--limit", "2", "-o", "ids")
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == newest_first[:2]
    hint = f"older tasks: kawa task list --limit 2 --before {newest_first[1]}"
    assert first.stderr.strip() == hint
    second = kawa(cluster, "task", "list", "--limit", "2", "--before", newest_first[1], "-o", "ids")
    assert second.stdout.split() == newest_first[2:4]
    every = kawa(cluster, "task", "list", "--limit", "10000", "-o", "ids")
    assert every.stderr == "" and set(newest_first) <= set(every.stdout.split())
    bad = kawa(cluster, "task", "list", "--before", "x")
    assert bad.returncode == 2 and "--before" in bad.stderr

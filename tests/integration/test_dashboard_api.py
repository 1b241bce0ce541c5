"""The API a dashboard reads, against a real host and runners: who the caller is, how to
connect, node history from heartbeats, scheduler dry-runs, event replay, task filters and
counts, and SSH key pairs made by the host."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from kawa import __version__
from kawa.client import KawaClient, KawaError
from kawa.client.async_client import AsyncKawaClient
from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from kawa.protocol.events import Event
from kawa.protocol.meta import SshGateway, WhoAmI
from kawa.protocol.task_queries import DryRunTask
from kawa.protocol.tasks import TaskAction, TaskSpec, check_public_key
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster, eventually, free_port, when
from tests.integration.test_vps import GatewayCluster

API = "/api/v1"
A100 = Path(__file__).parents[1] / "data" / "gpus" / "a100-80gb-x4.json"
ADMIN, ALICE, VIEWER, BOB = "admin", "alice", "alice (viewer)", "bob"

_NO_KEYGEN = shutil.which("ssh-keygen") is None
if _NO_KEYGEN and os.environ.get("CI") == "true":  # CI must check the keys: fail, never skip
    raise RuntimeError("ssh-keygen is missing (scripts/bootstrap.sh installs OpenSSH)")


@dataclass
class Dash:
    cluster: GatewayCluster
    tokens: dict[str, str]

    def client(self, who: str = ADMIN) -> KawaClient:
        return KawaClient(self.cluster.url, self.tokens[who], timeout=60)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture(scope="module")
def dash(docker_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    """A host with its SSH gateway on a port of its own, node1 (2 cores, four recorded
    A100s) and node2 (2 cores); alice (user and viewer tokens), bob, and the admin."""
    root = Path(tmp_path_factory.mktemp("dashboard"))
    cluster = GatewayCluster(root / "c", BASE_IMAGE, ssh_port=free_port())
    try:
        cluster.root.mkdir()
        cluster.start_host()
        cluster.add_runner("node1", cores=2, gpu_inventory=A100)
        cluster.add_runner("node2", cores=2)
        sessions = prepare_database(cluster.host_config())
        try:
            auth = Authenticator(sessions, cluster.secret)
            tokens = {
                ADMIN: cluster.token,
                ALICE: auth.create_token("alice", "user"),
                VIEWER: auth.create_token("alice", "viewer"),
                BOB: auth.create_token("bob", "user"),
            }
        finally:
            sessions.kw["bind"].dispose()
        yield Dash(cluster, tokens)
    finally:
        cluster.close()


def run_to_end(c: KawaClient, spec: TaskSpec) -> str:
    [t] = c.submit(spec).tasks
    [done] = c.wait([t.id], timeout=120)
    assert done.state.value == "completed", done
    return t.id


# -- who am I, and how to connect ------------------------------------------------------------


def test_whoami_names_the_tokens_user_and_role(dash: Dash) -> None:
    expected = {
        ADMIN: WhoAmI(name="admin", role="admin"),
        ALICE: WhoAmI(name="alice", role="user"),
        VIEWER: WhoAmI(name="alice", role="viewer"),
    }
    for who, me in expected.items():
        with dash.client(who) as c:
            assert c.whoami() == me
    r = httpx.get(f"{dash.cluster.url}{API}/whoami", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "invalid token" in r.json()["detail"]


def test_info_says_how_to_connect(dash: Dash) -> None:
    with dash.client(VIEWER) as c:
        info = c.info()
    assert info.version == __version__
    assert info.cluster_id == dash.cluster.cluster_id
    assert info.api_url == dash.cluster.url
    assert info.tls is False
    assert info.ssh_gateway == SshGateway(host="127.0.0.1", port=dash.cluster.ssh_port)
    # the address is the gateway's: it answers with an SSH banner
    with socket.create_connection((info.ssh_gateway.host, info.ssh_gateway.port), 30) as s:
        s.settimeout(30)
        assert s.recv(64).startswith(b"SSH-2.0-")
    r = httpx.get(f"{dash.cluster.url}{API}/info")
    assert r.status_code == 401


def test_info_has_no_gateway_when_it_is_off(docker_available: None, tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, BASE_IMAGE, gateway_port=0)
    try:
        cluster.start_host()
        with cluster.client() as c:
            info = c.info()
        assert info.ssh_gateway is None and info.api_url == cluster.url
    finally:
        cluster.close()


# -- node history ----------------------------------------------------------------------------


def test_history_gathers_heartbeats_per_node_and_gpu(dash: Dash) -> None:
    with dash.client(VIEWER) as c:
        hour = eventually(
            lambda: when(h := c.node_history("node1"), len(h.points) >= 3), 60, "3 heartbeats"
        )
        day = c.node_history("node1", "24h")
        plain = c.node_history("node2")
    assert hour.node == "node1" and hour.resolution_s == 0.5
    times = [p.t for p in hour.points]
    assert times == sorted(times) and abs(times[-1] - time.time()) < 30
    last = hour.points[-1]
    assert last.cpu_percent >= 0 and 0 < last.memory_used <= last.memory_total
    assert [g.index for g in last.gpus] == [0, 1, 2, 3]
    gpu = last.gpus[1]  # as recorded in a100-80gb-x4.json
    assert (gpu.util, gpu.memory_used, gpu.memory_total) == (55.0, 42949672960, 85899345920)
    assert (gpu.temperature, gpu.power_w) == (54.0, 212.3)
    assert day.resolution_s == 60.0 and 1 <= len(day.points) <= 3
    assert day.points[-1].gpus[1].util == 55.0
    assert all(p.gpus == [] for p in plain.points) and plain.points


def test_history_of_an_unknown_node_or_window_is_refused(dash: Dash) -> None:
    url = f"{dash.cluster.url}{API}/nodes"
    r = httpx.get(f"{url}/ghost/history", headers=dash.headers(ADMIN))
    assert r.status_code == 404 and "ghost" in r.json()["detail"], r.text
    r = httpx.get(f"{url}/node1/history", params={"window": "7d"}, headers=dash.headers(ADMIN))
    assert r.status_code == 422 and "window" in r.json()["detail"], r.text


# -- scheduler dry-run -----------------------------------------------------------------------


def test_dry_run_says_where_tasks_would_start_and_stores_nothing(dash: Dash) -> None:
    with dash.client(ALICE) as c:
        listed = [t.id for t in c.tasks(limit=10_000)]
        fits = c.dry_run(TaskSpec(command=["true"], targets=["node2"]))
        assert fits.tasks == [
            DryRunTask(target="node2", node="node2", starts_now=True, message="starts now on node2")
        ]
        assert [t.id for t in c.tasks(limit=10_000)] == listed, "a dry run stored a task"
        [busy] = c.submit(TaskSpec(command=["sleep", "600"], targets=["node1"], cores=2)).tasks
        try:
            eventually(lambda: c.task(busy.id).state.value == "running", 60, "node1 busy")
            waits = c.dry_run(TaskSpec(command=["true"], targets=["node1"], cores=2))
            assert waits.tasks == [
                DryRunTask(
                    target="node1",
                    node="node1",
                    starts_now=False,
                    message="waits: needs 2 cores, 0 free on node1",
                )
            ]
            auto = c.dry_run(TaskSpec(command=["true"], cores=2))
            assert auto.tasks == [
                DryRunTask(
                    target=None, node="node2", starts_now=True, message="starts now on node2"
                )
            ]
            batch = c.dry_run(TaskSpec(command=["true"], targets=["node1", "node2"], cores=2))
            assert [(t.target, t.starts_now) for t in batch.tasks] == [
                ("node1", False),
                ("node2", True),
            ]
            capped = c.dry_run(
                TaskSpec(command=["true"], targets=["node2", "node2"], max_parallel=1)
            )
            assert [t.message for t in capped.tasks] == [
                "starts now on node2",
                "waits: its batch runs at most 1 at once",
            ]
        finally:
            c.act(busy.id, TaskAction.KILL)
            c.wait([busy.id], timeout=60)
        assert [t.id for t in c.tasks(limit=10_000)] == [busy.id, *listed]


@pytest.mark.parametrize(
    "spec, needle",
    [
        (TaskSpec(command=["true"], cores=99), "no node has 99 cores"),
        (TaskSpec(command=["true"], targets=["ghost"]), "unknown node 'ghost'"),
        (TaskSpec(command=["true"], container="nope"), "unknown container environment"),
    ],
)
def test_dry_run_refuses_what_submit_refuses(dash: Dash, spec: TaskSpec, needle: str) -> None:
    with dash.client(ALICE) as c:
        with pytest.raises(KawaError) as submitted:
            c.submit(spec)
        with pytest.raises(KawaError) as dry:
            c.dry_run(spec)
    assert (dry.value.status, dry.value.message) == (
        submitted.value.status,
        submitted.value.message,
    )
    assert dry.value.status == 400 and needle in dry.value.message


def test_dry_run_is_refused_to_a_viewer(dash: Dash) -> None:
    with dash.client(VIEWER) as c, pytest.raises(KawaError) as refused:
        c.dry_run(TaskSpec(command=["true"]))
    assert refused.value.status == 403


# -- event replay ----------------------------------------------------------------------------


def test_events_after_a_known_number_are_replayed(dash: Dash) -> None:
    with dash.client(ALICE) as c:
        live = c.events(timeout=60)
        hello = next(live)
        assert hello.type == "hello"
        [t] = c.submit(TaskSpec(command=["true"], targets=["node2"])).tasks
        seen: list[Event] = []
        for event in live:
            seen.append(event)
            if event.task and event.task.id == t.id and event.task.state.value == "completed":
                break
        live.close()
        assert len(seen) >= 3 and all(e.seq > hello.seq for e in seen)
        replay = c.events(after=seen[0].seq, timeout=60)
        again = next(replay)
        assert again.type == "hello" and again.seq >= seen[-1].seq
        got = [next(replay) for _ in seen[1:]]
        replay.close()
    assert [(e.seq, e.type, e.task) for e in got] == [(e.seq, e.type, e.task) for e in seen[1:]]


def test_replay_shows_only_the_callers_tasks(dash: Dash) -> None:
    with dash.client(ALICE) as alice:
        with contextlib.closing(alice.events(timeout=60)) as stream:
            start = next(stream).seq  # hello: the current number
        alices = run_to_end(alice, TaskSpec(command=["true"], targets=["node2"]))
    with dash.client(BOB) as bob:
        bobs = run_to_end(bob, TaskSpec(command=["true"], targets=["node2"]))
        ids: set[str] = set()
        with contextlib.closing(bob.events(after=start, timeout=60)) as events:
            for event in events:
                if event.task is not None:
                    ids.add(event.task.id)
                    if event.task.id == bobs and event.task.state.value == "completed":
                        break
    assert bobs in ids and alices not in ids, ids


def test_a_number_too_old_gets_a_reset(dash: Dash) -> None:
    with dash.client(ALICE) as c:
        stream = c.events(after=1, timeout=60)
        hello, reset = next(stream), next(stream)
        stream.close()
    assert reset.type == "reset" and reset.seq == hello.seq
    assert reset.task is None and reset.node is None


def test_a_malformed_after_is_refused(dash: Dash) -> None:
    url = dash.cluster.url.replace("http://", "ws://") + f"{API}/events?after=12abc"
    headers = dash.headers(ALICE)
    with pytest.raises(InvalidStatus) as refused, connect(url, additional_headers=headers):
        pass
    assert refused.value.response.status_code == 422
    assert b"sequence number" in refused.value.response.body


# -- task filters and counts -----------------------------------------------------------------


def test_task_filters_page_and_count(dash: Dash) -> None:
    with dash.client(ALICE) as alice, dash.client(BOB) as bob, dash.client(ADMIN) as admin:
        alpha = run_to_end(alice, TaskSpec(command=["true"], name="dash-alpha", targets=["node2"]))
        needle = run_to_end(alice, TaskSpec(command=["echo", "Needle_42%"], targets=["node1"]))
        bobs = run_to_end(bob, TaskSpec(command=["true"], name="dash-alpha", targets=["node2"]))

        assert [t.id for t in alice.tasks(q="dash-ALPHA")] == [alpha]  # any case, own only
        assert [t.id for t in admin.tasks(q="dash-alpha")] == [bobs, alpha]
        assert [t.id for t in alice.tasks(q="needle_42%")] == [needle]  # command, literally
        assert alice.tasks(q="needle%42") == []  # % and _ are not wildcards
        assert alice.tasks(owner="bob") == []  # others' tasks stay hidden
        of_bob = admin.tasks(owner="bob")
        assert of_bob[0].id == bobs and {t.owner for t in of_bob} == {"bob"}
        on_node1 = {t.id for t in alice.tasks(node="node1", limit=10_000)}
        assert needle in on_node1 and alpha not in on_node1

        everything = [t.id for t in alice.tasks(limit=10_000)]
        assert everything == sorted(everything, key=int, reverse=True)
        paged: list[str] = []
        cursor: str | None = None
        for _ in range(len(everything) + 1):  # bounded: one page per task, and one more
            page = alice.tasks(limit=2, before=cursor)
            if not page:
                break
            paged += [t.id for t in page]
            cursor = page[-1].id
        assert paged == everything

        mine = alice.task_counts()
        states = Counter(t.state.value for t in alice.tasks(limit=10_000))
        assert mine.by_state == dict(states) and mine.total == len(everything)
        with dash.client(VIEWER) as viewer:  # the same user: the same tasks
            assert viewer.task_counts() == mine
        every = admin.task_counts()
        assert every.total == len(admin.tasks(limit=10_000)) > mine.total


def test_task_filters_refuse_bad_values(dash: Dash) -> None:
    url, headers = f"{dash.cluster.url}{API}/tasks", dash.headers(ALICE)
    for params, needle in (
        ({"before": "-1"}, "before"),
        ({"before": "9" * 20}, "before"),
        ({"owner": "o" * 65}, "owner"),
        ({"q": "a\x00b"}, "NUL"),
    ):
        r = httpx.get(url, params=params, headers=headers)
        assert r.status_code == 422 and needle in r.json()["detail"], (params, r.text)


# -- SSH key pairs ---------------------------------------------------------------------------


@pytest.mark.skipif(_NO_KEYGEN, reason="ssh-keygen is not installed")
def test_new_ssh_key_pair_is_a_working_openssh_pair(dash: Dash, tmp_path: Path) -> None:
    url = f"{dash.cluster.url}{API}/ssh-keys"
    r = httpx.post(url, headers=dash.headers(ALICE))
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store", r.headers
    pair = r.json()
    assert pair["public_key"].startswith("ssh-ed25519 ")
    assert pair["private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert check_public_key(pair["public_key"]) == pair["public_key"]  # a VPS takes it
    key = tmp_path / "id"
    key.touch(mode=0o600)
    key.write_text(pair["private_key"])
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True
    )
    assert derived.stdout.strip() == pair["public_key"]
    with dash.client(ADMIN) as c:
        assert c.new_ssh_key().public_key != pair["public_key"]
    body = pair["private_key"].splitlines()[1]
    logs = b"".join(p.read_bytes() for p in dash.cluster.root.glob("*.log"))
    assert body.encode() not in logs, "a private key was logged"
    r = httpx.post(url, headers=dash.headers(VIEWER))
    assert r.status_code == 403 and "viewer" in r.json()["detail"]


# -- the async client ------------------------------------------------------------------------


async def test_the_async_client_reads_the_same(dash: Dash) -> None:
    with dash.client(ALICE) as sync:
        counts, me = sync.task_counts(), sync.whoami()
    async with AsyncKawaClient(dash.cluster.url, dash.tokens[ALICE]) as c:
        assert await c.whoami() == me
        assert (await c.info()).cluster_id == dash.cluster.cluster_id
        assert await c.task_counts() == counts
        assert (await c.node_history("node1", "24h")).resolution_s == 60.0
        [would] = (await c.dry_run(TaskSpec(command=["true"], targets=["node2"]))).tasks
        assert would.starts_now and would.node == "node2"
        assert len(await c.tasks(limit=1, before=str(2**62))) == 1
        pair = await c.new_ssh_key()
        assert pair.public_key.startswith("ssh-ed25519 ")
        stream = c.events(after=1)
        hello, reset = await anext(stream), await anext(stream)
        await stream.aclose()
        assert (hello.type, reset.type, reset.seq) == ("hello", "reset", hello.seq)


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_node_history(dash: Dash) -> None:
    cli = dash.cluster.cli
    r = cli("node", "history", "node1")
    assert r.returncode == 0, r.stderr
    assert "node1:" in r.stdout and "one per 0.5s" in r.stdout, r.stdout
    for row in ("cpu", "memory", "gpu 1 util", "gpu 3 power"):
        assert row in r.stdout, (row, r.stdout)
    r = cli("node", "history", "node1", "--window", "24h", "--json")
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    assert found["node"] == "node1" and found["resolution_s"] == 60.0 and found["points"]
    r = cli("node", "history", "node1", "--window", "7d")
    assert r.returncode == 2 and "1h or 24h" in r.stderr, r.stderr
    r = cli("node", "history", "ghost")
    assert r.returncode == 1 and "ghost" in r.stderr, r.stderr


def test_cli_submit_dry_run_prints_and_stores_nothing(dash: Dash) -> None:
    with dash.client(ADMIN) as c:
        before = [t.id for t in c.tasks(limit=10_000)]
        r = dash.cluster.cli("task", "submit", "--dry-run", "-t", "node2", "--", "true")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "node2: starts now on node2\n"
        r = dash.cluster.cli("task", "submit", "--dry-run", "--json", "--cores", "2", "--", "true")
        assert r.returncode == 0, r.stderr
        [entry] = json.loads(r.stdout)["tasks"]
        assert entry["starts_now"] is True and entry["target"] is None
        assert [t.id for t in c.tasks(limit=10_000)] == before

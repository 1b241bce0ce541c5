"""Joining nodes: join tokens, ``kawa join``, reach-back at registration, removal.

Everything runs on 127.0.0.1 here; tests/netns/ repeats the joins across network
namespaces, where the host and the runners have addresses of their own.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kawa.client import KawaClient
from kawa.client.errors import KawaError
from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from kawa.protocol.join import PROTOCOL_VERSION, JoinRequest, JoinTokenCreate
from kawa.protocol.tasks import TaskSpec
from tests.integration.cluster import KAWA, Cluster, eventually, free_port, when

API = "/api/v1"


def closed_port() -> int:
    return free_port()  # nothing listens on a port just freed


def plain_env() -> dict[str, str]:
    """No KAWA_* settings; wide lines (messages are not wrapped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAWA_")}
    env["COLUMNS"] = "300"
    return env


def registration(name: str, url: str) -> dict[str, Any]:
    return {
        "name": name,
        "url": url,
        "inventory": {"cores": 1, "memory": 1_000_000_000},
        "protocol_version": PROTOCOL_VERSION,
    }


def runner_http(cluster: Cluster) -> httpx.Client:
    headers = {"Authorization": f"Bearer {cluster.secret}"}
    return httpx.Client(base_url=cluster.url + API, headers=headers, timeout=30)


def make_token(cluster: Cluster, **spec: Any) -> tuple[int, str]:
    with cluster.client() as c:
        made = c.create_join_token(JoinTokenCreate(**spec))
    return made.view.id, made.token


def trade(cluster: Cluster, token: str, name: str = "new", protocol: int = PROTOCOL_VERSION):  # type: ignore[no-untyped-def]
    with KawaClient(cluster.url, "") as c:
        return c.join(JoinRequest(token=token, name=name, protocol_version=protocol))


def refused(cluster: Cluster, token: str, protocol: int = PROTOCOL_VERSION) -> KawaError:
    with pytest.raises(KawaError) as caught:
        trade(cluster, token, protocol=protocol)
    return caught.value


def token_state(cluster: Cluster, token_id: int) -> tuple[str, int]:
    with cluster.client() as c:
        found = next(t for t in c.join_tokens() if t.id == token_id)
    return found.state, found.used


# -- join tokens --------------------------------------------------------------------------
def test_a_join_token_gives_the_credentials_once(cluster: Cluster) -> None:
    token_id, token = make_token(cluster)
    assert cluster.secret not in token and token.startswith(f"kawajoin.{cluster.cluster_id}.")
    accepted = trade(cluster, token)
    assert (accepted.cluster_id, accepted.cluster_secret) == (cluster.cluster_id, cluster.secret)
    assert accepted.protocol_version == PROTOCOL_VERSION
    again = refused(cluster, token)
    assert again.status == 401 and f"join token {token_id} is used up" in again.message
    assert token_state(cluster, token_id) == ("used up", 1)
    with cluster.client() as c:
        actions = {(e.action, e.target) for e in c.audit(limit=50)}
    assert ("join_token.create", f"join token {token_id}") in actions
    assert ("node.join", "new") in actions


def test_a_token_for_several_uses_counts_them(cluster: Cluster) -> None:
    token_id, token = make_token(cluster, uses=2)
    trade(cluster, token, "a")
    assert token_state(cluster, token_id) == ("valid", 1)
    trade(cluster, token, "b")
    assert refused(cluster, token).status == 401
    assert token_state(cluster, token_id) == ("used up", 2)


def test_a_revoked_token_is_refused(cluster: Cluster) -> None:
    token_id, token = make_token(cluster, uses=5)
    assert cluster.cli("join-token", "revoke", str(token_id)).returncode == 0
    err = refused(cluster, token)
    assert err.status == 401 and f"join token {token_id} was revoked" in err.message
    assert token_state(cluster, token_id) == ("revoked", 0)


def test_an_expired_token_is_refused(cluster: Cluster) -> None:
    token_id, token = make_token(cluster, ttl=0.3)
    eventually(lambda: token_state(cluster, token_id)[0] == "expired", 10, "token to expire")
    err = refused(cluster, token)
    assert err.status == 401 and f"join token {token_id} expired at" in err.message
    assert token_state(cluster, token_id) == ("expired", 0)


def test_other_tokens_are_refused_and_change_nothing(cluster: Cluster) -> None:
    token_id, token = make_token(cluster)
    other = refused(cluster, "kawajoin.0123456789ab." + "f" * 40)
    assert other.status == 403 and "for cluster 0123456789ab" in other.message
    assert cluster.cluster_id in other.message
    unknown = refused(cluster, f"kawajoin.{cluster.cluster_id}." + "0" * 40)
    assert unknown.status == 401 and "unknown join token" in unknown.message
    shape = refused(cluster, cluster.secret)
    assert shape.status == 400 and "not a join token" in shape.message
    newer = refused(cluster, token, protocol=PROTOCOL_VERSION + 1)
    assert newer.status == 409 and "protocol mismatch" in newer.message
    assert token_state(cluster, token_id) == ("valid", 0)


def test_join_tokens_are_for_admins(cluster: Cluster) -> None:
    user = Authenticator(prepare_database(cluster.host_config()), cluster.secret).create_token(
        "bob", "user"
    )
    with KawaClient(cluster.url, user) as c:
        for call in (
            lambda: c.create_join_token(JoinTokenCreate()),
            c.join_tokens,
            lambda: c.revoke_join_token(1),
        ):
            with pytest.raises(KawaError) as caught:
                call()
            assert caught.value.status == 403 and "admin" in caught.value.message


def test_join_token_cli_prints_the_join_line(cluster: Cluster) -> None:
    done = cluster.cli("init", "join-token", "--ttl", "10m", "--uses", "2", "--note", "rack 2")
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1].strip()
    assert line.startswith("kawa join http://") and f":{cluster.port} kawajoin." in line
    listed = cluster.cli("join-token", "list")
    assert "rack 2" in listed.stdout and "0/2" in listed.stdout
    bad = cluster.cli("join-token", "create", "--ttl", "40d")
    assert bad.returncode == 2 and "at most 30d" in bad.stderr


# -- registration checks ------------------------------------------------------------------
def test_a_runner_the_host_cannot_reach_is_refused(cluster: Cluster) -> None:
    port = closed_port()
    with runner_http(cluster) as h:
        r = h.post("/runner/register", json=registration("lost", f"http://127.0.0.1:{port}"))
    assert r.status_code == 400, r.text
    assert f"cannot reach runner lost at address 127.0.0.1 port {port}" in r.json()["detail"]
    with cluster.client() as c:
        assert "lost" not in {n.name for n in c.nodes()}


def test_a_name_online_at_another_address_is_refused(cluster: Cluster) -> None:
    other = f"http://127.0.0.1:{cluster.runners['node2'].port}"
    with runner_http(cluster) as h:
        r = h.post("/runner/register", json=registration("node1", other))
    assert r.status_code == 409, r.text
    where = f"http://127.0.0.1:{cluster.runners['node1'].port}"
    assert f"node node1 is already online at {where}" in r.json()["detail"]
    with cluster.client() as c:
        assert c.node("node1").url == where


def test_a_runner_of_another_protocol_is_refused(cluster: Cluster) -> None:
    body = registration("future", f"http://127.0.0.1:{cluster.runners['node1'].port}")
    body["protocol_version"] = PROTOCOL_VERSION + 1
    with runner_http(cluster) as h:
        r = h.post("/runner/register", json=body)
    assert r.status_code == 409 and "protocol mismatch" in r.json()["detail"], r.text


# -- kawa join ----------------------------------------------------------------------------
def start_join(cluster: Cluster, token: str, name: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAWA_")}
    env["KAWA_CONFIG"] = str(cluster.root / f"{name}-client.toml")
    args = ["join", cluster.url, token, "--name", name, "--port", str(port)]
    args += ["--bind", "127.0.0.1", "--data-dir", str(cluster.root / "runners" / name)]
    with (cluster.root / f"join-{name}.log").open("ab") as log:
        return subprocess.Popen([*KAWA, *args], env=env, stdout=log, stderr=log)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_kawa_join_starts_a_runner_that_takes_tasks(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster
    _, token = make_token(cluster)
    port = free_port()
    proc = start_join(cluster, token, "joined", port)
    try:
        eventually(lambda: cluster.node_status("joined") == "online", 60, "joined online")
        with cluster.client() as c:
            assert c.node("joined").url == f"http://127.0.0.1:{port}"
            task_id = c.submit(TaskSpec(command=["echo", "hi"], targets=["joined"])).tasks[0].id
            t = eventually(
                lambda: when(v := c.task(str(task_id)), v.state == "completed"), 60, "the task"
            )
        assert t.node == "joined"
        config = (cluster.root / "runners" / "joined" / "runner.toml").read_text()
        assert cluster.secret in config and token not in config
    finally:
        stop(proc)
    again = subprocess.run(
        [*KAWA, "join", cluster.url, token, "--name", "joined", "--no-start"],
        capture_output=True,
        text=True,
        timeout=60,
        env=plain_env(),
    )
    assert again.returncode == 1 and "used up" in again.stderr, again.stderr


@pytest.mark.parametrize(
    ("url", "token", "message"),
    [
        ("ftp://127.0.0.1:1", "kawajoin.a.b", "bad host URL"),
        ("http://127.0.0.1:{closed}", "kawajoin.a.b", "cannot reach the Kawa host"),
        ("{url}", "not-a-token", "not a join token"),
        ("{url}", "kawajoin.0123456789ab.ff", "this join token is for cluster 0123456789ab"),
        ("{url}", "{token}", "is not a writable directory"),
    ],
    ids=["scheme", "unreachable", "shape", "other-cluster", "data-dir"],
)
def test_kawa_join_bad_input(
    fresh_cluster: Cluster, tmp_path: Path, url: str, token: str, message: str
) -> None:
    url = url.format(url=fresh_cluster.url, closed=closed_port())
    data = tmp_path / "runner"
    if token == "{token}":  # a data directory under a file: refused before the token is used
        (tmp_path / "file").write_text("")
        data = tmp_path / "file" / "runner"
        token_id, token = make_token(fresh_cluster)
    done = subprocess.run(
        [*KAWA, "join", url, token, "--data-dir", str(data), "--no-start"],
        capture_output=True,
        text=True,
        timeout=60,
        env=plain_env(),
    )
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not data.exists()
    if data.parent.name == "file":
        assert token_state(fresh_cluster, token_id) == ("valid", 0)


# -- removing nodes -----------------------------------------------------------------------
def test_remove_a_node_and_join_again_under_its_name(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster
    cluster.add_runner("r1", cores=1)
    with cluster.client() as c:
        task_id = str(c.submit(TaskSpec(command=["true"], targets=["r1"])).tasks[0].id)
        eventually(lambda: c.task(task_id).state == "completed", 60, "the task")
    busy = cluster.cli("node", "remove", "r1")
    assert busy.returncode == 1 and "online and not draining" in busy.stderr, busy.stderr
    cluster.stop_runner("r1", signal.SIGTERM)
    eventually(lambda: cluster.node_status("r1") == "offline", 30, "r1 offline")
    done = cluster.cli("node", "remove", "r1")
    assert done.returncode == 0, done.stderr
    with cluster.client() as c:
        assert "r1" not in {n.name for n in c.nodes()}
        assert c.task(task_id).node == "r1"  # its history stays
        assert ("node.remove", "r1") in {(e.action, e.target) for e in c.audit(limit=20)}
    cluster.start_runner("r1")
    with cluster.client() as c:
        assert c.task(task_id).node == "r1"
        assert [t.id for t in c.tasks(node="r1")] == [task_id]


def test_force_removes_a_busy_node_and_its_tasks_are_lost(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster
    cluster.add_runner("r2", cores=1)
    with cluster.client() as c:
        task_id = str(c.submit(TaskSpec(command=["sleep", "300"], targets=["r2"])).tasks[0].id)
        eventually(lambda: c.task(task_id).state == "running", 60, "the task to run")
        c.drain("r2")
    busy = cluster.cli("node", "remove", "r2")
    assert busy.returncode == 1 and "still has 1 task(s)" in busy.stderr, busy.stderr
    cluster.stop_runner("r2", signal.SIGKILL)
    assert cluster.cli("node", "remove", "r2", "--force").returncode == 0
    with cluster.client() as c:
        assert c.task(task_id).state == "lost"
        assert "r2" not in {n.name for n in c.nodes()}
    missing = cluster.cli("node", "remove", "r2")
    assert missing.returncode == 1 and "unknown node 'r2'" in missing.stderr


@contextlib.contextmanager
def fake_host(health: dict[str, Any]) -> Iterator[str]:
    """A local HTTP server answering ``/api/v1/health`` with ``health`` (an older or
    foreign host), 404 elsewhere; its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(health).encode() if self.path == f"{API}/health" else b"{}"
            self.send_response(200 if self.path == f"{API}/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize(
    ("health", "message"),
    [
        ({"status": "ok", "cluster_id": "0123456789ab", "version": "0.0.9"}, "runs an older Kawa"),
        (
            {"status": "ok", "cluster_id": "0123456789ab", "protocol_version": 999},
            "protocol mismatch: the host at",
        ),
        ({"status": "ok"}, "does not answer as a Kawa host"),
    ],
    ids=["older-host", "newer-protocol", "not-kawa"],
)
def test_kawa_join_tells_an_incompatible_host(
    tmp_path: Path, health: dict[str, Any], message: str
) -> None:
    data = tmp_path / "runner"
    with fake_host(health) as url:
        done = subprocess.run(
            [*KAWA, "join", url, "kawajoin.0123456789ab.ff", "--data-dir", str(data), "--no-start"],
            capture_output=True,
            text=True,
            timeout=60,
            env=plain_env(),
        )
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert not data.exists()

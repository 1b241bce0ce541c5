"""Authentication is on by default: users need a valid token, runners the
cluster secret, on HTTP and WebSocket alike; refused callers change nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from kawa import __version__
from kawa.client import KawaClient, KawaError
from kawa.core.task_states import FINAL_STATES
from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from kawa.protocol.bounds import MAX_BODY
from kawa.protocol.tasks import Mount, TaskAction, TaskSpec
from tests.integration.cluster import KAWA, Cluster, RunnerProc, eventually, free_port
from tests.support import run_order_fields

API = "/api/v1"


def http(cluster: Cluster, headers: dict[str, str] | None = None) -> httpx.Client:
    return httpx.Client(base_url=cluster.url + API, headers=headers or {}, timeout=30)


def node_names(cluster: Cluster) -> set[str]:
    with cluster.client() as c:
        return {n.name for n in c.nodes()}


def task_count(cluster: Cluster) -> int:
    with cluster.client() as c:
        return len(c.tasks(limit=10000))


def registration(name: str, url: str = "http://127.0.0.1:9") -> dict[str, Any]:
    return {
        "name": name,
        "url": url,
        "version": __version__,
        "inventory": {
            "cores": 2,
            "memory": 2_000_000_000,
            "numa": [{"id": 0, "cpus": [0, 1], "memory": 2_000_000_000}],
        },
    }


def run_task_order(task_id: str = "4242") -> dict[str, Any]:
    return run_order_fields(task_id=task_id, image="kawa/base:bookworm")


# -- users ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param({}, "missing credentials", id="no-header"),
        pytest.param({"Authorization": "Bearer"}, "missing credentials", id="bare-bearer"),
        pytest.param(
            {"Authorization": "Basic YWRtaW46YWRtaW4="}, "missing credentials", id="basic-auth"
        ),
        pytest.param({"Authorization": "Bearer wrong"}, "invalid token", id="wrong-token"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tasks"),
        ("GET", "/nodes"),
        ("GET", "/nodes/node1/health"),
        ("POST", "/tasks"),
        ("POST", "/nodes/node1/drain"),
    ],
)
def test_api_refuses_missing_or_wrong_token(
    cluster: Cluster, headers: dict[str, str], message: str, method: str, path: str
) -> None:
    before = task_count(cluster)
    with http(cluster, headers) as h:
        r = h.request(method, path, json={"command": ["true"]} if method == "POST" else None)
    assert r.status_code == 401, (r.status_code, r.text)
    assert message in r.json()["detail"]
    assert task_count(cluster) == before
    assert cluster.node_status("node1") == "online", "a refused drain changed the node"


def test_valid_token_is_accepted(cluster: Cluster) -> None:
    """The contrast to the refusals above: the same request with the real token works."""
    with http(cluster, {"Authorization": f"Bearer {cluster.token}"}) as h:
        r = h.get("/nodes")
    assert r.status_code == 200, r.text
    assert {n["name"] for n in r.json()} == {"node1", "node2"}


def test_health_is_public(cluster: Cluster) -> None:
    with http(cluster) as h:
        r = h.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_client_with_wrong_token_raises_401(cluster: Cluster) -> None:
    before = task_count(cluster)
    with KawaClient(cluster.url, "kawa_wrong") as c:
        with pytest.raises(KawaError) as exc:
            c.tasks()
        assert exc.value.status == 401 and "invalid token" in exc.value.message
        with pytest.raises(KawaError) as exc:
            c.submit(TaskSpec(command=["true"]))
        assert exc.value.status == 401
    assert task_count(cluster) == before


@pytest.mark.parametrize(
    "args",
    [["task", "list"], ["node", "list"], ["task", "submit", "--", "echo", "hi"]],
    ids=["task-list", "node-list", "task-submit"],
)
def test_cli_with_wrong_token_fails_cleanly(cluster: Cluster, args: list[str]) -> None:
    before = task_count(cluster)
    env = cluster._env(KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN="wrong", COLUMNS="200")
    r = subprocess.run([*KAWA, *args], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("error:"), r.stderr
    assert "invalid token" in r.stderr
    assert task_count(cluster) == before


# -- the event WebSocket -------------------------------------------------------------------


def events_url(cluster: Cluster) -> str:
    return cluster.url.replace("http://", "ws://") + API + "/events"


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        pytest.param({"Authorization": "Bearer wrong"}, "", id="wrong-header"),
        pytest.param({}, "", id="no-credentials"),
        pytest.param({}, "?token=wrong", id="wrong-query-token"),
    ],
)
def test_event_stream_refuses_bad_credentials(
    cluster: Cluster, headers: dict[str, str], query: str
) -> None:
    with (
        pytest.raises(InvalidStatus) as exc,
        connect(events_url(cluster) + query, additional_headers=headers, open_timeout=10),
    ):
        pass
    assert exc.value.response.status_code in (401, 403), exc.value.response.status_code


def test_event_stream_accepts_the_token(cluster: Cluster) -> None:
    for headers, query in (
        ({"Authorization": f"Bearer {cluster.token}"}, ""),
        ({}, f"?token={cluster.token}"),
    ):
        with connect(
            events_url(cluster) + query, additional_headers=headers, open_timeout=10
        ) as ws:
            hello = ws.recv(timeout=10)
        assert '"hello"' in str(hello)


# -- runners and the cluster secret --------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-secret"}],
    ids=["no-secret", "wrong-secret"],
)
def test_runner_registration_needs_the_cluster_secret(
    cluster: Cluster, headers: dict[str, str]
) -> None:
    with http(cluster, headers) as h:
        r = h.post("/runner/register", json=registration("intruder"))
        assert r.status_code == 401, r.text
        assert "cluster secret" in r.json()["detail"] or "credentials" in r.json()["detail"]
        hb = {
            "name": "node1",
            "usage": {
                "at": datetime.now(UTC).isoformat(),
                "cpu_percent": 0.0,
                "memory_used": 0,
                "memory_percent": 0.0,
            },
        }
        assert h.post("/runner/heartbeat", json=hb).status_code == 401
        report = {
            "task_id": "1",
            "node": "node1",
            "state": "ended",
            "at": datetime.now(UTC).isoformat(),
        }
        assert h.post("/runner/report", json=report).status_code == 401
    assert "intruder" not in node_names(cluster)


def test_user_token_is_not_a_cluster_secret(cluster: Cluster) -> None:
    with http(cluster, {"Authorization": f"Bearer {cluster.token}"}) as h:
        r = h.post("/runner/register", json=registration("intruder"))
    assert r.status_code == 401, r.text
    assert "intruder" not in node_names(cluster)


def test_runner_api_needs_the_cluster_secret(cluster: Cluster) -> None:
    port = cluster.runners["node1"].port
    base = f"http://127.0.0.1:{port}"
    before = {x.id for x in cluster.containers()}
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "wrong"},
        {"Authorization": f"Bearer {cluster.token}"},
    ):
        with httpx.Client(base_url=base, headers=headers, timeout=30) as h:
            r = h.post("/tasks", json=run_task_order())
            assert r.status_code == 401, (headers, r.status_code, r.text)
            assert "invalid cluster secret" in r.text
            assert h.post("/tasks/4242/kill").status_code == 401
            assert h.get("/tasks/4242/logs").status_code == 401
    assert {x.id for x in cluster.containers()} == before, "a refused order started a container"
    # The contrast: with the secret, the same runner answers (here: a bad body -> 422).
    with httpx.Client(
        base_url=base, timeout=30, headers={"Authorization": f"Bearer {cluster.secret}"}
    ) as h:
        r = h.post("/tasks", json={"task_id": "4242"})
    assert r.status_code == 422, r.text


def test_runner_refuses_an_oversized_body_before_reading_it(cluster: Cluster) -> None:
    """A body over the runner's limit is answered 413 before it is read, so before the
    cluster secret is checked: a caller without it cannot make the runner hold a large
    body. Declared or sent in chunks, the same."""
    base = f"http://127.0.0.1:{cluster.runners['node1'].port}"
    before = {x.id for x in cluster.containers()}
    big = b"{" + b" " * (2 * MAX_BODY) + b"}"

    def chunks() -> Iterator[bytes]:
        for at in range(0, len(big), 64 * 1024):
            yield big[at : at + 64 * 1024]

    for headers in ({}, {"Authorization": f"Bearer {cluster.secret}"}):
        with httpx.Client(base_url=base, headers=headers, timeout=30) as h:
            declared = h.post("/tasks", content=big)
            chunked = h.post("/tasks", content=chunks())
        for r in (declared, chunked):
            assert r.status_code == 413, (headers, r.status_code, r.text[:200])
            assert f"larger than the limit of {MAX_BODY} bytes" in r.json()["detail"]
    assert {x.id for x in cluster.containers()} == before


def test_runner_with_wrong_secret_never_joins(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster
    name, port = "badnode", free_port()
    data = cluster.root / "runners" / name
    env = cluster._env(
        KAWA_RUNNER_NAME=name,
        KAWA_RUNNER_PORT=str(port),
        KAWA_RUNNER_BIND="127.0.0.1",
        KAWA_RUNNER_HOST_URL=cluster.url,
        KAWA_RUNNER_ADVERTISE_URL=f"http://127.0.0.1:{port}",
        KAWA_RUNNER_CLUSTER_SECRET="not-the-secret",
        KAWA_RUNNER_DATA_DIR=str(data),
        KAWA_RUNNER_CORES="1",
    )
    log_path = cluster.root / f"runner-{name}.log"
    with log_path.open("ab") as log:
        bad = subprocess.Popen([*KAWA, "runner"], env=env, stdout=log, stderr=log)
    try:
        cluster.runners["goodnode"] = RunnerProc(
            "goodnode", free_port(), cluster.root / "runners" / "goodnode", 1
        )
        cluster.start_runner("goodnode")  # waits until it is online
        eventually(
            lambda: "refused registration" in log_path.read_text(),
            30,
            "the bad runner to be refused",
        )
        assert "invalid cluster secret" in log_path.read_text()
        assert bad.poll() is None, "the refused runner keeps retrying, it does not crash"
        assert node_names(cluster) == {"goodnode"}

        # Its own API refuses the real cluster secret, which is not the one it was given.
        def bad_runner_answer() -> int | None:
            try:
                with httpx.Client(timeout=10) as h:
                    return h.post(
                        f"http://127.0.0.1:{port}/tasks",
                        json=run_task_order(),
                        headers={"Authorization": f"Bearer {cluster.secret}"},
                    ).status_code
            except httpx.TransportError:
                return None

        assert eventually(bad_runner_answer, 30, "the bad runner's API") == 401
    finally:
        if bad.poll() is None:
            bad.terminate()
        bad.wait(30)


# -- roles and ownership: viewer / user / admin; a user sees and controls only their own tasks --


@pytest.fixture(scope="module")
def tokens(cluster: Cluster) -> dict[str, str]:
    """Tokens of a viewer and two plain users, made the way `kawa init token` makes them."""
    sessions = prepare_database(cluster.host_config())
    try:
        auth = Authenticator(sessions, cluster.secret)
        return {
            "viewer": auth.create_token("vic", "viewer"),
            "alice": auth.create_token("alice", "user"),
            "bob": auth.create_token("bob", "user"),
        }
    finally:
        sessions.kw["bind"].dispose()


def finish(cluster: Cluster, ids: list[str]) -> None:
    """Kill what is still going among ``ids`` and wait for all of them (admin token)."""
    if not ids:
        return
    with cluster.client() as c:
        for task_id in ids:
            if c.task(task_id).state not in FINAL_STATES:
                c.act(task_id, TaskAction.KILL)
        c.wait(ids, timeout=60)


def test_admin_only_features_are_refused_to_users(cluster: Cluster, tokens: dict[str, str]) -> None:
    before = task_count(cluster)
    with KawaClient(cluster.url, tokens["alice"]) as alice:
        for spec in (
            TaskSpec(command=["true"], privileged=True),
            TaskSpec(command=["true"], mounts=[Mount(source="/etc", target="/host-etc")]),
        ):
            with pytest.raises(KawaError) as exc:
                alice.submit(spec)
            assert exc.value.status == 403 and "admin" in exc.value.message
        with pytest.raises(KawaError) as exc:
            alice.drain("node1")
        assert exc.value.status == 403
    assert task_count(cluster) == before
    assert cluster.node_status("node1") == "online"


def test_users_cannot_control_each_others_tasks(cluster: Cluster, tokens: dict[str, str]) -> None:
    with KawaClient(cluster.url, tokens["alice"]) as alice:
        [t] = alice.submit(TaskSpec(command=["sleep", "30"])).tasks
    try:
        assert t.owner == "alice"
        with KawaClient(cluster.url, tokens["bob"]) as bob:
            for action in (TaskAction.KILL, TaskAction.PAUSE):
                with pytest.raises(KawaError) as exc:
                    bob.act(t.id, action)
                assert exc.value.status in (403, 404), exc.value.message
        with KawaClient(cluster.url, tokens["viewer"]) as viewer, pytest.raises(KawaError) as exc:
            viewer.act(t.id, TaskAction.KILL)
        assert exc.value.status in (403, 404)
        with cluster.client() as admin:
            assert admin.task(t.id).state not in FINAL_STATES, "a refused kill ended the task"
        with KawaClient(cluster.url, tokens["alice"]) as alice:
            assert alice.act(t.id, TaskAction.KILL).desired == "stop"
            [final] = alice.wait([t.id], timeout=60)
        assert final.state == "killed"
    finally:
        finish(cluster, [t.id])


def test_viewer_cannot_submit(cluster: Cluster, tokens: dict[str, str]) -> None:
    with cluster.client() as c:
        before = {t.id for t in c.tasks(limit=10000)}
    try:
        with KawaClient(cluster.url, tokens["viewer"]) as viewer:
            assert viewer.nodes(), "a viewer may look"
            with pytest.raises(KawaError) as exc:
                viewer.submit(TaskSpec(command=["true"]))
        assert exc.value.status == 403
        assert "viewer" in exc.value.message
    finally:
        with cluster.client() as c:
            finish(cluster, [t.id for t in c.tasks(limit=10000) if t.id not in before])


def test_users_see_only_their_own_tasks(cluster: Cluster, tokens: dict[str, str]) -> None:
    with KawaClient(cluster.url, tokens["alice"]) as alice:
        [t] = alice.submit(TaskSpec(command=["echo", "alice's secret"])).tasks
        alice.wait([t.id], timeout=60)
        assert t.id in {x.id for x in alice.tasks(limit=10000)}
    with cluster.client() as admin:
        assert t.id in {x.id for x in admin.tasks(limit=10000)}, "an admin sees all"
    with KawaClient(cluster.url, tokens["bob"]) as bob:
        assert t.id not in {x.id for x in bob.tasks(limit=10000)}
        with pytest.raises(KawaError) as exc:
            bob.task(t.id)
        assert exc.value.status == 404
        with pytest.raises(KawaError) as exc:
            b"".join(bob.logs(t.id))
        assert exc.value.status == 404

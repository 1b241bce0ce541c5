"""Who may call what, route by route.

Every route of the host's app is enumerated (HTTP and WebSocket), so a new route fails
``test_every_host_route_has_a_rule`` until it is given a rule in ``TABLE``. Each route is
then called on a real host without a token, with a wrong token, with the cluster secret
and with each role: a viewer, a user and an admin, plus a second user who does not own
the task the task routes name. Every route of a real runner is called with a wrong
secret, and the SSH gateway is tried by stock OpenSSH with an unknown key.

The point is the authentication answer, not the action: bodies are minimal but valid (so
a role check is reached), task routes name a task that has already ended, and admin-only
environment routes name an environment that cannot exist (the admin's answer is 400).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import WebSocketRoute
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from kawa.client import KawaClient
from kawa.core.task_states import TaskState
from kawa.host.app import create_app, prepare_database
from kawa.host.auth import Authenticator
from kawa.protocol import streams as proto
from kawa.protocol.events import Event
from kawa.protocol.tasks import TaskSpec
from kawa.runner.app import create_runner_app
from kawa.settings import HostConfig, RunnerConfig
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster, free_port
from tests.integration.test_vps import GatewayCluster, keygen

API = "/api/v1"
WS = "WS"
MOUNT = "MOUNT"


class Rule(StrEnum):
    PUBLIC = "no token needed"
    RUNNER = "the cluster secret only"
    ANY = "any role"
    OWN_READ = "any role, on its own user's tasks"
    OWN = "user and admin, on their own tasks (admin: all); viewer 403"
    USER = "user and admin; viewer 403"
    ADMIN = "admin only"


TABLE: dict[tuple[str, str], Rule] = {
    # public: liveness and the API's description (docs/security.md)
    ("GET", f"{API}/health"): Rule.PUBLIC,
    ("GET", "/openapi.json"): Rule.PUBLIC,
    ("GET", "/docs"): Rule.PUBLIC,
    ("GET", "/docs/oauth2-redirect"): Rule.PUBLIC,
    ("GET", "/redoc"): Rule.PUBLIC,
    ("GET", "/metrics"): Rule.ANY,
    # the caller and how to connect
    ("GET", f"{API}/whoami"): Rule.ANY,
    ("GET", f"{API}/info"): Rule.ANY,
    ("POST", f"{API}/ssh-keys"): Rule.USER,
    # the dashboard's files and pages (every API call they make needs a token)
    ("GET", "/"): Rule.PUBLIC,
    ("GET", "/{path:kawa_app_path}"): Rule.PUBLIC,
    # tasks
    ("POST", f"{API}/tasks"): Rule.USER,
    ("GET", f"{API}/tasks"): Rule.ANY,
    ("POST", f"{API}/tasks/dry-run"): Rule.USER,
    ("GET", f"{API}/tasks/counts"): Rule.ANY,
    ("GET", f"{API}/tasks/{{ref}}"): Rule.OWN_READ,
    ("POST", f"{API}/tasks/{{ref}}/{{action}}"): Rule.OWN,
    ("POST", f"{API}/tasks/{{ref}}/remove"): Rule.OWN,
    ("POST", f"{API}/tasks/{{ref}}/retry"): Rule.OWN,
    ("GET", f"{API}/tasks/{{ref}}/logs"): Rule.OWN_READ,
    ("GET", f"{API}/tasks/{{ref}}/wait"): Rule.OWN_READ,
    ("GET", f"{API}/batches/{{batch_id}}/logs"): Rule.OWN_READ,
    (WS, f"{API}/tasks/{{ref}}/terminal"): Rule.OWN,
    (WS, f"{API}/tasks/{{ref}}/forward"): Rule.OWN,
    ("GET", f"{API}/tasks/{{ref}}/files"): Rule.OWN_READ,
    ("GET", f"{API}/tasks/{{ref}}/files/stat"): Rule.OWN_READ,
    ("GET", f"{API}/tasks/{{ref}}/files/content"): Rule.OWN_READ,
    ("PUT", f"{API}/tasks/{{ref}}/files/content"): Rule.OWN,
    ("DELETE", f"{API}/tasks/{{ref}}/files"): Rule.OWN,
    ("POST", f"{API}/tasks/{{ref}}/files/mkdir"): Rule.OWN,
    ("POST", f"{API}/tasks/{{ref}}/files/move"): Rule.OWN,
    # nodes and events
    ("GET", f"{API}/nodes"): Rule.ANY,
    ("GET", f"{API}/nodes/{{name}}"): Rule.ANY,
    ("GET", f"{API}/nodes/{{name}}/health"): Rule.ANY,
    ("GET", f"{API}/nodes/{{name}}/history"): Rule.ANY,
    ("POST", f"{API}/nodes/{{name}}/drain"): Rule.ADMIN,
    ("POST", f"{API}/nodes/{{name}}/undrain"): Rule.ADMIN,
    ("POST", f"{API}/nodes/{{name}}/remove"): Rule.ADMIN,
    (WS, f"{API}/events"): Rule.ANY,
    # environments
    ("GET", f"{API}/environments"): Rule.ANY,
    ("GET", f"{API}/environments/tarballs"): Rule.ANY,
    ("GET", f"{API}/environments/{{name}}/tarball"): Rule.USER,
    ("POST", f"{API}/environments"): Rule.ADMIN,
    ("POST", f"{API}/environments/{{name}}/start"): Rule.ADMIN,
    ("POST", f"{API}/environments/{{name}}/stop"): Rule.ADMIN,
    ("DELETE", f"{API}/environments/{{name}}"): Rule.ADMIN,
    ("POST", f"{API}/environments/{{name}}/exec"): Rule.ADMIN,
    (WS, f"{API}/environments/{{name}}/terminal"): Rule.ADMIN,
    ("POST", f"{API}/environments/{{name}}/package"): Rule.ADMIN,
    ("POST", f"{API}/environments/{{name}}/import"): Rule.ADMIN,
    ("POST", f"{API}/environments/{{name}}/bootstrap"): Rule.ADMIN,
    # joining nodes: the join token in the body is the credential
    ("POST", f"{API}/join"): Rule.PUBLIC,
    ("POST", f"{API}/join-tokens"): Rule.ADMIN,
    ("GET", f"{API}/join-tokens"): Rule.ADMIN,
    ("POST", f"{API}/join-tokens/{{token_id}}/revoke"): Rule.ADMIN,
    # the audit log
    ("GET", f"{API}/audit"): Rule.ADMIN,
    # runners
    ("POST", f"{API}/runner/register"): Rule.RUNNER,
    ("POST", f"{API}/runner/heartbeat"): Rule.RUNNER,
    ("POST", f"{API}/runner/report"): Rule.RUNNER,
    ("POST", f"{API}/runner/environments/progress"): Rule.RUNNER,
    ("GET", f"{API}/runner/environments/{{name}}/{{version}}"): Rule.RUNNER,
}

NO_ENV = "Not-An-Environment"
"""An environment name that cannot exist (uppercase): admin-only routes answer 400."""

BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", f"{API}/tasks"): {"json": {"command": ["true"]}},
    ("POST", f"{API}/tasks/dry-run"): {"json": {"command": ["true"]}},
    ("POST", f"{API}/environments"): {"json": {"name": NO_ENV}},
    ("POST", f"{API}/join-tokens"): {"json": {"ttl": 1}},
    ("PUT", f"{API}/tasks/{{ref}}/files/content"): {"content": b"x"},
    ("POST", f"{API}/tasks/{{ref}}/files/mkdir"): {"json": {"path": "/tmp/auth-table"}},
    ("POST", f"{API}/tasks/{{ref}}/files/move"): {
        "json": {"source": "/tmp/auth-a", "destination": "/tmp/auth-b"}
    },
}
"""Minimal valid bodies: an invalid one is answered 422 before a role is checked."""

# -- the callers ---------------------------------------------------------------------------

NONE, WRONG, SECRET = "no token", "wrong token", "cluster secret"
VIEWER, USER, ADMIN, OTHER = "viewer", "user", "admin", "another user"
CALLERS = (NONE, WRONG, SECRET, VIEWER, USER, ADMIN, OTHER)
ALLOWED = "allowed"


def expected(rule: Rule, caller: str) -> str | int:
    """What ``caller`` gets from a route under ``rule``: ALLOWED or a status."""
    if rule is Rule.PUBLIC:
        return ALLOWED
    if rule is Rule.RUNNER:
        return ALLOWED if caller == SECRET else 401
    if caller in (NONE, WRONG, SECRET):
        return 401
    if rule is Rule.ADMIN:
        return ALLOWED if caller == ADMIN else 403
    if caller == OTHER and rule in (Rule.OWN_READ, Rule.OWN):
        return 404  # another user's task is "not found", as if absent
    if caller == VIEWER and rule in (Rule.OWN, Rule.USER):
        return 403
    return ALLOWED


def enumerate_routes(routes: Any) -> set[tuple[str, str]]:
    """(method or WS/MOUNT, path) of every route, included routers flattened."""
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(routes):
        original, path = route.original_route, route.path
        assert path is not None, f"a route without a path: {original!r}"
        if isinstance(original, WebSocketRoute):  # FastAPI's APIWebSocketRoute too
            found.add((WS, path))
        elif route.methods:
            found.update((m, path) for m in route.methods if m != "HEAD")
        else:  # a mounted app (static files…): it needs a rule as a whole
            found.add((MOUNT, path))
    return found


def host_routes(tmp: Path) -> set[tuple[str, str]]:
    cfg = HostConfig(data_dir=tmp, cluster_secret="enumerating", ssh_port=0)
    sessions = prepare_database(cfg)
    try:
        return enumerate_routes(create_app(cfg, sessions).routes)
    finally:
        sessions.kw["bind"].dispose()


def test_every_host_route_has_a_rule(tmp_path: Path) -> None:
    routes = host_routes(tmp_path)
    missing = sorted(routes - TABLE.keys())
    assert not missing, f"routes without a rule in TABLE (add them): {missing}"
    stale = sorted(TABLE.keys() - routes)
    assert not stale, f"rules for routes that no longer exist: {stale}"


# -- a real cluster ------------------------------------------------------------------------

_NO_SSH = shutil.which("ssh") is None or shutil.which("ssh-keygen") is None
if _NO_SSH and os.environ.get("CI") == "true":  # CI must exercise SSH: fail, never skip
    raise RuntimeError("the OpenSSH client is missing (scripts/bootstrap.sh installs it)")


class Rig:
    """The cluster, the callers' headers and alice's ended task (and its batch)."""

    def __init__(
        self, cluster: GatewayCluster, tokens: dict[str, str], task: str, batch: str
    ) -> None:
        self.cluster, self.task, self.batch = cluster, task, batch
        self.headers: dict[str, dict[str, str]] = {
            NONE: {},
            WRONG: {"Authorization": "Bearer kawa_not-a-token"},
            SECRET: {"Authorization": f"Bearer {cluster.secret}"},
            **{who: {"Authorization": f"Bearer {token}"} for who, token in tokens.items()},
        }

    def path(self, template: str) -> str:
        if template.startswith("/{path:"):
            return "/tasks"  # a page of the dashboard
        name = "node1" if "/nodes/" in template else NO_ENV
        return template.format(
            ref=self.task, batch_id=self.batch, action="kill", name=name, version="1", token_id="1"
        )

    def answer(self, method: str, template: str, caller: str) -> int:
        """The HTTP status, or for a WebSocket: the handshake's refusal, the close code
        less 4000 (4403 -> 403), or 101 when the session opened and spoke."""
        headers = self.headers[caller]
        if method == WS:
            return self._ws_answer(self.path(template), headers)
        extra = BODIES.get((method, template), {})
        params = {"path": "/tmp"} if "/files" in template else {}
        response = httpx.request(
            method,
            self.cluster.url + self.path(template),
            headers=headers,
            params=params,
            timeout=60,
            **extra,
        )
        return response.status_code

    def _ws_answer(self, path: str, headers: dict[str, str]) -> int:
        url = self.cluster.url.replace("http://", "ws://") + path
        subprotocols = None if path.endswith("/events") else [proto.SUBPROTOCOL]
        try:
            with connect(
                url,
                additional_headers=headers,
                subprotocols=subprotocols,  # type: ignore[arg-type]
                open_timeout=30,
            ) as ws:
                try:
                    ws.recv(timeout=30)
                except ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd is not None else 1006
                    return code - 4000 if 4000 <= code < 5000 else code
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code


@pytest.fixture(scope="module")
def rig(docker_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = Path(tmp_path_factory.mktemp("auth-table"))
    admin_key = root / "admin-key"
    if not _NO_SSH:
        keygen(admin_key)
    cluster = GatewayCluster(
        root / "c", BASE_IMAGE, ssh_port=free_port(), admin_keys=None if _NO_SSH else admin_key
    )
    try:
        cluster.root.mkdir()
        cluster.start_host()
        cluster.add_runner("node1", cores=2)
        sessions = prepare_database(cluster.host_config())
        try:
            auth = Authenticator(sessions, cluster.secret)
            tokens = {
                VIEWER: auth.create_token("alice", "viewer"),
                USER: auth.create_token("alice", "user"),
                OTHER: auth.create_token("bob", "user"),
                ADMIN: cluster.token,
            }
        finally:
            sessions.kw["bind"].dispose()
        with KawaClient(cluster.url, tokens[USER]) as alice:
            [task] = alice.submit(TaskSpec(command=["true"])).tasks
            [done] = alice.wait([task.id], timeout=120)
        assert done.state == "completed", done
        yield Rig(cluster, tokens, task.id, task.batch_id)
    finally:
        cluster.close()


def test_the_host_answers_every_route_by_the_table(rig: Rig, tmp_path: Path) -> None:
    wrong: list[str] = []
    for (method, template), rule in sorted(TABLE.items()):
        for caller in CALLERS:
            want = expected(rule, caller)
            got = rig.answer(method, template, caller)
            if not (got not in (401, 403) and got < 500 if want == ALLOWED else got == want):
                wrong.append(f"{method} {template} as {caller}: {got}, expected {want} ({rule})")
    assert not wrong, "\n".join(wrong)
    with rig.cluster.client() as c:
        assert c.node("node1").status.value == "online", "an answered drain changed the node"


def test_refusals_say_why(rig: Rig) -> None:
    """The contrast that makes a 401 and a 403 mean what they say."""
    r = httpx.get(rig.cluster.url + f"{API}/tasks", timeout=30)
    assert "missing credentials" in r.json()["detail"]
    r = httpx.get(rig.cluster.url + f"{API}/tasks", headers=rig.headers[WRONG], timeout=30)
    assert "invalid token" in r.json()["detail"]
    r = httpx.get(rig.cluster.url + f"{API}/audit", headers=rig.headers[USER], timeout=30)
    assert r.status_code == 403 and "admin" in r.json()["detail"]


def runner_routes(tmp: Path) -> set[tuple[str, str]]:
    cfg = RunnerConfig(name="enumerating", cluster_secret="enumerating", data_dir=tmp)
    return enumerate_routes(create_runner_app(cfg).routes)


def test_the_runner_refuses_a_wrong_secret_on_every_route(rig: Rig, tmp_path: Path) -> None:
    routes = runner_routes(tmp_path / "runner")
    assert (WS, "/tasks/{task_id}/terminal") in routes and ("POST", "/tasks") in routes
    base = f"http://127.0.0.1:{rig.cluster.runners['node1'].port}"
    user_token = rig.headers[ADMIN]["Authorization"]
    callers = {
        "no secret": {},
        "a wrong secret": {"Authorization": "Bearer wrong"},
        "a user token": {"Authorization": user_token},
    }
    wrong: list[str] = []
    for method, template in sorted(routes):
        path = template.format(task_id="4242", action="kill")
        for caller, headers in callers.items():
            if method == WS:
                url = base.replace("http://", "ws://") + path
                try:
                    with connect(url, additional_headers=headers, open_timeout=30) as ws:
                        ws.recv(timeout=30)
                    got = 101
                except InvalidStatus as exc:
                    got = exc.response.status_code
                except ConnectionClosed as exc:
                    got = exc.rcvd.code if exc.rcvd is not None else 1006
            else:
                got = httpx.request(method, base + path, headers=headers, timeout=30).status_code
            if got not in (401, 403, 4401, 4403):
                wrong.append(f"{method} {template} with {caller}: {got}")
    assert not wrong, "\n".join(wrong)
    # no description of the runner's API, with or without the secret
    secret = rig.headers[SECRET]
    for path in ("/docs", "/redoc", "/openapi.json"):
        for headers in ({}, secret):
            got = httpx.get(base + path, headers=headers, timeout=30).status_code
            assert got in (401, 404), (path, "with the secret" if headers else "without", got)
    # the contrast: with the secret the runner answers (a bad body -> 422)
    r = httpx.post(base + "/tasks", json={}, headers=secret, timeout=30)
    assert r.status_code == 422, r.text


def test_metrics_can_be_made_public(docker_available: None, tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, BASE_IMAGE, extra_host_env={"KAWA_HOST_METRICS_PUBLIC": "true"})
    try:
        cluster.start_host()
        r = httpx.get(f"{cluster.url}/metrics", timeout=30)
        assert r.status_code == 200 and "kawa_tasks" in r.text
        r = httpx.get(f"{cluster.url}{API}/tasks", timeout=30)
        assert r.status_code == 401, "only /metrics is opened"
    finally:
        cluster.close()


@pytest.mark.skipif(_NO_SSH, reason="the OpenSSH client is not installed")
def test_the_ssh_gateway_refuses_an_unknown_key(rig: Rig, tmp_path: Path) -> None:
    cluster = rig.cluster
    assert isinstance(cluster, GatewayCluster) and cluster.admin_keys is not None
    stranger = tmp_path / "stranger"
    keygen(stranger)

    def ssh(identity: Path) -> subprocess.CompletedProcess[str]:
        config = tmp_path / f"config-{identity.name}"
        config.write_text(
            f"Host gateway\n  HostName 127.0.0.1\n  Port {cluster.ssh_port}\n  User kawa\n"
            f"  IdentityFile {identity}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel INFO\n"
            "  ConnectTimeout 20\n"
        )
        return subprocess.run(
            ["ssh", "-F", str(config), "gateway", "true"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    refused = ssh(stranger)
    assert refused.returncode == 255, refused.stderr
    assert "Permission denied" in refused.stderr, refused.stderr
    # the contrast: a known key gets through authentication (and is then told no shells)
    known = ssh(cluster.admin_keys)
    assert "Permission denied" not in known.stderr and "no shells here" in known.stderr, (
        known.stderr
    )


def test_the_event_stream_shows_only_the_callers_tasks(rig: Rig) -> None:
    """A user sees their own tasks' events, not another user's; an admin sees all."""
    url = rig.cluster.url.replace("http://", "ws://") + f"{API}/events"
    with contextlib.ExitStack() as stack:
        streams = {
            who: stack.enter_context(
                connect(url, additional_headers=rig.headers[who], open_timeout=30)
            )
            for who in (OTHER, ADMIN)
        }
        for ws in streams.values():
            assert '"hello"' in str(ws.recv(timeout=30))
        token = rig.headers[USER]["Authorization"].removeprefix("Bearer ")
        with KawaClient(rig.cluster.url, token) as alice:
            [task] = alice.submit(TaskSpec(command=["true"])).tasks
            alice.wait([task.id], timeout=120)
        with KawaClient(rig.cluster.url, rig.headers[OTHER]["Authorization"][7:]) as bob:
            [own] = bob.submit(TaskSpec(command=["true"])).tasks
            bob.wait([own.id], timeout=120)

        def seen(who: str, until: str) -> set[str]:
            """Task ids in ``who``'s events up to the completion of task ``until``."""
            ids: set[str] = set()
            while True:  # each recv waits at most 30 s
                event = Event.model_validate_json(streams[who].recv(timeout=30))
                if event.task is None:
                    continue
                ids.add(event.task.id)
                if event.task.id == until and event.task.state is TaskState.COMPLETED:
                    return ids

        assert seen(ADMIN, own.id) >= {task.id, own.id}
        bob_saw = seen(OTHER, own.id)
        assert own.id in bob_saw and task.id not in bob_saw, bob_saw

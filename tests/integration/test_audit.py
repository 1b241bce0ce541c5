"""The audit trail, end to end: each audited action is performed through the real API
(tokens through `kawa init token`), then read back with `GET /api/v1/audit`, the client
and `kawa audit`: the right user, role, token id, address, action and target, and no
secret anywhere in it. Only admins may read it; refused requests leave no entry."""

from __future__ import annotations

import getpass
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from kawa.client import KawaClient, KawaError
from kawa.core.task_states import TaskKind
from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator, hash_token
from kawa.protocol.audit import AuditEntryView
from kawa.protocol.tasks import TaskAction, TaskSpec
from kawa.store.models import ApiToken
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import KAWA, Cluster, eventually, when
from tests.integration.env_support import removing_environments, tiny_rootfs
from tests.integration.test_vps import remove_snapshots

SECRET_ENV = "hunter2-must-not-be-logged"
WORKSPACE = "audited"
IMPORTED = "audited-import"


@pytest.fixture(scope="module")
def cluster(docker_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(Path(tmp_path_factory.mktemp("audit")), BASE_IMAGE)
    with removing_environments(c):
        c.start_host()
        c.add_runner("node1", cores=2)
        yield c


def host_env(cluster: Cluster) -> dict[str, str]:
    """What `kawa init token` on the host needs: the host's data dir and secret."""
    cfg = cluster.host_config()
    return cluster._env(
        KAWA_HOST_DATA_DIR=str(cfg.data_dir), KAWA_HOST_CLUSTER_SECRET=cluster.secret
    )


def init_token(cluster: Cluster, user: str, role: str) -> str:
    done = subprocess.run(
        [*KAWA, "init", "token", "--user", user, "--role", role],
        env=host_env(cluster), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def token_id(cluster: Cluster, token: str) -> int:
    sessions = prepare_database(cluster.host_config())
    try:
        with sessions() as s:
            found = s.scalar(select(ApiToken.id).where(ApiToken.token_hash == hash_token(token)))
    finally:
        sessions.kw["bind"].dispose()
    assert found is not None
    return found


def state(c: KawaClient, ref: str) -> str:
    return c.task(ref).state.value


@pytest.fixture
def snapshotted() -> Iterator[list[str]]:
    """VPS ids whose snapshot images are removed after the test."""
    ids: list[str] = []
    yield ids
    for vps_id in ids:
        remove_snapshots(vps_id)


def test_every_audited_action_is_read_back(
    cluster: Cluster, tmp_path: Path, snapshotted: list[str]
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    alice_token = init_token(cluster, "alice", "user")
    viewer_token = init_token(cluster, "vic", "viewer")
    alice_id, admin_id = token_id(cluster, alice_token), token_id(cluster, cluster.token)

    with KawaClient(cluster.url, alice_token) as alice:
        # a command task: submit, pause, resume, kill
        [task] = alice.submit(
            TaskSpec(command=["sleep", "300"], env={"API_KEY": SECRET_ENV}, name="job")
        ).tasks
        eventually(lambda: state(alice, task.id) == "running", 60, "task running")
        alice.act(task.id, TaskAction.PAUSE)
        eventually(lambda: state(alice, task.id) == "paused", 30, "task paused")
        alice.act(task.id, TaskAction.RESUME)
        eventually(lambda: state(alice, task.id) == "running", 30, "task resumed")
        alice.act(task.id, TaskAction.KILL)
        alice.wait([task.id], timeout=60)

        # a VPS: create, stop, restart, snapshot
        [vps] = alice.submit(TaskSpec(kind=TaskKind.VPS, name="box")).tasks
        snapshotted.append(vps.id)
        eventually(lambda: state(alice, vps.id) == "running", 90, "VPS running")
        alice.act(vps.id, TaskAction.STOP)
        eventually(lambda: state(alice, vps.id) == "stopped", 60, "VPS stopped")
        alice.act(vps.id, TaskAction.RESTART)
        eventually(lambda: state(alice, vps.id) == "running", 90, "VPS running again")
        alice.act(vps.id, TaskAction.SNAPSHOT)

        # refused: no entries for these
        with pytest.raises(KawaError) as refused:
            alice.drain("node1")
        assert refused.value.status == 403
        with pytest.raises(KawaError) as refused:
            alice.create_workspace("not-allowed")
        assert refused.value.status == 403

    with cluster.client() as admin:
        admin.act(vps.id, TaskAction.KILL)
        admin.wait([vps.id], timeout=60)
        admin.drain("node1")
        admin.drain("node1", False)
        admin.create_workspace(WORKSPACE)
        admin.stop_workspace(WORKSPACE)
        admin.start_workspace(WORKSPACE)
        version = admin.package(WORKSPACE)
        admin.delete_workspace(WORKSPACE, force=True)
        imported = admin.import_tarball(IMPORTED, tiny_rootfs(tmp_path / "rootfs.tar"))

        entries = admin.audit(since=started, limit=1000)

    def find(action: str, target: str) -> AuditEntryView:
        found = [e for e in entries if e.action == action and e.target == target]
        assert len(found) == 1, (action, target, [(e.action, e.target) for e in entries])
        return found[0]

    by_alice = [
        ("task.submit", task.id),
        ("task.pause", task.id),
        ("task.resume", task.id),
        ("task.kill", task.id),
        ("vps.create", vps.id),
        ("vps.stop", vps.id),
        ("vps.restart", vps.id),
        ("vps.snapshot", vps.id),
    ]
    by_admin = [
        ("vps.kill", vps.id),
        ("node.drain", "node1"),
        ("node.undrain", "node1"),
        ("environment.create", WORKSPACE),
        ("environment.stop", WORKSPACE),
        ("environment.start", WORKSPACE),
        ("environment.package", WORKSPACE),
        ("environment.delete", WORKSPACE),
        ("environment.import", IMPORTED),
    ]
    for action, target in by_alice:
        e = find(action, target)
        assert (e.user, e.role, e.token_id, e.address) == ("alice", "user", alice_id, "127.0.0.1")
    for action, target in by_admin:
        e = find(action, target)
        assert (e.user, e.role, e.token_id, e.address) == ("admin", "admin", admin_id, "127.0.0.1")
    on_the_host = (getpass.getuser(), "local", None, "local")
    for user, role in (("alice", "user"), ("vic", "viewer")):
        e = find("token.create", user)
        assert (e.user, e.role, e.token_id, e.address) == on_the_host
        assert f"role {role}" in e.detail
    assert "name job" in find("task.submit", task.id).detail
    assert version.version in find("environment.package", WORKSPACE).detail
    assert imported.version in find("environment.import", IMPORTED).detail
    assert len(entries) == len(by_alice) + len(by_admin) + 2, "refused requests left entries"
    assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True), "newest first"

    dump = json.dumps([e.model_dump(mode="json") for e in entries])
    for secret in (SECRET_ENV, alice_token, viewer_token, cluster.token, cluster.secret):
        assert secret not in dump

    # filters
    with cluster.client() as admin:
        assert {e.user for e in admin.audit(user="alice", limit=1000)} == {"alice"}
        assert len(admin.audit(user="alice", limit=1000)) == len(by_alice)
        assert len(admin.audit(limit=2)) == 2
        assert admin.audit(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    # only admins read it
    for token in (alice_token, viewer_token):
        with KawaClient(cluster.url, token) as c, pytest.raises(KawaError) as exc:
            c.audit()
        assert exc.value.status == 403 and "admin" in exc.value.message


def test_kawa_audit_cli(cluster: Cluster) -> None:
    with cluster.client() as admin:
        admin.drain("node1")
        admin.drain("node1", False)
    done = cluster.cli("audit", "--user", "admin", "--since", "10m", "--json")
    assert done.returncode == 0, done.stderr
    listed = [AuditEntryView.model_validate(e) for e in json.loads(done.stdout)]
    assert listed and {e.user for e in listed} == {"admin"}
    assert listed[0].action == "node.undrain" and listed[1].action == "node.drain"
    since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    table = cluster.cli("audit", "--since", since, "--limit", "5")
    assert table.returncode == 0, table.stderr
    assert "node.undrain" in table.stdout and "127.0.0.1" in table.stdout

    bad = cluster.cli("audit", "--since", "last tuesday")
    assert bad.returncode == 2 and "invalid --since 'last tuesday'" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
    bad = cluster.cli("audit", "--limit", "0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr

    viewer = init_token(cluster, "vic2", "viewer")
    env = cluster._env(KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=viewer, COLUMNS="200")
    refused = subprocess.run(
        [*KAWA, "audit"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode == 1 and "admin role" in refused.stderr, refused.stderr


def init(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """``kawa init ARGS`` as run on the host (its data dir and secret)."""
    env = {**host_env(cluster), "COLUMNS": "200"}
    return subprocess.run(
        [*KAWA, "init", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_revoked_token_stops_working(cluster: Cluster) -> None:
    token = init_token(cluster, "leaver", "user")
    tid = token_id(cluster, token)
    with KawaClient(cluster.url, token) as leaver:
        leaver.tasks()  # accepted, so the host now trusts it for a while without asking
        listed = init(cluster, "tokens")
        assert listed.returncode == 0, listed.stderr
        rows = {line.split()[0]: line.split()[1:3] for line in listed.stdout.splitlines()[2:]}
        assert rows[str(tid)] == ["leaver", "user"] and rows["1"] == ["admin", "admin"], rows
        assert token not in listed.stdout

        done = init(cluster, "revoke-token", str(tid))
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"revoked token {tid} (user leaver, role user)"

        def refused() -> bool | None:
            try:
                leaver.tasks()
            except KawaError as exc:
                return exc.status == 401 or None
            return None

        eventually(refused, 30, "the revoked token to be refused")
    with cluster.client() as admin:
        admin.tasks()  # the other tokens are untouched
        entry = next(e for e in admin.audit(limit=100) if e.action == "token.revoke")
        assert (entry.target, entry.detail) == ("leaver", f"token {tid}, role user")

    again = init(cluster, "revoke-token", str(tid))
    assert again.returncode == 2, again
    assert f"no API token with id {tid}" in again.stderr and "Traceback" not in again.stderr
    bad = init(cluster, "revoke-token", "leaver")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert str(tid) not in init(cluster, "tokens").stdout.split()


def test_old_entries_are_pruned_to_the_bound(docker_available: None, tmp_path: Path) -> None:
    """A host keeping 3 entries: after its prune at startup only the newest 3 are left."""
    c = Cluster(tmp_path, BASE_IMAGE, extra_host_env={"KAWA_HOST_AUDIT_MAX_ROWS": "3"})
    try:
        sessions = prepare_database(c.host_config())
        try:
            auth = Authenticator(sessions, c.secret)
            c.token = auth.create_token("admin", "admin")
            for i in range(5):
                auth.create_token(f"u{i}", "viewer")
        finally:
            sessions.kw["bind"].dispose()
        c.start_host()
        with c.client() as admin:
            kept = eventually(
                lambda: when(e := admin.audit(limit=100), len(e) == 3), 30, "the prune"
            )
        assert [e.target for e in kept] == ["u4", "u3", "u2"]
    finally:
        c.close()

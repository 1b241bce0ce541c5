"""Container environments end to end, with real Docker: a workspace on the host, a
scripted shell, packaging, and runners that fetch versions over HTTP (no shared
directory here) and load each version once.

Every runner of the harness shares this machine's Docker daemon, so "a runner with no
local copy" is made by taking the image tag away before the task: the runner checks
its own load record *and* Docker's tag."""

from __future__ import annotations

import contextlib
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from kawa.protocol.environments import EnvironmentVersionView
from kawa.protocol.tasks import TaskSpec
from kawa.settings import HostConfig
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster, eventually
from tests.integration.env_support import (
    drop_image,
    flip_bytes,
    has_image,
    host_tarball,
    loads,
    output,
    removing_environments,
    run,
    sha256,
    tiny_rootfs,
)


class KeepTwo(Cluster):
    def host_config(self) -> HostConfig:
        return super().host_config().model_copy(update={"keep_versions": 2})


@pytest.fixture(scope="module")
def envs(docker_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A host keeping 2 versions per environment; node1 (2 cores), node2 (12 cores)."""
    c = KeepTwo(Path(tmp_path_factory.mktemp("envs")), BASE_IMAGE)
    with removing_environments(c):
        c.start_host()
        c.add_runner("node1", cores=2)
        c.add_runner("node2", cores=12)
        yield c


@pytest.fixture(scope="module")
def dockerd() -> Iterator[docker.DockerClient]:
    with contextlib.closing(docker.from_env(timeout=300)) as client:
        yield client


@pytest.fixture(scope="module")
def app_v1(envs: Cluster) -> EnvironmentVersionView:
    """Workspace ``app``, prepared through the CLI's scripted shell and packaged."""
    made = envs.cli("container", "create", "app", "--from", BASE_IMAGE)
    assert made.returncode == 0, made.stderr
    shell = envs.cli("container", "shell", "app", input=b"mkdir -p /opt\necho v1 > /opt/marker\n")
    assert shell.returncode == 0, shell.stderr
    packaged = envs.cli("container", "package", "app", "--json")
    assert packaged.returncode == 0, packaged.stderr
    return EnvironmentVersionView.model_validate_json(packaged.stdout)


def newest(cluster: Cluster, name: str) -> EnvironmentVersionView:
    with cluster.client() as c:
        return next(v for v in c.tarballs(name) if v.newest)


def test_scripted_shell_reports_output_and_exit_status(envs: Cluster, app_v1: object) -> None:
    script = "echo out; echo err >&2; cat /opt/marker; exit 3\n"
    done = envs.cli("container", "shell", "app", input=script.encode())
    assert done.returncode == 3
    assert done.stdout == "out\nv1\n" and done.stderr == "err\n"
    piped = envs.cli("container", "shell", "app", "--command", "tr a-z A-Z", input=b"abc\n")
    assert (piped.returncode, piped.stdout) == (0, "ABC\n")


def test_task_runs_in_the_packaged_environment_on_a_runner_without_it(
    envs: Cluster, app_v1: EnvironmentVersionView, dockerd: docker.DockerClient
) -> None:
    assert app_v1.digest.startswith("sha256:") and app_v1.size > 1_000_000
    assert sha256(host_tarball(envs, app_v1)) == app_v1.digest
    drop_image(dockerd, app_v1.image)
    with envs.client() as c:
        [task] = c.submit(
            TaskSpec(command=["cat", "/opt/marker"], container="app", targets=["node1"])
        ).tasks
        seen: set[str] = set()

        def started() -> bool:
            view = c.task(task.id)
            if view.waiting_reason:
                seen.add(view.waiting_reason)
            return view.state not in ("pending", "assigning")

        eventually(started, 120, "the task to start")
        [final] = c.wait([task.id], timeout=60)
    assert final.state == "completed", final.error
    assert output(envs, task.id) == "v1\n"
    prefix = f"syncing environment app@{app_v1.version}, "
    assert any(s.startswith(prefix) and s.endswith("%") for s in seen), seen
    assert loads(envs, "node1", app_v1.image) == (1, "http")
    assert not final.waiting_reason
    [again] = run(envs, command=["cat", "/opt/marker"], container="app", targets=["node1"])
    assert again.state == "completed"
    assert loads(envs, "node1", app_v1.image) == (1, "http")  # unchanged: not loaded again


def test_a_new_version_has_a_new_digest_and_is_loaded_once(
    envs: Cluster, app_v1: EnvironmentVersionView, dockerd: docker.DockerClient
) -> None:
    with envs.client() as c:
        assert c.run_script("app", b"echo v2 > /opt/marker") == 0
        v2 = c.package("app")
    assert v2.digest != app_v1.digest and v2.version > app_v1.version
    drop_image(dockerd, v2.image)
    for _ in range(2):
        [t] = run(envs, command=["cat", "/opt/marker"], container="app", targets=["node1"])
        assert t.state == "completed", t.error
        assert output(envs, t.id) == "v2\n"
    assert loads(envs, "node1", v2.image) == (1, "http")


def test_ten_concurrent_tasks_trigger_one_load(
    envs: Cluster, app_v1: object, dockerd: docker.DockerClient
) -> None:
    v = newest(envs, "app")
    drop_image(dockerd, v.image)
    done = run(envs, command=["cat", "/opt/marker"], container="app", targets=["node2"] * 10)
    assert [t.state for t in done] == ["completed"] * 10, [t.error for t in done]
    assert loads(envs, "node2", v.image) == (1, "http")


def test_a_broken_transfer_resumes_where_it_stopped(
    envs: Cluster, app_v1: object, dockerd: docker.DockerClient
) -> None:
    v = newest(envs, "app")
    before = loads(envs, "node2", v.image)
    assert before is not None
    drop_image(dockerd, v.image)
    half = v.size // 2
    work = envs.runners["node2"].data_dir / "environments"
    partial = work / f"app-{v.version}-{v.digest.removeprefix('sha256:')[:12]}.tar.partial"
    partial.write_bytes(host_tarball(envs, v).read_bytes()[:half])  # what a cut-off left
    [t] = run(envs, command=["cat", "/opt/marker"], container="app", targets=["node2"])
    assert t.state == "completed", t.error
    assert loads(envs, "node2", v.image) == (before[0] + 1, f"http, resumed at {half} bytes")
    assert not list(work.iterdir())  # nothing left behind


def test_corrupt_tarball_fails_the_task_and_nothing_is_tagged(
    envs: Cluster, dockerd: docker.DockerClient, tmp_path: Path
) -> None:
    with envs.client() as c:
        v = c.import_tarball("broken", tiny_rootfs(tmp_path / "rootfs.tar", blob=3_000_000))
    stored = host_tarball(envs, v)
    flip_bytes(stored, 600)  # early: most of the tarball has reached Docker when it shows
    drop_image(dockerd, v.image)
    [t] = run(envs, command=["true"], container="broken", targets=["node1"])
    assert t.state == "failed"
    assert t.error is not None
    assert f"environment broken@{v.version} could not be synced to node1" in t.error
    assert f"expected {v.digest}" in t.error and "tried 3 times" in t.error
    assert not has_image(dockerd, v.image)
    assert loads(envs, "node1", v.image) is None
    assert not list((envs.runners["node1"].data_dir / "environments").iterdir())


def test_a_partial_download_with_wrong_bytes_is_fetched_again(
    envs: Cluster, dockerd: docker.DockerClient, tmp_path: Path
) -> None:
    with envs.client() as c:
        v = c.import_tarball("tiny", tiny_rootfs(tmp_path / "rootfs.tar"))
    drop_image(dockerd, v.image)
    work = envs.runners["node1"].data_dir / "environments"
    work.mkdir(exist_ok=True)
    stem = f"tiny-{v.version}-{v.digest.removeprefix('sha256:')[:12]}.tar"
    (work / f"{stem}.partial").write_bytes(b"\x00garbage" * 100)
    [t] = run(envs, command=["true"], container="tiny", targets=["node1"])
    # the image has no shell, so `true` cannot start; what matters is that it loaded
    assert has_image(dockerd, v.image), t.error
    assert loads(envs, "node1", v.image) == (1, "http, resumed at 800 bytes")


def test_export_import_round_trip(
    envs: Cluster, app_v1: object, dockerd: docker.DockerClient, tmp_path: Path
) -> None:
    v = newest(envs, "app")
    exported = tmp_path / "app.tar"
    done = envs.cli("container", "export", "app", "-o", str(exported))
    assert done.returncode == 0, done.stderr
    assert sha256(exported) == v.digest
    with tarfile.open(exported) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        [manifest] = json.load(member)
    image_id = "sha256:" + Path(manifest["Config"]).name.removesuffix(".json")
    imported = envs.cli("container", "import", str(exported), "--name", "app-copy", "--json")
    assert imported.returncode == 0, imported.stderr
    copy = EnvironmentVersionView.model_validate_json(imported.stdout)
    assert copy.name == "app-copy" and copy.image.startswith("kawa-env/app-copy:")
    assert dockerd.api.inspect_image(copy.image)["Id"] == image_id  # the same image
    assert not has_image(dockerd, v.image) or dockerd.api.inspect_image(v.image)["Id"] == image_id
    [t] = run(envs, command=["cat", "/opt/marker"], container="app-copy", targets=["node2"])
    assert t.state == "completed" and output(envs, t.id) == "v2\n"


def test_tarball_download_answers_range_requests(envs: Cluster, app_v1: object) -> None:
    import httpx

    v = newest(envs, "app")
    whole = host_tarball(envs, v).read_bytes()
    url = f"{envs.url}/api/v1/environments/app/tarball"
    headers = {"Authorization": f"Bearer {envs.token}", "Range": "bytes=1000-1999"}
    with httpx.Client() as http:
        r = http.get(url, params={"version": v.version}, headers=headers)
        assert r.status_code == 206 and r.content == whole[1000:2000]
        assert r.headers["x-kawa-digest"] == v.digest
        runner_url = f"{envs.url}/api/v1/runner/environments/app/{v.version}"
        assert http.get(runner_url, headers=headers).status_code == 401  # a user token
        secret = {"Authorization": f"Bearer {envs.secret}", "Range": "bytes=-10"}
        assert http.get(runner_url, headers=secret).content == whole[-10:]


def test_only_the_newest_versions_are_kept(envs: Cluster, tmp_path: Path) -> None:
    made = []
    with envs.client() as c:
        for i in range(3):
            made.append(c.import_tarball("kept", tiny_rootfs(tmp_path / f"{i}.tar", f"{i}\n")))
        kept = c.tarballs("kept")
    assert [v.version for v in kept] == [m.version for m in made[1:]]  # oldest first
    assert [v.newest for v in kept] == [False, True]
    assert made == sorted(made, key=lambda v: v.version)
    assert not host_tarball(envs, made[0]).exists()
    assert all(host_tarball(envs, v).exists() for v in made[1:])
    listed = envs.cli("container", "tarballs", "--json")
    assert {v["name"] for v in json.loads(listed.stdout)} >= {"app", "kept"}


def test_deleting_a_workspace_keeps_its_tarballs_and_running_tasks(
    envs: Cluster, app_v1: object
) -> None:
    with envs.client() as c:
        [task] = c.submit(
            TaskSpec(command=["sh", "-c", "sleep 2; cat /opt/marker"], container="app")
        ).tasks
        eventually(lambda: c.task(task.id).state == "running", 120, "the task to run")
        c.delete_workspace("app")
        [final] = c.wait([task.id], timeout=60)
        assert final.state == "completed" and output(envs, task.id) == "v2\n"
        assert "app" not in {w.name for w in c.workspaces()}
        assert {v.name for v in c.tarballs()} >= {"app"}
    [later] = run(envs, command=["cat", "/opt/marker"], container="app")
    assert later.state == "completed"

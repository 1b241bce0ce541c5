"""Environments with a shared directory (the NFS setup), building a base from the
package mirror, and the refusals: bad names, missing or busy workspaces, non-tars,
roles, and a workspace deleted under an open shell."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from kawa.client import KawaError
from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from kawa.host.bootstrap import cache_dir
from kawa.protocol.environments import EnvironmentVersionView
from kawa.protocol.tasks import TaskSpec
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster, eventually
from tests.integration.env_support import (
    drop_image,
    flip_padding,
    has_image,
    loads,
    output,
    removing_environments,
    run,
    sha256,
    tiny_rootfs,
)


@pytest.fixture(scope="module")
def shared(docker_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A host and a runner ``nfs`` that both see the same shared directory."""
    root = Path(tmp_path_factory.mktemp("shared"))
    c = Cluster(root, BASE_IMAGE)
    c.extra_host_env["KAWA_HOST_SHARED_DIR"] = str(root / "nfs")
    with removing_environments(c):
        c.start_host()
        c.add_runner("nfs", cores=4, shared_dir=root / "nfs")
        yield c


@pytest.fixture(scope="module")
def dockerd() -> Iterator[docker.DockerClient]:
    with contextlib.closing(docker.from_env(timeout=300)) as client:
        yield client


def tarball(cluster: Cluster, v: EnvironmentVersionView) -> Path:
    return cluster.root / "nfs" / "kawa-containers" / f"{v.name}-{v.version}.tar"


def test_runners_read_versions_from_the_shared_directory(
    shared: Cluster, dockerd: docker.DockerClient
) -> None:
    with shared.client() as c:
        c.create_workspace("lab", BASE_IMAGE)
        assert c.run_script("lab", b"echo from nfs > /srv/marker") == 0
        v = c.package("lab")
    assert sha256(tarball(shared, v)) == v.digest
    assert not (shared.root / "host" / "environments").exists()
    drop_image(dockerd, v.image)
    [t] = run(shared, command=["cat", "/srv/marker"], container="lab")
    assert t.state == "completed", t.error
    assert output(shared, t.id) == "from nfs\n"
    assert loads(shared, "nfs", v.image) == (1, "shared")


def test_a_corrupt_shared_tarball_is_never_loaded(
    shared: Cluster, dockerd: docker.DockerClient, tmp_path: Path
) -> None:
    with shared.client() as c:
        v = c.import_tarball("cracked", tiny_rootfs(tmp_path / "rootfs.tar", blob=3_000_000))
    flip_padding(tarball(shared, v))  # same files; Docker alone would load this
    drop_image(dockerd, v.image)
    [t] = run(shared, command=["true"], container="cracked")
    assert t.state == "failed" and t.error is not None
    assert "could not be synced to nfs: the tarball's sha256 is" in t.error
    assert not has_image(dockerd, v.image)
    assert "is corrupt" in (shared.root / "runner-nfs.log").read_text()


def test_bootstrap_builds_a_base_from_the_package_mirror(shared: Cluster) -> None:
    if not (cache_dir() / "rootfs-bookworm.tar").is_file():
        pytest.skip("no cached bookworm rootfs: a debootstrap run takes minutes")
    done = shared.cli("container", "bootstrap", "boot", "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    v = EnvironmentVersionView.model_validate_json(done.stdout)
    assert v.name == "boot" and v.size > 10_000_000
    [t] = run(shared, command=["python3", "-c", "print(6 * 7)"], container="boot")
    assert t.state == "completed" and output(shared, t.id) == "42\n"


# -- refusals -----------------------------------------------------------------------
def refused(call: object, status: int, *words: str) -> None:
    assert callable(call)
    with pytest.raises(KawaError) as caught:
        call()
    assert caught.value.status == status, caught.value.message
    for word in words:
        assert word in caught.value.message, caught.value.message


def test_bad_names_unknown_environments_and_missing_workspaces(
    shared: Cluster, tmp_path: Path
) -> None:
    rootfs = tiny_rootfs(tmp_path / "rootfs.tar")
    with shared.client() as c:
        refused(lambda: c.create_workspace("Upper"), 400, "lowercase")
        refused(lambda: c.create_workspace("has space"), 400, "bad environment name")
        refused(lambda: c.create_workspace("-dash"), 400, "bad environment name")
        refused(lambda: c.import_tarball("Bad", rootfs), 400, "lowercase")
        refused(lambda: c.package("Upper"), 400, "lowercase")
        refused(lambda: c.package("ghost"), 404, "no workspace named 'ghost'")
        refused(lambda: c.start_workspace("ghost"), 404, "no workspace")
        refused(lambda: c.create_workspace("img", "no-such/image:1"), 400, "could not be pulled")
        refused(
            lambda: c.submit(TaskSpec(command=["true"], container="ghost")),
            400,
            "unknown container environment 'ghost'",
        )
        refused(lambda: c.export_tarball("ghost", tmp_path / "x.tar"), 404, "no packaged")
    cli = shared.cli("container", "create", "Upper")
    assert cli.returncode == 2 and "lowercase" in cli.stderr  # a usage error, sent nowhere


def test_importing_something_that_is_not_a_tar(shared: Cluster, tmp_path: Path) -> None:
    junk = tmp_path / "notes.tar"
    junk.write_text("these are notes, not an archive\n" * 100)
    with shared.client() as c:
        refused(lambda: c.import_tarball("notes", junk), 400, "not a tar archive")
        assert not c.tarballs("notes")
    assert not [
        p for p in (shared.root / "nfs" / "kawa-containers").iterdir() if "upload" in p.name
    ]


def test_packaging_twice_at_once_is_refused(shared: Cluster) -> None:
    with shared.client() as c:
        c.create_workspace("busy", BASE_IMAGE)
    results: list[object] = []

    def first() -> None:
        with shared.client() as c:
            results.append(c.package("busy"))

    worker = threading.Thread(target=first)
    worker.start()
    try:
        with shared.client() as c:
            eventually(
                lambda: any(w.packaging for w in c.workspaces() if w.name == "busy"),
                30,
                "the first package to be under way",
            )
            refused(lambda: c.package("busy"), 409, "being packaged")
    finally:
        worker.join(120)
    assert len(results) == 1 and isinstance(results[0], EnvironmentVersionView)


def test_roles_shell_states_and_deleting_under_an_open_shell(shared: Cluster) -> None:
    token = Authenticator(prepare_database(shared.host_config()), shared.secret).create_token(
        "bob", "user"
    )
    with shared.client() as admin:
        admin.create_workspace("desk", BASE_IMAGE)
        from kawa.client import KawaClient

        with KawaClient(shared.url, token) as bob:
            refused(lambda: bob.create_workspace("mine"), 403, "admin")
            refused(lambda: bob.package("desk"), 403, "admin")
            refused(lambda: bob.run_script("desk", b"id"), 403, "admin")
            assert "desk" in {w.name for w in bob.workspaces()}
        assert admin.stop_workspace("desk").state == "exited"
        refused(lambda: admin.run_script("desk", b"true"), 409, "kawa container start desk")
        assert admin.start_workspace("desk").state == "running"
        codes: list[int] = []
        shell = threading.Thread(target=lambda: codes.append(admin.run_script("desk", b"sleep 60")))
        shell.start()
        eventually(lambda: any(w.shells for w in admin.workspaces() if w.name == "desk"), 30)
        refused(lambda: admin.delete_workspace("desk"), 409, "1 shell(s) open")
        admin.delete_workspace("desk", force=True)
        shell.join(30)
        assert not shell.is_alive() and codes and codes[0] != 0
        assert "desk" not in {w.name for w in admin.workspaces()}

"""Helpers for the environment tests: runner load records, Docker tags, tiny rootfs."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sqlite3
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors

from kawa.protocol.environments import EnvironmentVersionView
from kawa.protocol.tasks import TaskSpec, TaskView
from tests.integration.cluster import Cluster, eventually


def loads(cluster: Cluster, node: str, image: str) -> tuple[int, str] | None:
    """(times loaded, source of the last load) from the runner's journal."""
    path = cluster.runners[node].data_dir / "journal.sqlite"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT loads, source FROM environments WHERE image = ?", (image,))
        found = row.fetchone()
    return (int(found[0]), str(found[1])) if found else None


def drop_image(client: docker.DockerClient, image: str) -> None:
    """Take the image away from Docker: this machine's runners no longer have it. (The
    containers of tasks that used it are removed just after their end is reported.)"""
    try:
        image_id = client.api.inspect_image(image)["Id"]
    except docker.errors.ImageNotFound:
        return
    eventually(
        lambda: not client.api.containers(all=True, filters={"ancestor": image_id}),
        30,
        f"the containers using {image} to be removed",
    )
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.api.remove_image(image)


def has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.api.inspect_image(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def run(cluster: Cluster, **spec: object) -> list[TaskView]:
    with cluster.client() as c:
        submitted = c.submit(TaskSpec.model_validate(spec))
        return c.wait([t.id for t in submitted.tasks], timeout=180)


def output(cluster: Cluster, task_id: str) -> str:
    with cluster.client() as c:
        return b"".join(c.logs(task_id)).decode()


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_rootfs(path: Path, text: str = "tiny\n", blob: int = 0) -> Path:
    """A root filesystem tar of a few files (nothing runs in it; it imports in a blink);
    ``blob`` random bytes make its tarball longer than one transfer chunk."""
    files = [("etc/hostname", b"tiny\n"), ("srv/marker", text.encode())]
    if blob:
        files.append(("srv/blob", os.urandom(blob)))
    with tarfile.open(path, "w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def host_tarball(cluster: Cluster, v: EnvironmentVersionView) -> Path:
    return cluster.root / "host" / "environments" / f"{v.name}-{v.version}.tar"


def flip_bytes(path: Path, at: int, count: int = 16) -> None:
    with path.open("r+b") as f:
        f.seek(at)
        data = f.read(count)
        f.seek(at)
        f.write(bytes(b ^ 0xFF for b in data))


def flip_padding(path: Path) -> int:
    """Change a byte of the padding after a member's data: the tarball's digest changes
    while every file in it stays the same (Docker alone would load it happily)."""
    with tarfile.open(path) as tar:
        member = next(m for m in tar if m.isfile() and m.size % 512)
        at = member.offset_data + member.size
    flip_bytes(path, at, 1)
    return at


@contextlib.contextmanager
def removing_environments(cluster: Cluster) -> Iterator[None]:
    """On the way out (after the cluster has stopped), remove from Docker the images of
    every version the cluster still keeps (pruned versions the host removed itself)."""
    images: set[str] = set()
    try:
        yield
    finally:
        with contextlib.suppress(Exception), cluster.client() as c:
            images = {v.image for v in c.tarballs()}
    cluster.close()
    with contextlib.closing(docker.from_env()) as client:
        for image in images:
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_image(image, force=True)

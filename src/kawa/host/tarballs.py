"""Environment tarballs on the host: ``docker save`` with a digest, and turning an
uploaded archive (a ``docker save`` archive or a plain root filesystem) into an image.

Every version's tarball is written by :func:`save` from an image tagged
``kawa-env/NAME:VERSION``, so loading it anywhere yields exactly that tag.
"""

from __future__ import annotations

import contextlib
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors

from kawa.digests import CHUNK, Sha256
from kawa.host.errors import BadRequest

Step = Callable[[int, int | None], None]
"""Progress of one phase: ``(bytes done, bytes expected or None)``."""


def save(client: docker.DockerClient, image: str, dest: Path, step: Step) -> tuple[str, int]:
    """``docker save image`` to ``dest`` (atomically), hashing as it goes; (digest, size)."""
    expected = client.api.inspect_image(image).get("Size")
    partial = dest.with_name(dest.name + ".partial")
    digest, size = Sha256(), 0
    try:
        with partial.open("wb") as f:
            for chunk in client.api.get_image(image, chunk_size=CHUNK):
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                step(size, expected)
            f.flush()
            os.fsync(f.fileno())
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    return digest.text(), size


class ArchiveKind:
    DOCKER = "docker-archive"
    ROOTFS = "rootfs"


def inspect(path: Path) -> tuple[str, list[str]]:
    """What an uploaded file is: (kind, detail). For a ``docker save`` archive (it has
    ``manifest.json``, or the older ``repositories``, at its top) the detail is its one
    image's RepoTags; for any other tar (a root filesystem) the command to give the
    image. Not a tar: BadRequest."""
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {m.name.removeprefix("./"): m for m in tar}
            if "manifest.json" in members:
                f = tar.extractfile(members["manifest.json"])
                manifest = json.load(f) if f is not None else []
                if not isinstance(manifest, list) or len(manifest) != 1:
                    count = len(manifest) if isinstance(manifest, list) else "no"
                    raise BadRequest(f"the archive holds {count} images; import one at a time")
                return ArchiveKind.DOCKER, list(manifest[0].get("RepoTags") or [])
            if "repositories" in members:
                return ArchiveKind.DOCKER, []
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise BadRequest(
            f"not a tar archive ({exc}): import a `docker save` archive or a root filesystem tar"
        ) from None
    if not members:
        raise BadRequest("the tar archive is empty")
    bash = {"bin/bash", "usr/bin/bash"} & members.keys()
    return ArchiveKind.ROOTFS, ["/bin/bash"] if bash else ["/bin/sh"]


def load_archive(client: docker.DockerClient, path: Path, repo_tags: list[str], step: Step) -> str:
    """``docker load`` a one-image archive; its image id. Tags the load would move on
    this Docker (the archive's RepoTags) are put back as they were."""
    before: dict[str, str | None] = {}
    for tag in repo_tags:
        try:
            before[tag] = client.api.inspect_image(tag)["Id"]
        except docker.errors.ImageNotFound:
            before[tag] = None
    size = path.stat().st_size
    with path.open("rb") as f:
        output = _docker_output(client.api.load_image(_Counting(f, size, step)))
    loaded = [line.split(":", 1)[1].strip() for line in output if line.startswith("Loaded image")]
    ids = {str(client.api.inspect_image(name)["Id"]) for name in loaded}
    if len(ids) != 1:
        raise BadRequest(f"docker load did not yield one image: {' '.join(output)[:300]}")
    image_id = ids.pop()
    for tag, old in before.items():
        with contextlib.suppress(docker.errors.APIError):
            if old is None:
                client.api.remove_image(tag, noprune=True)
            elif old != image_id:
                repo, _, name = tag.rpartition(":")
                client.api.tag(old, repo, name, force=True)
    return image_id


def import_rootfs(
    client: docker.DockerClient, path: Path, command: list[str], ref: str, step: Step
) -> str:
    """``docker import`` a root filesystem tar as image ``ref``; its image id."""
    repo, _, tag = ref.rpartition(":")
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            client.api.import_image_from_data(
                _Counting(f, size, step),
                repository=repo,
                tag=tag,
                changes=[f"CMD {json.dumps(command)}"],
            )
    except docker.errors.APIError as exc:
        detail = exc.explanation or exc
        raise BadRequest(f"docker could not import the root filesystem: {detail}") from None
    return str(client.api.inspect_image(ref)["Id"])


def _docker_output(stream: Any) -> list[str]:
    lines = []
    for item in stream:
        if not isinstance(item, dict):
            continue
        if item.get("error") or item.get("errorDetail"):
            raise BadRequest(f"docker refused the archive: {item.get('error') or item}")
        text = str(item.get("stream", "")).strip()
        if text:
            lines.append(text)
    return lines


class _Counting:
    """A readable file that reports how far it has been read (requests streams it)."""

    def __init__(self, f: IO[bytes], size: int, step: Step) -> None:
        self._f, self._size, self._step, self._done = f, size, step, 0
        self.len = size  # lets requests send a Content-Length

    def read(self, n: int = -1) -> bytes:
        chunk = self._f.read(CHUNK if n is None or n < 0 else max(n, CHUNK))
        self._done += len(chunk)
        self._step(self._done, self._size)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

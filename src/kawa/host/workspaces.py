"""Workspace containers on the host's Docker, where environments are prepared.

A workspace is a long-lived container labelled ``kawa.cluster=<id>`` and
``kawa.workspace=<name>``, kept alive by a shell loop that exits on SIGTERM. Packaging
commits it with the source image's own entrypoint, command and no Kawa labels, so
tasks run the committed image exactly as they would run the source image.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.utils.socket import frames_iter

from kawa.host.errors import BadRequest, Conflict, NotFound
from kawa.protocol.environments import WorkspaceView

LABEL_CLUSTER, LABEL_WORKSPACE, LABEL_SOURCE = "kawa.cluster", "kawa.workspace", "kawa.source"
KEEPALIVE = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"
Output = Callable[[str, bytes], None]
"""Receives ``("stdout" | "stderr", bytes)`` as a command in a workspace writes."""


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)


class Workspaces:
    def __init__(self, client: Callable[[], docker.DockerClient], cluster_id: str) -> None:
        self._client = client
        self.cluster_id = cluster_id

    @property
    def docker(self) -> docker.DockerClient:
        return self._client()

    def container_name(self, name: str) -> str:
        return f"kawa-ws-{self.cluster_id}-{name}"

    # -- reading --------------------------------------------------------------------
    def find(self, name: str) -> Container | None:
        labels = [f"{LABEL_CLUSTER}={self.cluster_id}", f"{LABEL_WORKSPACE}={name}"]
        found = self.docker.containers.list(all=True, filters={"label": labels})
        return found[0] if found else None

    def get(self, name: str) -> Container:
        container = self.find(name)
        if container is None:
            raise NotFound(f"no workspace named {name!r}; `kawa container list` shows them")
        return container

    def all(self) -> list[Container]:
        found = self.docker.containers.list(
            all=True, filters={"label": [f"{LABEL_CLUSTER}={self.cluster_id}", LABEL_WORKSPACE]}
        )
        # a committed image carries an empty workspace label: its task containers are not ours
        return sorted(
            (c for c in found if c.labels.get(LABEL_WORKSPACE)),
            key=lambda c: c.labels[LABEL_WORKSPACE],
        )

    def shells(self, container: Container) -> int:
        """How many commands (``docker exec``) are running in the container now."""
        running = 0
        for exec_id in container.attrs.get("ExecIDs") or []:
            with contextlib.suppress(docker.errors.NotFound):
                running += bool(self.docker.api.exec_inspect(exec_id).get("Running"))
        return running

    def view(self, container: Container, packaging: bool = False) -> WorkspaceView:
        created = container.attrs.get("Created", "")
        return WorkspaceView(
            name=container.labels[LABEL_WORKSPACE],
            state=container.status,
            image=container.labels.get(LABEL_SOURCE, ""),
            container_id=(container.id or "")[:12],
            created_at=datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00")
            if created
            else None,
            packaging=packaging,
            shells=self.shells(container),
        )

    # -- lifecycle ------------------------------------------------------------------
    def _image(self, image: str) -> None:
        try:
            self.docker.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        try:
            self.docker.images.pull(image)
        except docker.errors.APIError as exc:
            raise BadRequest(
                f"image {image!r} is not in the host's Docker and could not be pulled "
                f"({_explain(exc)}); import one with `kawa container import` or build one "
                "with `kawa container bootstrap`"
            ) from None

    def create(self, name: str, image: str) -> Container:
        if self.find(name) is not None:
            raise Conflict(f"workspace {name!r} exists already")
        self._image(image)
        try:
            container = self.docker.containers.run(
                image,
                entrypoint=["/bin/sh", "-c", KEEPALIVE],
                command=[],
                name=self.container_name(name),
                hostname=name,
                labels={
                    LABEL_CLUSTER: self.cluster_id,
                    LABEL_WORKSPACE: name,
                    LABEL_SOURCE: image,
                },
                restart_policy={"Name": "unless-stopped"},
                detach=True,
            )
            container.reload()
            return container
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise Conflict(f"workspace {name!r} exists already") from None
            detail = _explain(exc)
            raise BadRequest(f"docker could not create workspace {name!r}: {detail}") from None

    def start(self, name: str) -> Container:
        container = self.get(name)
        try:
            container.start()
        except docker.errors.APIError as exc:
            raise Conflict(f"docker could not start workspace {name!r}: {_explain(exc)}") from None
        container.reload()
        return container

    def stop(self, name: str) -> Container:
        container = self.get(name)
        try:
            container.stop(timeout=10)
        except docker.errors.APIError as exc:
            raise Conflict(f"docker could not stop workspace {name!r}: {_explain(exc)}") from None
        container.reload()
        return container

    def delete(self, name: str, force: bool) -> None:
        container = self.get(name)
        open_shells = self.shells(container)
        if open_shells and not force:
            raise Conflict(
                f"workspace {name!r} has {open_shells} shell(s) open; close them first, "
                "or delete with --force (they are cut off)"
            )
        container.remove(force=True)

    # -- packaging ------------------------------------------------------------------
    def commit(self, name: str, repository: str, tag: str) -> str:
        """Commit the workspace as ``repository:tag``; the image id."""
        container = self.get(name)
        source: dict[str, Any] = self.docker.api.inspect_image(container.attrs["Image"])["Config"]
        entrypoint = source.get("Entrypoint") or []
        cmd = source.get("Cmd") or ([] if entrypoint else ["/bin/sh"])
        conf = {
            "Entrypoint": entrypoint,
            "Cmd": cmd,
            "Labels": {LABEL_CLUSTER: "", LABEL_WORKSPACE: "", LABEL_SOURCE: ""},
        }
        image = container.commit(repository=repository, tag=tag, conf=conf)
        return str(image.id)

    # -- scripted shell -------------------------------------------------------------
    def exec(self, name: str, stdin: bytes, command: str | None, output: Output) -> int:
        """Run ``command`` (default: a shell reading the script from stdin) with ``stdin``
        in the running workspace, passing its output on; its exit status."""
        container = self.get(name)
        container.reload()
        if container.status != "running":
            raise Conflict(
                f"workspace {name!r} is {container.status}; `kawa container start {name}` first"
            )
        argv = ["/bin/sh", "-c", command] if command else ["/bin/sh", "-s"]
        api = self.docker.api
        exec_id = api.exec_create(container.id, argv, stdin=True, stdout=True, stderr=True)["Id"]
        sock = api.exec_start(exec_id, socket=True)
        raw = getattr(sock, "_sock", sock)

        def feed() -> None:
            with contextlib.suppress(OSError):
                raw.sendall(stdin)
                raw.shutdown(socket.SHUT_WR)

        writer = threading.Thread(target=feed, name=f"exec-stdin-{name}", daemon=True)
        writer.start()
        try:
            for stream, data in frames_iter(sock, tty=False):
                output("stderr" if stream == 2 else "stdout", data)
        finally:
            writer.join(5)
            sock.close()
            raw.close()
        deadline = time.monotonic() + 10
        while True:  # the exit code lands a moment after the output ends
            state = api.exec_inspect(exec_id)
            if not state.get("Running") or time.monotonic() > deadline:
                code = state.get("ExitCode")
                return -1 if code is None else int(code)
            time.sleep(0.01)

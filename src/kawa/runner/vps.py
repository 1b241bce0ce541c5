"""VPS containers: a persistent container whose main process is the image's sshd.

The entrypoint is a fixed script (sshd with one ed25519 host key, generated at the first
start when the image has none); the public key reaches it through the environment
variable ``KAWA_SSH_KEY`` and is written with ``printf '%s'``, so no key text is ever
part of a shell command line. A stopped VPS keeps its container (a restart reuses it);
``snapshot`` commits it to ``kawa-vps/<task>:<timestamp>`` and a restart without the
container starts from the newest snapshot; removing a VPS removes its snapshots too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from kawa.core.task_states import TaskKind
from kawa.protocol.runner_api import RunTask
from kawa.runner.executor import StartError

log = logging.getLogger(__name__)

SSHD = "/usr/sbin/sshd"
SNAPSHOT_REPO = "kawa-vps"
KEEP_SNAPSHOTS = 3
KIND_LABEL = "kawa.kind"

ENTRYPOINT = r"""set -e
if [ ! -x /usr/sbin/sshd ]; then
  echo "kawa: this image has no /usr/sbin/sshd; a VPS needs openssh-server in its environment" >&2
  exit 127
fi
mkdir -p /run/sshd /root/.ssh
chmod 700 /root/.ssh
hostkey=/etc/ssh/ssh_host_ed25519_key
[ -s "$hostkey" ] || ssh-keygen -q -t ed25519 -N '' -f "$hostkey"
if [ -n "${KAWA_SSH_KEY:-}" ]; then
  printf '%s\n' "$KAWA_SSH_KEY" > /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
  exec /usr/sbin/sshd -D -e -h "$hostkey" -o PermitRootLogin=prohibit-password \
    -o PasswordAuthentication=no
fi
passwd -d root >/dev/null 2>&1 || true
exec /usr/sbin/sshd -D -e -h "$hostkey" -o PermitRootLogin=yes -o PermitEmptyPasswords=yes \
  -o PasswordAuthentication=yes
"""
"""The VPS's sshd serves one ed25519 host key, made at its first start if the image has
none: a few milliseconds, where ``ssh-keygen -A`` also makes RSA and ECDSA keys (0.3 to 1 s
on two cores)."""


def is_vps(order: RunTask) -> bool:
    return order.kind is TaskKind.VPS


def is_vps_container(container: Container) -> bool:
    """By label; safe on a sparse model (one made from an id only: no labels known)."""
    labels = (container.attrs.get("Config") or {}).get("Labels") or {}
    return bool(labels.get(KIND_LABEL) == TaskKind.VPS.value)


def snapshot_repo(task_id: str) -> str:
    return f"{SNAPSHOT_REPO}/{task_id}"


def adjust_args(args: dict[str, Any], order: RunTask) -> dict[str, Any]:
    """Turn command-task ``create`` arguments into a VPS's."""
    env = dict(args.get("environment") or {})
    env.pop("KAWA_SSH_KEY", None)
    if order.ssh_key:
        env["KAWA_SSH_KEY"] = order.ssh_key
    args.update(
        entrypoint=["/bin/sh", "-c", ENTRYPOINT],
        command=[],
        environment=env,
        network_mode="bridge",
        restart_policy={"Name": "unless-stopped"},
        working_dir=None,
    )
    return args


def newest_snapshot(client: docker.DockerClient, task_id: str) -> str | None:
    images = client.images.list(name=snapshot_repo(task_id))
    tags = sorted(t for image in images for t in image.tags)
    return tags[-1] if tags else None


def remove_snapshots(client: docker.DockerClient, task_id: str) -> None:
    """Remove every ``kawa-vps/<task>`` snapshot image."""
    repo = snapshot_repo(task_id)
    for image in client.images.list(name=repo):
        for tag in image.tags:
            if tag.startswith(repo + ":"):
                with contextlib.suppress(docker.errors.NotFound):
                    client.images.remove(tag)


def existing_container(client: docker.DockerClient, name: str) -> Container | None:
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def check_sshd(client: docker.DockerClient, container: Container, image: str) -> None:
    """StartError unless the (created, not yet started) container has an sshd."""
    try:
        stream, _ = client.api.get_archive(container.id, SSHD)
        for _chunk in stream:  # drain the small tar so the connection is reusable
            pass
    except docker.errors.NotFound:
        raise StartError(
            f"image {image} has no {SSHD}: a VPS needs openssh-server in its environment"
        ) from None


def stop(container: Container) -> None:
    """Stop (not remove) the container; Docker's restart policy leaves it stopped."""
    try:
        container.reload()
        if container.status == "paused":
            container.unpause()
        container.stop(timeout=5)
    except docker.errors.APIError as exc:
        if exc.status_code not in (404, 409):
            raise


def snapshot(client: docker.DockerClient, container: Container, task_id: str) -> str:
    """Commit the container; keep the newest :data:`KEEP_SNAPSHOTS`. Returns the tag."""
    tag = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + f"{int(time.time() * 1000) % 1000:03d}"
    repo = snapshot_repo(task_id)
    container.commit(repository=repo, tag=tag, pause=True)
    tags = sorted(
        t for image in client.images.list(name=repo) for t in image.tags if t.startswith(repo)
    )
    for old in tags[:-KEEP_SNAPSHOTS]:
        try:
            client.images.remove(old, noprune=False)
        except docker.errors.APIError as exc:
            log.warning("cannot remove old snapshot %s: %s", old, exc)
    return f"{repo}:{tag}"

"""What the SSH gateway asks of the host about VPSs, as a protocol the host's task
service fulfils (the gateway never reads the database itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kawa.core.task_states import TaskState


@dataclass(frozen=True)
class VpsAccess:
    """What the SSH gateway needs of a VPS: which it is, whether it runs, the public
    key it was created with and the URL of its node's runner (None: not placed)."""

    task_id: str
    state: TaskState
    ssh_key: str | None
    node_url: str | None


class VpsDirectory(Protocol):
    """Looks VPSs up for the gateway."""

    def vps_has_key(self, key_type: str, key_data: str) -> bool:
        """Whether any VPS was created with this public key."""
        ...

    def vps_access(self, ref: str) -> VpsAccess | None:
        """The VPS ``ref`` names (id, unique id prefix, ``kawa-<id>`` or name), if any."""
        ...

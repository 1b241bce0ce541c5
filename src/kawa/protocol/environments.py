"""Container environments: workspaces on the host, packaged versions, transfers."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from kawa.protocol import bounds as b
from kawa.protocol.common import WireModel

DIGEST_HEADER = "X-Kawa-Digest"
VERSION_HEADER = "X-Kawa-Version"


class WorkspaceCreate(WireModel):
    name: b.EnvironmentName
    image: b.ImageName | None = Field(default=None, description="local image; default: the host's")


class WorkspaceView(WireModel):
    """A workspace container on the host, where an environment is prepared."""

    name: str
    state: str
    """Docker's state: ``running``, ``exited``, ``paused``, ``created``…"""
    image: str
    container_id: str
    created_at: datetime | None
    packaging: bool = False
    shells: int = 0
    """Commands running in it now (scripted or interactive shells)."""


class EnvironmentVersionView(WireModel):
    """One packaged version: its tarball and the image it loads as."""

    name: str
    version: str
    digest: str
    """``sha256:<hex>`` of the tarball."""
    size: int
    image: str
    created_at: datetime
    newest: bool = False


class Progress(WireModel):
    """One line of a long operation's NDJSON answer (package, import, bootstrap).

    The last line carries either ``result`` or ``error`` (with the HTTP status the
    error would have had, had it been known before the answer started)."""

    phase: str
    done: int = 0
    total: int | None = None
    result: EnvironmentVersionView | None = None
    error: str | None = None
    status: int | None = None


class ExecFrame(WireModel):
    """One line of a scripted shell's NDJSON answer: output, then the exit status."""

    stream: str
    """``stdout`` | ``stderr`` | ``exit``"""
    data: str = ""
    """base64 of the bytes (``stdout``/``stderr``)."""
    exit_code: int | None = None
    error: str | None = None
    """Set (with ``stream="exit"``) when the command could not be run to its end."""


class SyncProgress(WireModel):
    """Runner -> host: how far the environment the given tasks wait for has got."""

    node: b.NodeName
    tasks: list[b.TaskIdText] = Field(max_length=b.MAX_LIST)
    text: b.Text | None
    """e.g. ``syncing environment py312@20261121T184501Z, 63%``; None when done."""

"""The host's event stream (WebSocket ``/api/v1/events``)."""

from __future__ import annotations

from typing import Literal

from kawa.protocol.common import WireModel
from kawa.protocol.nodes import NodeView
from kawa.protocol.tasks import TaskView


class Event(WireModel):
    seq: int
    type: Literal["task", "node", "hello"]
    task: TaskView | None = None
    node: NodeView | None = None

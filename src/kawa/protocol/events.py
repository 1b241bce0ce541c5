"""The host's event stream (WebSocket ``/api/v1/events``).

The first message is ``hello``, whose ``seq`` is the last event published before the
subscription. With ``?after=SEQ`` the host then replays the kept events after SEQ
(those the caller may see) before live ones; when it no longer has them all (SEQ fell
out of its ring, or comes from an earlier host process) it sends one ``reset`` event,
whose ``seq`` is the current one, and the client re-reads the state it shows.
"""

from __future__ import annotations

from typing import Literal

from kawa.protocol.common import WireModel
from kawa.protocol.nodes import NodeView
from kawa.protocol.tasks import TaskView


class Event(WireModel):
    seq: int
    type: Literal["task", "node", "hello", "reset"]
    task: TaskView | None = None
    node: NodeView | None = None

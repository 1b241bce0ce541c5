"""``kawa top``: the cluster on one live screen (a Textual app; ``q`` quits).

Top: each node with its status and bars for CPU, memory, every NUMA zone and every GPU.
Below: running tasks and VPSs with who holds them and what, then the queue with each
task's waiting reason. Driven by the host's event stream: the node list and the live
tasks are read when the stream is (re)joined, then every task and node event updates
them; nothing is polled. Textual redraws only what changed (no flicker).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from kawa.cli.output import STATE_STYLE, human_bytes, visible

if TYPE_CHECKING:
    from kawa.client import KawaClient
    from kawa.protocol.nodes import NodeView
    from kawa.protocol.tasks import TaskView

LIVE = ["pending", "assigning", "running", "paused", "lost"]
BAR = 8


def bar(fraction: float | None, width: int = BAR) -> Text:
    """``[████░░░░]  42%`` (coloured by how full), or blanks when unknown."""
    if fraction is None:
        return Text(" " * (width + 7) + "-")
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    style = "red" if fraction > 0.9 else "yellow" if fraction > 0.7 else "green"
    text = Text("[")
    text.append("█" * filled, style=style)
    text.append("░" * (width - filled), style="dim")
    text.append(f"] {fraction * 100:3.0f}%")
    return text


def node_table(nodes: list[NodeView]) -> Table:
    t = Table(box=None, pad_edge=False, expand=True, header_style="bold")
    longest = max([len(visible(n.name)) for n in nodes] + [4])
    t.add_column("NODE", no_wrap=True, min_width=min(longest, 16), overflow="ellipsis")
    t.add_column("STATUS", no_wrap=True, min_width=7)
    t.add_column("CPU", no_wrap=True, min_width=BAR + 12)
    t.add_column("MEMORY", no_wrap=True, min_width=BAR + 11)
    t.add_column("NUMA / GPU", ratio=1, no_wrap=True, overflow="ellipsis")  # one a line
    for n in sorted(nodes, key=lambda n: n.name):
        usage = n.usage
        cores = n.inventory.cores or 1
        cpu = bar(usage.cpu_percent / 100 if usage else n.held.cores / cores)
        cpu.append(f" {n.held.cores}/{n.inventory.cores}c")
        memory = bar(usage.memory_percent / 100 if usage else None)
        memory.append(f" {human_bytes(n.inventory.memory)}")
        status = Text(n.status.value, style=STATE_STYLE.get(n.status.value, ""))
        items: list[Text] = []
        for z in usage.numa if usage else []:
            percent = None if z.cpu_percent is None else z.cpu_percent / 100
            items.append(Text(f"numa{z.id} ").append_text(bar(percent, 6)))
        gpus = usage.gpus if usage and usage.gpus else n.inventory.gpus
        for g in gpus:
            util = None if g.utilization is None else g.utilization / 100
            items.append(Text(f"gpu{g.index}  ").append_text(bar(util, 6)))
        parts = Text("\n").join(items)
        t.add_row(Text(visible(n.name)), status, cpu, memory, parts)
    return t


def task_table(tasks: list[TaskView], queued: bool) -> Table:
    t = Table(box=None, pad_edge=False, expand=True, header_style="bold")
    last = "WAITING FOR" if queued else "COMMAND"
    for column in ("ID", "KIND", "OWNER", "STATE", "NODE", "HOLDS", last):
        t.add_column(column, no_wrap=True, overflow="ellipsis", ratio=3 if column == last else None)
    for task in tasks:
        holds = f"{task.cores}c {human_bytes(task.memory)}"
        if task.gpu_ids:
            holds += " gpu" + ",".join(map(str, task.gpu_ids))
        state = Text(task.state.value, style=STATE_STYLE.get(task.state.value, ""))
        tail = task.waiting_reason if queued else (task.name or " ".join(task.command))
        t.add_row(
            task.id[-8:],
            task.kind.value,
            Text(visible(task.owner)),
            state,
            Text(visible(task.node or "-")),
            holds,
            Text(visible(tail or "-")),
        )
    return t


class TopApp(App[None]):
    """The live view; ``feed`` runs in a thread and hands each change to the app."""

    CSS = """
    Screen { layout: vertical; }
    .title { background: $boost; text-style: bold; }
    #nodes { height: auto; max-height: 50%; }
    """
    BINDINGS = [Binding("q", "quit", "Quit"), Binding("ctrl+c", "quit", "Quit", show=False)]

    def __init__(self, client: KawaClient) -> None:
        super().__init__()
        self.client = client
        self.nodes: dict[str, NodeView] = {}
        self.tasks: dict[str, TaskView] = {}
        self.problem = ""
        self._stop = threading.Event()

    def compose(self) -> ComposeResult:
        yield Static("kawa top: connecting…", id="status", classes="title")
        yield Static(id="nodes")
        yield Static("running", classes="title")
        with VerticalScroll():
            yield Static(id="running")
            yield Static("queue", classes="title")
            yield Static(id="queue")

    def on_mount(self) -> None:
        threading.Thread(target=self.feed, name="kawa-top-events", daemon=True).start()

    def feed(self) -> None:
        from kawa.client.errors import KawaError

        try:
            for event in self.client.follow_events(tick=1.0):
                if self._stop.is_set():
                    return
                if event is None:
                    continue
                if event.type == "hello":  # (re)joined: read the whole picture again
                    nodes = self.client.nodes()
                    tasks = self.client.tasks(LIVE, limit=10_000)
                    self.call_from_thread(self.reset, nodes, tasks)
                elif event.task is not None:
                    self.call_from_thread(self.task_changed, event.task)
                elif event.node is not None:
                    self.call_from_thread(self.node_changed, event.node)
        except KawaError as exc:
            if not self._stop.is_set():
                self.call_from_thread(self.failed, exc.message)
        except RuntimeError:  # the app ended meanwhile
            return

    def reset(self, nodes: list[NodeView], tasks: list[TaskView]) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.tasks = {t.id: t for t in tasks}
        self.problem = ""
        self.redraw()

    def task_changed(self, task: TaskView) -> None:
        if task.state.value in LIVE:
            self.tasks[task.id] = task
        else:
            self.tasks.pop(task.id, None)
        self.redraw()

    def node_changed(self, node: NodeView) -> None:
        self.nodes[node.name] = node
        self.redraw()

    def failed(self, message: str) -> None:
        self.problem = message
        self.redraw()

    def running(self) -> list[TaskView]:
        return [t for t in self.tasks.values() if t.state.value not in ("pending", "assigning")]

    def queued(self) -> list[TaskView]:
        waiting = [t for t in self.tasks.values() if t.state.value in ("pending", "assigning")]
        return sorted(waiting, key=lambda t: (-t.priority, int(t.id)))

    def redraw(self) -> None:
        running, queued = self.running(), self.queued()
        online = sum(n.status.value == "online" for n in self.nodes.values())
        summary = (
            f"kawa top: {online}/{len(self.nodes)} nodes online, {len(running)} running, "
            f"{len(queued)} queued   (q quits)"
        )
        if self.problem:
            summary += f"   {visible(self.problem)}"
        self.query_one("#status", Static).update(Text(summary))
        self.query_one("#nodes", Static).update(node_table(list(self.nodes.values())))
        self.query_one("#running", Static).update(task_table(running, queued=False))
        self.query_one("#queue", Static).update(task_table(queued, queued=True))

    def on_unmount(self) -> None:
        self._stop.set()


def top() -> None:
    """Live cluster view: nodes, running tasks and VPSs, the queue (q quits).

    Nodes with CPU, memory, per-NUMA and per-GPU bars; tasks and VPSs with their owners
    and what they hold; queued tasks with the scheduler's waiting reason.
    """
    from kawa.cli.context import client

    c = client()
    try:
        TopApp(c).run()
    finally:
        c.close()

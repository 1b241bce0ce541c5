"""``kawa run [OPTIONS] -- CMD ARGS…``: a task as if it ran here.

It submits the command (with every option of ``kawa task submit``), then writes the
task's standard output to ours and its standard error to ours, byte for byte from the
first one, while it runs (after it waited in the queue, if it had to), and exits with
the task's exit code. While the task waits, a one-line ``waiting: REASON`` status is
shown on a terminal. Ctrl-C kills the task (exit code 130); ``--detach`` prints the id
and leaves it running; several targets prefix every line with the task's node. With
``-it`` the command runs in a terminal joined to ours, as ``kawa connect`` does.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kawa.cli import tasks
from kawa.cli.command_line import after_dashes
from kawa.cli.output import CliError, visible
from kawa.cli.run_output import (
    BROKEN_PIPE,
    LOST_CONTACT,
    STARTED,
    UNSTARTED,
    Status,
    sink,
    waiting_line,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from kawa.client import KawaClient
    from kawa.protocol.tasks import TaskView

class Prefixed:
    """Whole lines of one task's stream, each after ``prefix``, written under a shared lock
    so lines of several tasks never mix; a last line without a newline gets one."""

    def __init__(self, prefix: bytes, write: Callable[[bytes], None], lock: threading.Lock):
        self.prefix, self.write, self.lock = prefix, write, lock
        self.rest = b""

    def __call__(self, data: bytes) -> None:
        *lines, self.rest = (self.rest + data).split(b"\n")
        if lines:
            out = b"".join(self.prefix + line + b"\n" for line in lines)
            with self.lock:
                self.write(out)

    def close(self) -> None:
        if self.rest:
            with self.lock:
                self.write(self.prefix + self.rest + b"\n")
            self.rest = b""


class Output:
    """The two log streams of one started task, each followed by a thread from byte 0;
    ``error`` holds why one stopped early (the host became unreachable, our output
    closed)."""

    def __init__(self, c: KawaClient, task_id: str, sinks: dict[str, Callable[[bytes], None]]):
        self.task_id = task_id
        self.error: BaseException | None = None
        self.threads = [
            threading.Thread(
                target=self._pump, args=(c, stream, sink), name=f"{stream}-{task_id}", daemon=True
            )
            for stream, sink in sinks.items()
        ]
        for t in self.threads:
            t.start()

    def _pump(self, c: KawaClient, stream: str, sink: Callable[[bytes], None]) -> None:
        try:
            for chunk in c.logs(self.task_id, stream, follow=True):
                sink(chunk)
            close = getattr(sink, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            self.error = exc

    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)


def _waiting(views: dict[str, TaskView]) -> str:
    queued = [t for t in views.values() if t.state.value in UNSTARTED]
    if not queued:
        return ""
    reason = queued[0].waiting_reason or queued[0].state.value
    return waiting_line(visible(reason), len(queued), len(views))


def _prefixes(views: list[TaskView]) -> dict[str, bytes]:
    """``node2 | `` per task, padded to one width; the task id joins the node where one
    node runs several of them."""
    names = [t.node or t.target or t.id for t in views]
    labels = [f"{n}/{t.id}" if names.count(n) > 1 else n for n, t in zip(names, views, strict=True)]
    width = max(len(label) for label in labels)
    return {
        t.id: f"{visible(label):<{width}} | ".encode()
        for label, t in zip(labels, views, strict=True)
    }


def follow(c: KawaClient, submitted: list[TaskView]) -> list[TaskView]:
    """Stream the tasks' output until they end; their final views (in submitted order)."""
    ids = [t.id for t in submitted]
    views = {t.id: t for t in submitted}
    outputs: dict[str, Output] = {}
    status = Status()
    lock = threading.Lock()
    out, err = sink(sys.stdout.fileno()), sink(sys.stderr.fileno())
    several = len(ids) > 1

    def start(t: TaskView) -> None:
        if several:
            prefix = _prefixes([views[i] for i in ids])[t.id]
            sinks: dict[str, Callable[[bytes], None]] = {
                "stdout": Prefixed(prefix, out, lock),
                "stderr": Prefixed(prefix, err, lock),
            }
        else:
            sinks = {"stdout": out, "stderr": err}
        outputs[t.id] = Output(c, t.id, sinks)

    def settled() -> bool:
        """Start the output of every task that started; True once none can start any more."""
        for i in ids:
            t = views[i]
            if i in outputs or t.state.value in UNSTARTED:
                continue
            if t.state.value in STARTED or t.started_at is not None or t.exit_code is not None:
                status.clear()
                start(t)
        return all(i in outputs or views[i].state.value not in UNSTARTED for i in ids)

    def ready() -> bool:
        if several:  # prefixes are padded to every task's node: start all at once
            placed = all(views[i].state.value not in UNSTARTED for i in ids)
            return placed and settled()
        return settled()

    if not ready():
        for event in c.follow_events(tick=1.0):
            if event is None:
                pass
            elif event.type == "hello":  # (re)subscribed: read what may have been missed
                for i in ids:
                    if i not in outputs:
                        views[i] = c.task(i)
            elif event.task is not None and event.task.id in views and event.task.id not in outputs:
                views[event.task.id] = event.task
            if ready():
                break
            status.show(_waiting(views))
    status.clear()
    for o in outputs.values():
        while o.alive():
            for t in o.threads:
                t.join(0.5)
            _check(o)
        _check(o)
    from kawa.core.task_states import WAIT_DONE_STATES

    final = [c.task(i) for i in ids]  # usually final already: no second subscription
    if all(t.state in WAIT_DONE_STATES for t in final):
        return final
    return c.wait(ids)


def _check(o: Output) -> None:
    if o.error is None:
        return
    if isinstance(o.error, BrokenPipeError):
        raise o.error
    from kawa.client.errors import KawaError

    if isinstance(o.error, KawaError):
        raise CliError(f"{o.error.message} (task {o.task_id} keeps running)", LOST_CONTACT)
    raise o.error


def _kill(c: KawaClient, ids: list[str]) -> None:
    """Kill the tasks not yet ended and wait (briefly) until they are."""
    from kawa.client.errors import KawaError
    from kawa.protocol.tasks import TaskAction

    for i in ids:
        try:
            c.act(i, TaskAction.KILL)
        except KawaError:
            continue  # ended meanwhile
        print(f"kawa run: killed task {i}", file=sys.stderr, flush=True)
    with contextlib.suppress(KawaError):
        c.wait(ids, timeout=15)


def _report(final: list[TaskView]) -> None:
    from kawa.cli.failures import failure_line

    for t in final:
        line = failure_line(t)
        if line:
            who = f"task {t.id}" + (f" on {visible(t.node)}" if t.node else "")
            print(f"kawa run: {who}: {line}", file=sys.stderr, flush=True)


# Interactive runs: the task's own process waits for the terminal's exit code on a FIFO,
# so the task ends as the terminal's command does, with its code.
_KEEPER = (
    'f=/tmp/.kawa-run-"$KAWA_TASK_ID"; mkfifo "$f" || exit 125; '
    'read code < "$f"; rm -f "$f"; exit "${code:-1}"'
)
_TERMINAL = (
    'f=/tmp/.kawa-run-{id}; while [ ! -p "$f" ]; do sleep 0.05; done; '
    '"$@"; code=$?; echo "$code" > "$f"; exit "$code"'
)


def _interactive(c: KawaClient, t: TaskView, command: list[str]) -> int:
    from kawa.cli.streams import _run
    from kawa.client.terminal import run_terminal

    views = {t.id: t}
    status = Status()
    if t.state.value in UNSTARTED:
        for event in c.follow_events(tick=1.0):
            if event is None:
                pass
            elif event.type == "hello":
                views[t.id] = c.task(t.id)
            elif event.task is not None and event.task.id == t.id:
                views[t.id] = event.task
            if views[t.id].state.value not in UNSTARTED:
                break
            status.show(_waiting(views))
    status.clear()
    if views[t.id].state.value not in STARTED:
        final = c.wait([t.id])
        _report(final)
        return tasks.exit_code_of(final)
    argv = ["/bin/sh", "-c", _TERMINAL.format(id=t.id), "sh", *command]
    ca = None if c.ca_file is None else str(c.ca_file)
    code = _run(run_terminal(c.url, c.token, t.id, argv, ca_file=ca))
    final = c.wait([t.id], timeout=30)
    _report(final)
    return int(code) & 0xFF if code is not None else tasks.exit_code_of(final)


def run(
    ctx: typer.Context,
    detach: bool = False,
    interactive: bool = False,
    tty: bool = False,
    **options: Any,
) -> None:
    """Run a command on the cluster as if here: kawa run [OPTIONS] -- CMD ARGS…

    Its output streams to this terminal as it runs; the exit code is the task's.
    Ctrl-C kills the task. Several --target: each line is prefixed with its node.
    """
    from kawa.cli.context import client

    command = after_dashes(ctx)
    if command is None:
        raise CliError("put the command after --: kawa run [OPTIONS] -- CMD ARGS…", 2)
    if interactive != tty:
        raise CliError("-i and -t go together (-it): a terminal joined to this one", 2)
    if tty and (detach or len(options.get("target") or []) > 1 or options.get("sweep")):
        raise CliError("-it runs one task in this terminal: no --detach, batch or --sweep", 2)
    if tty and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CliError("-it needs a terminal on standard input and output", 2)
    if tty:
        tasks.task_spec(command, **options)  # the user's command is checked as given
        spec = tasks.task_spec(["/bin/sh", "-c", _KEEPER], **options)
    else:
        spec = tasks.task_spec(command, **options)
    with client() as c:
        submitted = c.submit(spec).tasks
        ids = [t.id for t in submitted]
        if detach:
            for t in submitted:
                print(t.id)
            return
        try:
            if tty:
                raise typer.Exit(_interactive(c, submitted[0], command))
            final = follow(c, submitted)
        except KeyboardInterrupt:
            Status().clear()
            _kill(c, ids)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            _kill(c, ids)
            raise typer.Exit(BROKEN_PIPE) from None
    _report(final)
    raise typer.Exit(tasks.exit_code_of(final))


def _signature() -> None:
    """Give :func:`run` the spec options of ``kawa task submit`` (typer reads a command's
    options from its signature), so the two never drift apart."""
    from typing import get_type_hints

    spec_options = set(inspect.signature(tasks.task_spec).parameters) - {"command"}
    hints = get_type_hints(tasks.submit, include_extras=True)
    submitted = [
        p.replace(annotation=_without_short_names(hints[p.name]))
        for p in inspect.signature(tasks.submit).parameters.values()
        if p.name in spec_options
    ]
    own = {
        "ctx": (typer.Context, inspect.Parameter.empty),
        "detach": (
            Annotated[
                bool, typer.Option("--detach", "-d", help="Print the task id and leave it running.")
            ],
            False,
        ),
        "interactive": (
            Annotated[bool, typer.Option("--interactive", "-i", help="Keep standard input open.")],
            False,
        ),
        "tty": (
            Annotated[bool, typer.Option("--tty", "-t", help="A terminal (use -it).")],
            False,
        ),
    }
    params = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=a, default=d)
        for name, (a, d) in own.items()
    ]
    params += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in submitted]
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}


def _without_short_names(annotation: Any) -> Any:
    """``annotation`` without the short names ``kawa run`` gives its own options
    (``-t`` is a terminal here, as in ``docker run``; ``--target`` keeps its long name)."""
    import copy
    from typing import get_args

    args = get_args(annotation)
    if len(args) < 2:
        return annotation
    kept = []
    for info in args[1:]:
        decls = getattr(info, "param_decls", None)
        if decls:
            info = copy.copy(info)
            info.param_decls = tuple(d for d in decls if d not in _OWN_SHORT)
        kept.append(info)
    return Annotated[(args[0], *kept)]


_OWN_SHORT = frozenset({"-d", "-i", "-t"})
_signature()

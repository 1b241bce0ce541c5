"""``kawa task …``"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from kawa.cli.arguments import OptionalTaskArg, TaskArg, display_name, task_refs
from kawa.cli.command_line import AfterDashes, after_dashes
from kawa.cli.context import client
from kawa.cli.output import (
    CliError,
    console,
    err_console,
    human_bytes,
    plain,
    print_json,
    styled,
    table,
    visible,
)
from kawa.cli.paging import older_hint
from kawa.cli.tables import OutputOpt, listing
from kawa.core.batch_output import task_label
from kawa.core.task_states import AWAITING_START

if TYPE_CHECKING:
    from kawa.protocol.tasks import TaskSpec, TaskView

app = typer.Typer(
    help="Command tasks: submit, list, status, logs, kill, pause, resume, wait.",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def exit_code_of(tasks: list[TaskView]) -> int:
    """0 if every task completed, else the first failure's exit code (1 if it has none)."""
    for t in tasks:
        if t.state.value != "completed":
            return t.exit_code if t.exit_code not in (None, 0) else 1
    return 0


@app.command(cls=AfterDashes)
def submit(
    ctx: typer.Context,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="NODE[:NUMA][::GPU[,GPU…]]; repeat for a batch."),
    ] = None,
    cores: Annotated[int, typer.Option(help="CPU cores per task.")] = 1,
    memory: Annotated[str | None, typer.Option(help="Memory limit: 512M, 4G, 2Gi.")] = None,
    gpus: Annotated[int, typer.Option(help="Number of GPUs to auto-pick.")] = 0,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="K=V; repeatable.")] = None,
    mount: Annotated[list[str] | None, typer.Option(help="SRC:DST[:ro]; repeatable.")] = None,
    container: Annotated[str | None, typer.Option(help="Environment name.")] = None,
    image: Annotated[str | None, typer.Option(help="Image already on the node.")] = None,
    native: Annotated[bool, typer.Option(help="Run on the node's OS (no container).")] = False,
    privileged: Annotated[bool, typer.Option(help="Privileged container (admin).")] = False,
    workdir: Annotated[str | None, typer.Option(help="Working directory.")] = None,
    network: Annotated[str, typer.Option(help="host (default) or bridge.")] = "host",
    timeout: Annotated[str | None, typer.Option(help="Kill after: 90s, 30m, 2h.")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    name: Annotated[
        str | None, typer.Option(help="A name for the task(s).", callback=display_name)
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait; exit with the task's code.")] = False,
    json: JsonOpt = False,
    sweep: Annotated[
        bool,
        typer.Option("--sweep", help="One task per combination of span:{1..3} / span:[a,b]."),
    ] = False,
    max_parallel: Annotated[
        int | None, typer.Option("--max-parallel", help="At most N tasks of the batch at once.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say where each task would start; submit nothing.")
    ] = False,
) -> None:
    """Submit a command: kawa task submit [OPTIONS] -- CMD ARGS…"""
    command = after_dashes(ctx)
    if command is None:
        raise CliError("put the command after --: kawa task submit [OPTIONS] -- CMD ARGS…", 2)
    spec = task_spec(
        command,
        target=target,
        cores=cores,
        memory=memory,
        gpus=gpus,
        env=env,
        mount=mount,
        container=container,
        image=image,
        native=native,
        privileged=privileged,
        workdir=workdir,
        network=network,
        timeout=timeout,
        priority=priority,
        name=name,
        sweep=sweep,
        max_parallel=max_parallel,
    )
    with client() as c:
        if dry_run:
            from kawa.cli.dry_run import dry_run as show

            return show(c, spec, json)
        result = c.submit(spec)
        if not wait:
            if json:
                return print_json(result)
            for t in result.tasks:
                where = t.target or "auto"
                label = f" {visible(t.name)}" if sweep and t.name else ""
                typer.echo(f"submitted {t.id} ({visible(where)}){label}")
            if sweep:
                typer.echo(f"batch {result.batch_id}: {len(result.tasks)} combinations")
            return
        final = c.wait([t.id for t in result.tasks])
    if json:
        print_json(final)
    else:
        _print_outcomes(final)
    raise typer.Exit(exit_code_of(final))


def task_spec(
    command: list[str],
    *,
    target: list[str] | None = None,
    cores: int = 1,
    memory: str | None = None,
    gpus: int = 0,
    env: list[str] | None = None,
    mount: list[str] | None = None,
    container: str | None = None,
    image: str | None = None,
    native: bool = False,
    privileged: bool = False,
    workdir: str | None = None,
    network: str = "host",
    timeout: str | None = None,
    priority: int = 0,
    name: str | None = None,
    sweep: bool = False,
    max_parallel: int | None = None,
) -> TaskSpec:
    """The spec that ``kawa task submit``'s options describe (shared with ``kawa run``);
    :class:`CliError` (exit code 2) for bad input, before any request."""
    from pydantic import ValidationError

    from kawa.protocol.tasks import Mount, TaskSpec

    if not command:
        raise CliError("no command given after --", 2)
    env_map: dict[str, str] = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"bad --env {item!r}: expected KEY=VALUE", 2)
        env_map[key] = value
    if sweep:
        _check_sweep(command)
    if container == "NULL":  # `--container NULL` is another spelling of --native
        container, native = None, True
    try:
        spec = TaskSpec.model_validate(
            dict(
                command=command,
                targets=target or [],
                cores=cores,
                memory=memory,
                gpus=gpus,
                env=env_map,
                mounts=[Mount.parse(m) for m in mount or []],
                container=container,
                image=image,
                native=native,
                privileged=privileged,
                workdir=workdir,
                network=network,
                timeout=timeout,
                priority=priority,
                name=name,
                sweep=sweep,
                max_parallel=max_parallel,
            )
        )
    except (ValidationError, ValueError) as exc:
        raise CliError(_validation_message(exc), 2) from None
    return spec


def _check_sweep(command: list[str]) -> None:
    """Refuse a --sweep whose command has no span or a malformed one, before any request."""
    from kawa.core.sweep import SweepError, parse

    try:
        found = parse(command)
    except SweepError as exc:
        raise CliError(f"bad sweep: {exc}", 2) from None
    if not found.spans:
        raise CliError("--sweep needs a span:{START..END} or span:[a,b,...] in the command", 2)


def _validation_message(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"])
            msg = str(e["msg"]).removeprefix("Value error, ")
            parts.append(f"{where}: {msg}" if where else msg)
        return "; ".join(parts)
    return str(exc)


def _print_outcomes(tasks: list[TaskView]) -> None:
    from kawa.cli.failures import reason

    for t in tasks:
        code = "" if t.exit_code is None else f" (exit code {t.exit_code})"
        found = reason(t)
        why = f": {plain(found)}" if found else ""
        name = f" {plain(t.name)}" if t.name else ""  # a sweep's combination
        line = f"{t.id}{name} on {plain(t.node or '-')}: {styled(t.state.value)}{code}{why}"
        console.print(line, soft_wrap=True)  # one line, however long


@app.command("list")
def list_tasks(
    status: Annotated[
        list[str] | None, typer.Option("--status", "-s", help="Only these states.")
    ] = None,
    node: Annotated[str | None, typer.Option(help="Only tasks on this node.")] = None,
    batch: Annotated[
        str | None, typer.Option(help="Only this batch, all of it, in submission order.")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, max=10_000, help="At most this many (newest first; default 200)."),
    ] = None,
    before: Annotated[
        int | None,
        typer.Option(min=0, max=2**63 - 1, help="Only tasks older than this task id (paging)."),
    ] = None,
    json: JsonOpt = False,
    output: OutputOpt = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Keep the table up to date (Ctrl-C quits).")
    ] = False,
) -> None:
    """List tasks, newest first (a batch: in submission order, sweeps by combination).
    When older tasks exist, a last line on standard error says how to list them."""
    if watch:
        from kawa.cli.task_watch import watch_tasks

        if json or output in ("json", "ids") or before:
            raise CliError("--watch shows the newest tasks: no --before, --json or -o json|ids", 2)
        return watch_tasks(status, node, batch, limit or 200, wide=output == "wide")
    page = limit or (10_000 if batch else 200)
    with client() as c:
        older = None if before is None else str(before)
        tasks = c.tasks(status, node, batch, "command", min(page + 1, 10_000), before=older)
    more = len(tasks) > page
    tasks = tasks[:page]
    if batch:
        tasks.sort(key=lambda t: int(t.id))
    listing(tasks, output, json, TASK_COLUMNS, task_row, lambda t: t.id, TASK_FLEX, TASK_WIDE_ONLY)
    if more and not batch:
        older_hint(tasks[-1].id, status, node, limit)


TASK_COLUMNS = ["ID", "NAME", "STATE", "NODE", "CORES", "MEM", "GPUS", "EXIT", "AGE", "COMMAND"]
TASK_FLEX = ["NAME", "NODE", "COMMAND"]
TASK_WIDE_ONLY = ["GPUS"]


def task_row(t: TaskView) -> tuple[object, ...]:
    """One task as a row of :data:`TASK_COLUMNS`."""
    from kawa.cli.tables import relative

    return (
        t.id,
        t.name,
        styled(t.state.value),
        t.node or f"({t.waiting_reason or '-'})",
        t.cores,
        human_bytes(t.memory),
        ",".join(map(str, t.gpu_ids)) or "-",
        t.exit_code,
        relative(t.created_at),
        " ".join(t.command),
    )


@app.command()
def status(task_id: TaskArg, json: JsonOpt = False) -> None:
    """Show one task in detail, with its history."""
    with client() as c:
        t = c.task(task_id)
    if json:
        return print_json(t)
    rows = [
        ("id", t.id),
        ("batch", t.batch_id),
        ("name", t.name),
        ("state", styled(t.state.value)),
        ("command", " ".join(t.command)),
        ("target", t.target or "auto"),
        ("node", t.node),
        ("numa", t.numa),
        ("cpuset", ",".join(map(str, t.cpuset)) or None),
        ("gpus", ",".join(map(str, t.gpu_ids)) or None),
        ("cores", t.cores),
        ("memory", human_bytes(t.memory)),
        ("environment", t.container or t.image),
        ("network", t.network.value),
        ("timeout", t.timeout),
        ("priority", t.priority),
        ("exit code", t.exit_code),
        ("error", t.error),
        ("waiting", t.waiting_reason if t.state.value in ("pending", "assigning") else None),
        ("created", t.created_at),
        ("started", t.started_at),
        ("finished", t.finished_at),
    ]
    table(None, ["", ""], [(k, v) for k, v in rows if v not in (None, "")])
    table(
        "history",
        ["AT", "FROM", "TO", "CAUSE"],
        [
            (h.at.strftime("%H:%M:%S.%f")[:-3], h.source or "-", h.target.value, h.cause)
            for h in t.history
        ],
    )


@app.command()
def logs(
    task_id: OptionalTaskArg = None,
    stderr: Annotated[bool, typer.Option("--stderr", help="Standard error instead.")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Follow until it ends.")] = False,
    batch: Annotated[
        str | None,
        typer.Option(help="Every task of this batch, lines prefixed with its combination."),
    ] = None,
) -> None:
    """Print a task's output (or a whole batch's with --batch)."""
    # The task's own bytes, control characters and all, as `docker logs` prints them:
    # unlike everything else the CLI prints from the host, they are not escaped.
    from rich.markup import escape

    if (task_id is None) == (batch is None):
        raise CliError("give a task id or --batch BATCH (not both)", 2)
    stream = "stderr" if stderr else "stdout"
    with client() as c:
        if batch is None:
            assert task_id is not None
            for chunk in c.logs(task_id, stream, follow):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
            return
        if follow:
            raise CliError("--follow takes one task; wait for the batch, then read its logs", 2)
        tasks = sorted(c.tasks(None, None, batch, "command", 10_000), key=lambda t: int(t.id))
        if not tasks:
            raise CliError(f"no tasks in batch {batch}", 1)
        for t in tasks:
            if t.state in AWAITING_START:
                label = task_label(t.env.get("KAWA_SWEEP_ARGS"), t.target, t.id, t.node)
                note = f"[{label}] {t.state.value}: no output yet"
                err_console.print(escape(note), highlight=False)
        for chunk in c.batch_logs(batch, stream):  # the others' lines, prefixed by the host
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()


def _act(task_id: str, action: str, json: bool) -> None:
    from kawa.protocol.tasks import TaskAction

    with client() as c:
        t = c.act(task_id, TaskAction(action))
    if json:
        return print_json(t)
    console.print(f"{plain(t.id)}: {action} requested, now {styled(t.state.value)}")


@app.command()
def kill(task_id: TaskArg, json: JsonOpt = False) -> None:
    """Kill a pending, running or paused task."""
    _act(task_id, "kill", json)


@app.command()
def pause(task_id: TaskArg, json: JsonOpt = False) -> None:
    """Pause a running task (it keeps its resources)."""
    _act(task_id, "pause", json)


@app.command()
def resume(task_id: TaskArg, json: JsonOpt = False) -> None:
    """Resume a paused task."""
    _act(task_id, "resume", json)


@app.command()
def retry(task_id: TaskArg, json: JsonOpt = False) -> None:
    """Submit a task's command and options again, as a new task."""
    with client() as c:
        result = c.retry(task_id)
    if json:
        return print_json(result)
    for t in result.tasks:
        typer.echo(f"submitted {t.id} ({visible(t.target or 'auto')}): retry of {task_id}")


@app.command("wait")
def wait_cmd(
    task_ids: Annotated[
        list[str], typer.Argument(help="Task ids (or unique prefixes).", callback=task_refs)
    ],
    timeout: Annotated[float | None, typer.Option(help="Give up after SECONDS.")] = None,
    json: JsonOpt = False,
) -> None:
    """Wait for tasks to end; exit with the task's exit code (non-zero if any failed)."""
    with client() as c:
        final = c.wait(task_ids, timeout)
    print_json(final) if json else _print_outcomes(final)
    raise typer.Exit(exit_code_of(final))

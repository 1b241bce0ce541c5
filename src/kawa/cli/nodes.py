"""``kawa node …``"""

from __future__ import annotations

from typing import Annotated

import typer

from kawa.cli import node_history
from kawa.cli.arguments import NodeArg, node_name
from kawa.cli.context import client
from kawa.cli.output import human_bytes, plain, print_json, styled, table, visible
from kawa.cli.tables import OutputOpt
from kawa.protocol.nodes import NodeHealth, NodeUsageSample

app = typer.Typer(help="Nodes: list, health, history, drain, remove.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _age(at: object) -> str:
    from datetime import UTC, datetime

    if at is None:
        return "never"
    seconds = (datetime.now(UTC) - at).total_seconds()  # type: ignore[operator]
    return f"{seconds:.0f}s ago"


@app.command("list")
def list_nodes(json: JsonOpt = False, output: OutputOpt = None) -> None:
    """List registered nodes with their resources and status."""
    from kawa.cli.tables import listing, relative

    with client() as c:
        nodes = c.nodes()
    listing(
        nodes,
        output,
        json,
        ["NAME", "STATUS", "CORES", "MEMORY", "NUMA", "GPUS", "CPU%", "MEM%", "TASKS", "HEARTBEAT"],
        lambda n: (
            n.name,
            styled(n.status.value),
            f"{n.held.cores}/{n.inventory.cores}",
            f"{human_bytes(n.held.memory)}/{human_bytes(n.inventory.memory)}",
            len(n.inventory.numa),
            f"{len(n.held.gpu_ids)}/{len(n.inventory.gpus)}",
            f"{n.usage.cpu_percent:.0f}" if n.usage else "-",
            f"{n.usage.memory_percent:.0f}" if n.usage else "-",
            n.running_tasks,
            relative(n.last_heartbeat),
        ),
        lambda n: n.name,
        flex=["NAME"],
    )


@app.command()
def health(
    node: Annotated[
        str | None, typer.Argument(help="Node name (default: all).", callback=node_name)
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Show health: usage, NUMA zones, GPUs and recent history."""
    with client() as c:
        names = [node] if node else [n.name for n in c.nodes()]
        reports = [c.node_health(n) for n in names]
    if json:
        return print_json(reports)
    for r in reports:
        n = r.node
        table(
            f"{plain(n.name)} ({styled(n.status.value)}, heartbeat {_age(n.last_heartbeat)})",
            ["", "VALUE"],
            _health_rows(r),
        )


def _health_rows(r: NodeHealth) -> list[tuple[str, str]]:
    n, u = r.node, r.node.usage
    rows = [
        ("cores", f"{n.inventory.cores} ({n.held.cores} held)"),
        ("memory", f"{human_bytes(n.inventory.memory)} ({human_bytes(n.held.memory)} held)"),
        ("cpu", f"{u.cpu_percent:.0f}%" if u else "-"),
        ("memory used", f"{human_bytes(u.memory_used)} ({u.memory_percent:.0f}%)" if u else "-"),
        ("load", " ".join(f"{x:.2f}" for x in u.load) if u else "-"),
    ]
    zone_use = {z.id: z.cpu_percent for z in u.numa} if u else {}
    pinned = set(n.held.pinned_cpus)
    for z in n.inventory.numa:
        busy = zone_use.get(z.id)
        rows.append(
            (
                f"numa {z.id}",
                f"cpus {_cpus(z.cpus)} ({len(pinned.intersection(z.cpus))} pinned), "
                f"{human_bytes(z.memory)}, cpu {'-' if busy is None else f'{busy:.0f}%'}",
            )
        )
    for sensor, celsius in sorted((u.temperatures if u else {}).items()):
        rows.append((f"temp {sensor}", f"{celsius:.0f}C"))
    held = set(n.held.gpu_ids)
    for g in u.gpus if u and u.gpus else n.inventory.gpus:
        rows.append(
            (
                f"gpu {g.index}",
                f"{g.name} {human_bytes(g.memory_used)}/{human_bytes(g.memory_total)}"
                f" util {_num(g.utilization, '%')} temp {_num(g.temperature, 'C')}"
                f" power {_num(g.power_watts, 'W')}" + (" (held)" if g.index in held else ""),
            )
        )
    rows.append(("history", _history(r.history)))
    return rows


def _num(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.0f}{unit}"


def _history(samples: list[NodeUsageSample]) -> str:
    """Sample count and span, CPU and memory ranges, and a CPU sparkline (newest last)."""
    if not samples:
        return "no samples yet"
    span = (samples[-1].at - samples[0].at).total_seconds()
    cpu = [h.cpu_percent for h in samples]
    mem = [h.memory_percent for h in samples]
    bars = "".join(_BARS[min(len(_BARS) - 1, int(c / 100 * len(_BARS)))] for c in cpu[-40:])
    return (
        f"{len(samples)} samples over {span:.0f}s; cpu {min(cpu):.0f}-{max(cpu):.0f}% "
        f"(mean {sum(cpu) / len(cpu):.0f}%), memory {min(mem):.0f}-{max(mem):.0f}%  {bars}"
    )


_BARS = "▁▂▃▄▅▆▇█"


def _cpus(cpus: list[int]) -> str:
    """A cpu list as sysfs writes it: ``0-3,8-11``."""
    if not cpus:
        return "-"
    runs: list[list[int]] = []
    for c in sorted(cpus):
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in runs)


@app.command()
def drain(node: NodeArg, json: JsonOpt = False) -> None:
    """Stop placing new work on NODE; running work continues."""
    with client() as c:
        view = c.drain(node, True)
    print_json(view) if json else typer.echo(f"{visible(view.name)}: {view.status.value}")


@app.command()
def undrain(node: NodeArg, json: JsonOpt = False) -> None:
    """Let the scheduler place work on NODE again."""
    with client() as c:
        view = c.drain(node, False)
    print_json(view) if json else typer.echo(f"{visible(view.name)}: {view.status.value}")


app.command("history")(node_history.history)


@app.command()
def remove(
    node: NodeArg,
    force: Annotated[
        bool, typer.Option("--force", help="Even if online or busy (its tasks become lost).")
    ] = False,
) -> None:
    """Forget a node (admin): drained or offline, with no task on it, unless --force.
    Its tasks keep their history; joining again under the same name finds it."""
    with client() as c:
        c.remove_node(node, force)
    typer.echo(f"node {node} removed (a runner still running there registers again: stop it)")


def _bootstrap(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would run, run nothing.")
    ] = False,
) -> None:
    """Prepare this machine as a node: Docker, debootstrap, the base image (as root)."""
    from kawa.cli.node_bootstrap import bootstrap

    bootstrap(dry_run)


app.command("bootstrap")(_bootstrap)

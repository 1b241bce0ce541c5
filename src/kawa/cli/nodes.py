"""``kawa node …``"""

from __future__ import annotations

from typing import Annotated

import typer

from kawa.cli.context import client
from kawa.cli.output import human_bytes, print_json, styled, table

app = typer.Typer(help="Nodes: list, health, drain.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _age(at: object) -> str:
    from datetime import UTC, datetime

    if at is None:
        return "never"
    seconds = (datetime.now(UTC) - at).total_seconds()  # type: ignore[operator]
    return f"{seconds:.0f}s ago"


@app.command("list")
def list_nodes(json: JsonOpt = False) -> None:
    """List registered nodes with their resources and status."""
    with client() as c:
        nodes = c.nodes()
    if json:
        return print_json(nodes)
    table(
        None,
        ["NAME", "STATUS", "CORES", "MEMORY", "NUMA", "GPUS", "CPU%", "MEM%", "TASKS", "HEARTBEAT"],
        [
            (
                n.name,
                styled(n.status.value),
                f"{n.held.cores}/{n.inventory.cores}",
                f"{human_bytes(n.held.memory)}/{human_bytes(n.inventory.memory)}",
                len(n.inventory.numa),
                f"{len(n.held.gpu_ids)}/{len(n.inventory.gpus)}",
                f"{n.usage.cpu_percent:.0f}" if n.usage else "-",
                f"{n.usage.memory_percent:.0f}" if n.usage else "-",
                n.running_tasks,
                _age(n.last_heartbeat),
            )
            for n in nodes
        ],
    )


@app.command()
def health(
    node: Annotated[str | None, typer.Argument(help="Node name (default: all).")] = None,
    json: JsonOpt = False,
) -> None:
    """Show health: usage, NUMA zones, GPUs and recent history."""
    with client() as c:
        names = [node] if node else [n.name for n in c.nodes()]
        reports = [c.node_health(n) for n in names]
    if json:
        return print_json(reports)
    for r in reports:
        n, u = r.node, r.node.usage
        table(
            f"{n.name} ({styled(n.status.value)}, heartbeat {_age(n.last_heartbeat)})",
            ["", "VALUE"],
            [
                ("cores", f"{n.inventory.cores} ({n.held.cores} held)"),
                (
                    "memory",
                    f"{human_bytes(n.inventory.memory)} ({human_bytes(n.held.memory)} held)",
                ),
                ("cpu", f"{u.cpu_percent:.0f}%" if u else "-"),
                (
                    "memory used",
                    f"{human_bytes(u.memory_used)} ({u.memory_percent:.0f}%)" if u else "-",
                ),
                ("load", " ".join(f"{x:.2f}" for x in u.load) if u else "-"),
                *[
                    (f"numa {z.id}", f"cpus {_cpus(z.cpus)}, {human_bytes(z.memory)}")
                    for z in n.inventory.numa
                ],
                *[
                    (
                        f"gpu {g.index}",
                        f"{g.name} {human_bytes(g.memory_total)}"
                        f" util {g.utilization if g.utilization is not None else '-'}%"
                        f" temp {g.temperature if g.temperature is not None else '-'}C",
                    )
                    for g in (u.gpus if u and u.gpus else n.inventory.gpus)
                ],
                (
                    "history",
                    f"{len(r.history)} samples"
                    + (
                        f", cpu {min(h.cpu_percent for h in r.history):.0f}-"
                        f"{max(h.cpu_percent for h in r.history):.0f}%"
                        if r.history
                        else ""
                    ),
                ),
            ],
        )


def _cpus(cpus: list[int]) -> str:
    if not cpus:
        return "-"
    return (
        f"{cpus[0]}-{cpus[-1]}"
        if cpus == list(range(cpus[0], cpus[-1] + 1))
        else ",".join(map(str, cpus))
    )


@app.command()
def drain(node: str, json: JsonOpt = False) -> None:
    """Stop placing new work on NODE; running work continues."""
    with client() as c:
        view = c.drain(node, True)
    print_json(view) if json else typer.echo(f"{view.name}: {view.status.value}")


@app.command()
def undrain(node: str, json: JsonOpt = False) -> None:
    """Let the scheduler place work on NODE again."""
    with client() as c:
        view = c.drain(node, False)
    print_json(view) if json else typer.echo(f"{view.name}: {view.status.value}")

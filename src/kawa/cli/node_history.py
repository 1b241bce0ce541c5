"""``kawa node history NODE``: a node's recent CPU, memory and GPU measurements as one
row per measurement (least, mean, most, last, and a sparkline of the window)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from kawa.cli.arguments import NodeArg
from kawa.cli.output import CliError, human_bytes, plain, print_json, table

if TYPE_CHECKING:
    from kawa.protocol.history import HistoryPoint, NodeHistory

BARS = "▁▂▃▄▅▆▇█"
WIDTH = 40
"""Characters in a sparkline: the window is cut into this many spans, each its mean."""


def sparkline(values: Sequence[float | None], top: float | None = None) -> str:
    """``values`` (oldest first) as WIDTH bars or fewer, scaled to ``top`` (default:
    the largest); a span without values is a blank."""
    if not values:
        return ""
    known = [v for v in values if v is not None]
    scale = top if top else max(known, default=0.0)
    spans = min(WIDTH, len(values))
    out = []
    for i in range(spans):
        chunk = [
            v
            for v in values[i * len(values) // spans : (i + 1) * len(values) // spans]
            if v is not None
        ]
        if not chunk:
            out.append(" ")
            continue
        level = sum(chunk) / len(chunk) / scale if scale > 0 else 0.0
        out.append(BARS[max(0, min(len(BARS) - 1, int(level * len(BARS))))])
    return "".join(out)


def _row(
    label: str,
    values: Sequence[float | None],
    shown: Callable[[float], str],
    top: float | None = None,
) -> tuple[str, str, str, str, str, str]:
    known = [v for v in values if v is not None]
    if not known:
        return (label, "-", "-", "-", "-", "")
    last = next(v for v in reversed(values) if v is not None)
    return (
        label,
        shown(min(known)),
        shown(sum(known) / len(known)),
        shown(max(known)),
        shown(last),
        sparkline(values, top),
    )


def _percent(value: float) -> str:
    return f"{value:.0f}%"


def _bytes(value: float) -> str:
    return human_bytes(round(value))


def _unit(suffix: str) -> Callable[[float], str]:
    return lambda value: f"{value:.0f}{suffix}"


def rows(points: list[HistoryPoint]) -> list[tuple[str, str, str, str, str, str]]:
    """One row per measurement: cpu, memory, then each GPU's."""
    memory_total = max((p.memory_total for p in points), default=0)
    found = [
        _row("cpu", [p.cpu_percent for p in points], _percent),
        _row("memory", [float(p.memory_used) for p in points], _bytes, float(memory_total)),
    ]
    indexes = sorted({g.index for p in points for g in p.gpus})
    for index in indexes:
        per = [next((g for g in p.gpus if g.index == index), None) for p in points]
        total = max((g.memory_total or 0 for g in per if g is not None), default=0)
        found += [
            _row(f"gpu {index} util", [g.util if g else None for g in per], _percent, 100.0),
            _row(
                f"gpu {index} memory",
                [None if g is None or g.memory_used is None else float(g.memory_used) for g in per],
                _bytes,
                float(total) or None,
            ),
            _row(f"gpu {index} temp", [g.temperature if g else None for g in per], _unit("C")),
            _row(f"gpu {index} power", [g.power_w if g else None for g in per], _unit("W")),
        ]
    return found


def title(h: NodeHistory, window: str) -> str:
    if not h.points:
        return f"{plain(h.node)}: no measurements in the last {window} yet"
    every = f"{h.resolution_s:g}s"
    return f"{plain(h.node)}: {len(h.points)} points, one per {every}, last {window}"


def history(
    node: NodeArg,
    window: Annotated[
        str, typer.Option("--window", "-w", help="1h (per heartbeat) or 24h (per minute).")
    ] = "1h",
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a node's recent CPU, memory and GPU use (kept by the host since it started)."""
    if window not in ("1h", "24h"):
        raise CliError(f"bad --window {window!r}: 1h or 24h", 2)
    from kawa.cli.context import client

    with client() as c:
        found = c.node_history(node, "1h" if window == "1h" else "24h")
    if json:
        return print_json(found)
    if not found.points:
        typer.echo(title(found, window))
        return
    table(title(found, window), ["", "MIN", "MEAN", "MAX", "LAST", "HISTORY"], rows(found.points))

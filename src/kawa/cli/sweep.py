"""``kawa sweep``: a local parameter sweep (the program in :mod:`kawa.standalone.sweep`,
the same one tasks get as ``kawa``)."""

from __future__ import annotations

import typer

from kawa.standalone import sweep as program


def sweep(ctx: typer.Context) -> None:
    """Run TARGET for every combination of span:{1..3} / span:[a,b] arguments (--help)."""
    raise typer.Exit(program.main(ctx.args))

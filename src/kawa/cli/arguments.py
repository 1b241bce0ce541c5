"""Arguments that name things on the host (task ids, node names, environment names),
checked as the command line is read: a malformed one is a usage error (exit code 2)
before any request is sent."""

from __future__ import annotations

from typing import Annotated

import typer


def task_ref(value: str) -> str:
    """A task id or unique id prefix (decimal digits)."""
    from kawa.client.errors import KawaError
    from kawa.client.refs import task_ref as check

    try:
        return check(value)
    except KawaError as exc:
        raise typer.BadParameter(exc.message) from None


def task_refs(values: list[str]) -> list[str]:
    return [task_ref(v) for v in values]


def node_name(value: str | None) -> str | None:
    """A node name that can be part of a URL (the host says whether it exists)."""
    from kawa.client.errors import KawaError
    from kawa.client.refs import path_segment

    if value is None:
        return None
    try:
        path_segment(value, "node name")
    except KawaError as exc:
        raise typer.BadParameter(exc.message) from None
    return value


def environment_name(value: str | None) -> str | None:
    """An environment name by the rule of :func:`kawa.core.environments.check_name`."""
    from kawa.core.environments import check_name

    if value is None:
        return None
    try:
        return check_name(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def display_name(value: str | None) -> str | None:
    """A task or VPS name: shown in tables and ssh configs, so it may hold no control
    characters (and no text-reordering marks)."""
    from kawa.cli.output import visible

    if value is not None and visible(value) != value:
        raise typer.BadParameter(f"{value!r} holds control characters")
    return value


TaskArg = Annotated[str, typer.Argument(help="Task id (or a unique prefix).", callback=task_ref)]


def optional_task_ref(value: str | None) -> str | None:
    return None if value is None else task_ref(value)


OptionalTaskArg = Annotated[
    str | None, typer.Argument(help="Task id (or a unique prefix).", callback=optional_task_ref)
]
VpsArg = Annotated[str, typer.Argument(help="VPS id (or a unique prefix).", callback=task_ref)]
NodeArg = Annotated[str, typer.Argument(help="Node name.", callback=node_name)]
EnvironmentArg = Annotated[
    str, typer.Argument(help="Environment (workspace) name.", callback=environment_name)
]

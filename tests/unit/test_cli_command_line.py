"""How the CLI reads command lines (kawa.cli.command_line): options before the first
``--`` must be known, everything after it is the command, verbatim; usage errors are
one ``error: …`` line with exit code 2. Checked on a small app built the same way."""

from __future__ import annotations

from typing import Annotated

import pytest
import typer

from kawa.cli.arguments import TaskArg, display_name
from kawa.cli.command_line import AfterDashes, after_dashes, run_app
from kawa.cli.output import CliError


def make_app(seen: list[object]) -> typer.Typer:
    app = typer.Typer()

    @app.command(cls=AfterDashes)
    def run(
        ctx: typer.Context,
        memory: Annotated[str | None, typer.Option()] = None,
        name: Annotated[str | None, typer.Option(callback=display_name)] = None,
    ) -> None:
        seen.append((memory, name, after_dashes(ctx)))

    @app.command()
    def status(task_id: TaskArg) -> None:
        seen.append(task_id)

    return app


def outcome(argv: list[str]) -> tuple[int, object]:
    """(exit code, what the command saw or the error message)."""
    seen: list[object] = []
    try:
        run_app(make_app(seen), argv)
    except CliError as exc:
        return exc.code, exc.message
    except SystemExit as exc:
        return int(exc.code or 0), seen[0] if seen else None
    raise AssertionError("run_app returned")


@pytest.mark.parametrize(
    ("argv", "seen"),
    [
        (["run", "--memory", "4G", "--", "echo", "hi"], ("4G", None, ["echo", "hi"])),
        (["run", "--", "ls", "-la", "--color"], (None, None, ["ls", "-la", "--color"])),
        (["run", "--", "x", "--memroy", "4G", "--"], (None, None, ["x", "--memroy", "4G", "--"])),
        (["run", "--", "--help"], (None, None, ["--help"])),
        (["run", "--memory", "1G"], ("1G", None, None)),
        (["run", "--"], (None, None, [])),
        (["status", " 42 "], "42"),
    ],
)
def test_command_lines_that_parse(argv: list[str], seen: object) -> None:
    assert outcome(argv) == (0, seen)


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["run", "--memroy", "4G", "--", "echo"], ["no such option: --memroy", "--memory?"]),
        (["run", "-x", "--", "echo"], ["no such option: -x"]),
        (["run", "echo", "hi"], ["unexpected argument 'echo'", "-- COMMAND"]),
        (["run", "--memory", "--", "echo"], ["'--memory' requires an argument"]),
        (["run", "--name", "a\x1bb", "--", "x"], ["--name", "control characters"]),
        (["status", ""], ["task id is empty", "kawa status --help"]),
        (["status", "4/2"], ["bad task id '4/2'"]),
        (["status", "\uff11\uff12"], ["bad task id", "decimal digits"]),
        (["status", "1", "--", "x"], ["unexpected extra argument"]),
        (["nope"], ["No such command"]),
    ],
)
def test_command_lines_that_are_refused(argv: list[str], needles: list[str]) -> None:
    code, message = outcome(argv)
    assert code == 2, message
    assert isinstance(message, str)
    for needle in needles:
        assert needle in message, (needle, message)

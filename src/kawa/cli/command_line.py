"""How ``kawa`` reads a command line, for every command.

* Options come before the first ``--`` and must be known ones: a mistyped option is a
  usage error naming it, never part of a command.
* Commands that run something (``kawa task submit``, ``kawa ssh``) are registered with
  ``cls=AfterDashes`` and take everything after the first ``--``, verbatim, options
  included (``-- ls -la --color``). A word before the ``--`` that is not an option or a
  declared argument is refused with a hint to put the command after ``--``: a command
  line never guesses where the command starts. The first ``--`` always ends the options,
  even where it follows an option that takes a value (``--name --`` lacks its value).
* A command that takes no command refuses a ``--`` followed by words ("unexpected extra
  argument"), as click does.
* Usage errors print as the CLI's other errors do: one ``error: …`` line with a pointer
  to ``--help``, exit code 2.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

from typer.core import TyperCommand
from typer.exceptions import Abort, TyperException

from kawa.cli.output import CliError

if TYPE_CHECKING:
    import typer
    from typer._click.core import Context  # typer's own click (typer vendors it)

_KEY = "kawa.after_dashes"


class AfterDashes(TyperCommand):
    """A command whose own options and arguments end at the first ``--``; the words after
    it are :func:`after_dashes` (and ``ctx.args``)."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            head, tail = args[:at], args[at + 1 :]
        else:
            head, tail = list(args), None
        ctx.allow_extra_args, ctx.ignore_unknown_options = True, False
        super().parse_args(ctx, head)
        if ctx.args and not ctx.resilient_parsing:
            names = [
                p.name.upper()
                for p in self.get_params(ctx)
                if p.param_type_name == "argument" and p.name
            ]
            pieces = " ".join(["[OPTIONS]", *names])
            raise CliError(
                f"unexpected argument {ctx.args[0]!r}: put the command after --: "
                f"{ctx.command_path} {pieces} -- COMMAND…",
                2,
            )
        ctx.meta[_KEY] = tail
        ctx.args = list(tail or [])
        return ctx.args


def after_dashes(ctx: Context) -> list[str] | None:
    """The words after ``--`` (possibly none), or None when the command line had no ``--``."""
    found: list[str] | None = ctx.meta.get(_KEY)
    return found


def usage_message(exc: TyperException) -> str:
    """One line for a command-line error, with a pointer to the command's ``--help``."""
    text = exc.format_message()
    if type(exc).__name__ == "NoSuchOption":
        possible = sorted(getattr(exc, "possibilities", None) or [])
        hint = f" (did you mean {', '.join(possible)}?)" if possible else ""
        text = f"no such option: {getattr(exc, 'option_name', '?')}{hint}"
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        text += f" (see '{ctx.command_path} --help')"
    return text


def run_app(app: typer.Typer, argv: list[str]) -> NoReturn:
    """Run ``app`` on ``argv`` and exit with its status; command-line errors become
    :class:`CliError` (exit code 2), which the entry point prints."""
    from typer.main import get_command

    command = get_command(app)
    try:
        code: Any = command.main(args=argv, prog_name="kawa", standalone_mode=False)
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help is printed already
            sys.exit(getattr(exc, "exit_code", 2))
        raise CliError(usage_message(exc), getattr(exc, "exit_code", 2)) from None
    except Abort:
        sys.stderr.write("Aborted!\n")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)

"""The ``kawa`` entry point. Keep imports light: ``kawa --help`` must start fast, and a
command imports only its own module (``kawa ssh`` is on the VPS startup path, see
docs/vps.md)."""

from __future__ import annotations

import sys
from importlib import import_module

from kawa.cli.output import CliError

TYPE_CHECKING = False  # typing is not imported at run time: the quick CLI path skips it
if TYPE_CHECKING:
    from typing import Any

    import typer

HELP = "Kawa: a small cluster as one computer."
_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}
_RAW: dict[str, Any] = {"help_option_names": []}  # sweep reads --help itself

# name -> (module, attribute, kind, registration options), in `kawa --help` order
_COMMANDS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "run": ("kawa.cli.run", "run", "command", {"after_dashes": True}),
    "task": ("kawa.cli.tasks", "app", "group", {}),
    "node": ("kawa.cli.nodes", "app", "group", {}),
    "container": ("kawa.cli.containers", "app", "group", {}),
    "files": ("kawa.cli.files", "app", "group", {}),
    "init": ("kawa.cli.cluster", "init_app", "group", {}),
    "up": ("kawa.cli.cluster", "up", "command", {}),
    "host": ("kawa.cli.cluster", "host", "command", {}),
    "runner": ("kawa.cli.cluster", "runner", "command", {}),
    "join": ("kawa.cli.join", "join", "command", {}),
    "join-token": ("kawa.cli.join", "tokens_app", "group", {}),
    "connect": ("kawa.cli.streams", "connect", "command", {}),
    "forward": ("kawa.cli.streams", "forward", "command", {}),
    "vps": ("kawa.cli.vps", "app", "group", {}),
    "ssh": ("kawa.cli.ssh", "ssh", "command", {"after_dashes": True}),
    "ssh-config": ("kawa.cli.ssh", "ssh_config", "command", {}),
    "proxy": ("kawa.cli.ssh", "proxy", "command", {"hidden": True}),
    "top": ("kawa.cli.top", "top", "command", {}),
    "audit": ("kawa.cli.audit", "audit", "command", {}),
    "completion": ("kawa.cli.completion", "completion", "command", {}),
    "sweep": ("kawa.cli.sweep", "sweep", "command", {"context_settings": _EXTRA | _RAW}),
}


def _root() -> typer.Typer:
    import typer

    app = typer.Typer(
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback()
    def _group() -> None:
        # a group even when only one command is registered (see build_app)
        pass

    return app


def build_app(only: str | None = None) -> typer.Typer:
    """The CLI: every command, or just ``only`` (the one a command line names), so
    ``kawa ssh`` does not import the modules of ``kawa task``, ``kawa up`` and others."""
    app = _root()
    for name, (module, attr, kind, options) in _COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(import_module(module), attr)
        if kind == "group":
            app.add_typer(target, name=name)
        elif options.get("after_dashes"):  # its command follows `--` (kawa.cli.command_line)
            from kawa.cli.command_line import AfterDashes

            extra = {k: v for k, v in options.items() if k != "after_dashes"}
            app.command(name, cls=AfterDashes, **extra)(target)
        else:
            app.command(name, **options)(target)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":  # the full CLI, for code that imports it
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _message(exc: BaseException) -> tuple[str, int] | None:
    if isinstance(exc, CliError):  # before importing the others' modules (httpx, pydantic)
        return exc.message, exc.code
    from kawa.client.errors import KawaError
    from kawa.settings import ConfigError

    if isinstance(exc, KawaError):
        return exc.message, 1
    if isinstance(exc, ConfigError):
        return str(exc), 2
    return None


def _main(argv: list[str]) -> None:
    name = argv[0] if argv else None
    if name == "__complete":  # the shell asks what fits at the cursor (kawa.cli.completer)
        from kawa.cli.completer import complete

        sys.exit(complete(argv[1:]))
    if name in ("ssh", "proxy"):
        from kawa.cli.ssh_run import fast_path

        direct = fast_path(argv)
        if direct is not None:  # their plain command lines need no typer
            sys.exit(direct())
    if name in ("run", "task"):
        from kawa.cli.quick_tasks import fast_path as quick

        found = quick(argv)
        code = None if found is None else found()
        if code is not None:  # None: the full CLI runs (nothing was stored)
            sys.exit(code)
    from kawa.cli.command_line import run_app

    run_app(build_app(name if name in _COMMANDS else None), argv)


def run() -> None:
    try:
        _main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        found = _message(exc)
        if found is None:
            raise
        from kawa.cli.output import err_console, plain

        err_console.print(f"[red]error:[/red] {plain(found[0])}", highlight=False)
        sys.exit(found[1])


if __name__ == "__main__":
    run()

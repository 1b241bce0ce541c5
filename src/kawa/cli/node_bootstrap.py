"""``kawa node bootstrap``: prepare a Debian/Ubuntu machine to be a node.

It runs the same scripts/bootstrap.sh the repository uses (shipped in the wheel under
``<prefix>/share/kawa/scripts``): Docker engine and debootstrap from apt when missing, a
Docker daemon, and the registry-free base image built from the machine's apt mirror —
without the development virtual environment (``KAWA_BOOTSTRAP_VENV=0``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from kawa.cli.output import CliError

SCRIPTS = ("lib.sh", "bootstrap.sh", "base-image.sh")


def scripts_dir() -> Path | None:
    """Where the bootstrap scripts are: installed with the wheel, or this checkout's."""
    import kawa

    candidates = [
        Path(sys.prefix) / "share" / "kawa" / "scripts",
        Path(kawa.__file__).resolve().parents[2] / "scripts",
    ]
    for found in candidates:
        if all((found / name).is_file() for name in SCRIPTS):
            return found
    return None


def bootstrap(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would run, run nothing.")
    ] = False,
) -> None:
    """Prepare this machine as a node: Docker, debootstrap, the base image (as root)."""
    found = scripts_dir()
    if found is None:
        raise CliError(
            "the bootstrap scripts are not installed with this Kawa "
            f"(looked in {sys.prefix}/share/kawa/scripts): install Kawa from its wheel"
        )
    command = ["bash", str(found / "bootstrap.sh")]
    shown = "KAWA_BOOTSTRAP_VENV=0 " + shlex.join(command)
    if dry_run:
        typer.echo(shown)
        return
    done = subprocess.run(command, env={**os.environ, "KAWA_BOOTSTRAP_VENV": "0"}, check=False)
    if done.returncode != 0:
        raise CliError(f"{shown} failed (exit {done.returncode}); its output above says why")
    typer.echo("this machine is ready: run the `kawa join …` line from the host")

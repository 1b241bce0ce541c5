"""``kawa node bootstrap`` finds the repository's bootstrap scripts and says what it runs."""

from __future__ import annotations

import subprocess
import sys

from kawa.cli.node_bootstrap import SCRIPTS, scripts_dir


def test_the_scripts_are_found() -> None:
    found = scripts_dir()
    assert found is not None and all((found / name).is_file() for name in SCRIPTS)


def test_dry_run_prints_the_command_and_runs_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kawa.cli.main", "node", "bootstrap", "--dry-run"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    found = scripts_dir()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"KAWA_BOOTSTRAP_VENV=0 bash {found}/bootstrap.sh"

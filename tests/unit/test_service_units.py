"""`kawa init service` unit files."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from kawa.cli.service_units import render_unit


def _parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


@pytest.mark.parametrize("role", ["host", "runner"])
def test_unit_runs_the_role_with_its_config(role: str) -> None:
    unit = _parse(render_unit(role, "/opt/kawa/bin/python", Path("/etc/kawa/my config.toml")))
    assert unit["Service"]["ExecStart"] == (
        f"/opt/kawa/bin/python -m kawa.cli.main {role} --config '/etc/kawa/my config.toml'"
    )
    assert unit["Service"]["Restart"] == "always"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert ("docker.service" in unit["Unit"]["After"]) == (role == "runner")


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        render_unit("scheduler", "/usr/bin/python3", Path("/x"))


def test_cli_writes_both_units(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kawa.cli.main",
            "init",
            "service",
            "--host",
            "--runner",
            "--config",
            str(tmp_path / "kawa.toml"),
            "--output",
            str(tmp_path / "units"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    host = _parse((tmp_path / "units" / "kawa-host.service").read_text())
    assert host["Service"]["ExecStart"].endswith(f"host --config {tmp_path / 'kawa.toml'}")
    assert (tmp_path / "units" / "kawa-runner.service").exists()


def test_cli_needs_a_role(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kawa.cli.main", "init", "service", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "choose --host, --runner or both" in result.stderr
    assert "Traceback" not in result.stderr

"""The dashboard's own unit tests (Vitest, in web/tests/unit), run as part of pytest.

Node.js or web/node_modules missing: a skip, and a failure under CI=true (scripts/bootstrap.sh
installs both)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


def test_vitest_suite_passes() -> None:
    problem = None
    if shutil.which("npx") is None:
        problem = "npx (Node.js and npm) is not installed"
    elif not (WEB / "node_modules" / "vitest").is_dir():
        problem = "web/node_modules is missing (cd web && npm ci)"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem} (CI=true: the dashboard's tests must run)")
        pytest.skip(problem)
    done = subprocess.run(
        ["npx", "--no-install", "vitest", "run", "--reporter=dot"],
        cwd=WEB,
        env={**os.environ, "CI": "true", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"vitest failed:\n{done.stdout}\n{done.stderr}"
    assert " passed" in done.stdout and " failed" not in done.stdout, done.stdout

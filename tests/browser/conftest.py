"""The dashboard in real headless Chromium against a real cluster (host + one runner).

The browser side lives in web/tests/browser/scenarios.mjs (playwright-core, pinned in
web/package.json); each test runs one scenario and checks what it read, and what the
cluster did, from here. Chromium, Node.js, the npm packages or the built app missing:
a skip, and a failure under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kawa.host.dashboard import DIST
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster, free_port

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SCENARIOS = WEB / "tests" / "browser" / "scenarios.mjs"
CHROMIUM = os.environ.get("KAWA_CHROMIUM", "/usr/bin/chromium")
NODE = "node1"
GPU_NODE = "gpunode"
DATA = ROOT / "tests" / "data"


def browser_problem() -> str | None:
    """None when the browser tests can run, else what is missing."""
    if shutil.which("node") is None:
        return "node (Node.js) is not installed"
    if not os.access(CHROMIUM, os.X_OK):
        return f"chromium is not installed at {CHROMIUM}"
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        return "web/node_modules is missing (cd web && npm ci)"
    if not (DIST / "index.html").is_file():
        return "the dashboard is not built (cd web && npm run build)"
    return None


@pytest.fixture(scope="session")
def browser_ready() -> None:
    problem = browser_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem} (CI=true: browser tests must run; scripts/bootstrap.sh sets it up)")
    pytest.skip(problem)


@pytest.fixture(scope="module")
def cluster(
    docker_available: None, browser_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A host (SSH gateway on a port of its own), a runner with 2 cores, and one with two
    NUMA zones (this machine's CPUs 0 and 1) and four recorded A100 GPUs (shown, not used:
    Docker has no GPU runtime on a machine without GPUs)."""
    c = Cluster(Path(tmp_path_factory.mktemp("cluster")), BASE_IMAGE, gateway_port=free_port())
    try:
        c.start_host()
        c.add_runner(NODE, cores=2)
        c.add_runner(
            GPU_NODE,
            cores=2,
            gpu_inventory=DATA / "gpus" / "a100-80gb-x4.json",
            sysfs_root=DATA / "sysfs" / "two-zones-cpu0-cpu1",
        )
        yield c
    finally:
        c.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where this test's screenshots go (printed, so a failing run can be looked at)."""
    folder = tmp_path / "screenshots"
    print(f"screenshots: {folder}")
    return folder


def scenario(name: str, cluster: Cluster, shots: Path, timeout: float = 240, **extra: Any) -> Any:
    """Run one browser scenario against ``cluster``; its JSON result."""
    args = {
        "url": cluster.url,
        "token": cluster.token,
        "node": NODE,
        "gpu_node": GPU_NODE,
        "shots": str(shots),
        **extra,
    }
    env = {**os.environ, "KAWA_BROWSER": json.dumps(args), "KAWA_CHROMIUM": CHROMIUM}
    done = subprocess.run(
        ["node", str(SCENARIOS), name],
        cwd=WEB,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"scenario {name} failed:\n{done.stderr}\n{done.stdout}"
    return json.loads(done.stdout.strip().splitlines()[-1])

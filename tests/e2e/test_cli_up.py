"""The README path as a user types it: ``kawa up``, then plain ``kawa`` commands that find
the cluster through the client config ``kawa up`` wrote (to ``$KAWA_CONFIG`` when set)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import psutil
import pytest

from tests.integration.cluster import KAWA, eventually, free_port

pytestmark = pytest.mark.usefixtures("docker_available")

UP_DEADLINE = 60.0


def user_env(home: Path, config: Path) -> dict[str, str]:
    """A user's environment: no KAWA_* but KAWA_CONFIG, and a home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAWA_")}
    env.update(
        KAWA_CONFIG=str(config),
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        COLUMNS="200",
    )
    return env


@dataclass
class UpCluster:
    root: Path
    name: str
    port: int = field(default_factory=free_port)
    runner_port: int = field(default_factory=free_port)
    ssh_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    cluster_id: str | None = None
    token: str = ""

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def config(self) -> Path:
        return self.root / "kawa-config.toml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout(self) -> str:
        path = self.root / "up.out"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def stderr(self) -> str:
        path = self.root / "up.err"
        return path.read_text(errors="replace") if path.exists() else ""

    def env(self) -> dict[str, str]:
        return user_env(self.home, self.config)

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        args = [
            "up",
            "--data-dir",
            str(self.data),
            "--port",
            str(self.port),
            "--runner-port",
            str(self.runner_port),
            "--ssh-port",
            str(self.ssh_port),
            "--name",
            self.name,
        ]
        with (self.root / "up.out").open("wb") as out, (self.root / "up.err").open("wb") as err:
            self.proc = subprocess.Popen([*KAWA, *args], env=self.env(), stdout=out, stderr=err)

    def wait_up(self) -> None:
        assert self.proc is not None

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"kawa up exited with {self.proc.returncode}:\n{self.stdout}\n{self.stderr}"
                )
            return "Kawa is up." in self.stdout

        eventually(up, UP_DEADLINE, f"'Kawa is up.' from {self.name}")
        found = eventually(
            lambda: re.search(r"admin token:\s+(\S+)", self.stdout), 10, "the admin token line"
        )
        self.token = found.group(1)
        with httpx.Client(timeout=10) as h:
            self.cluster_id = h.get(self.url + "/api/v1/health").json()["cluster_id"]

    def kawa(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*KAWA, *args], env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def kawa_json(self, *args: str) -> Any:
        r = self.kawa(*args, "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout)

    def interrupt(self, sig: int = signal.SIGINT) -> None:
        """Ask ``kawa up`` to stop (as Ctrl-C does), remembering the cluster id first."""
        if self.cluster_id is None:
            try:
                with httpx.Client(timeout=5) as h:
                    self.cluster_id = h.get(self.url + "/api/v1/health").json()["cluster_id"]
            except Exception:
                pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def reap(self, grace: float = 30.0) -> tuple[int | None, bool]:
        """Wait up to ``grace`` s for the stop, kill it after that, and clear away the
        cluster's containers. Returns the exit code and whether it stopped in time."""
        code, in_time = None, True
        if self.proc is not None:
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                in_time = False
                self.proc.kill()
                self.proc.wait(30)
            code = self.proc.returncode
        if self.cluster_id:
            client = docker.from_env()
            try:
                for c in client.containers.list(
                    all=True, filters={"label": f"kawa.cluster={self.cluster_id}"}
                ):
                    c.remove(force=True)
            finally:
                client.close()
        return code, in_time


@pytest.fixture(scope="module")
def two_clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpCluster, UpCluster]]:
    a = UpCluster(tmp_path_factory.mktemp("up-a"), "e2enode")
    b = UpCluster(tmp_path_factory.mktemp("up-b"), "e2enode-b")
    try:
        a.start()
        b.start()
        with ThreadPoolExecutor(2) as pool:
            for f in [pool.submit(a.wait_up), pool.submit(b.wait_up)]:
                f.result()
        yield a, b
    finally:
        # A stop that hangs is tested on its own (test_stop_after_a_waited_task_is_prompt);
        # here it is killed after the grace period so the rest of the run goes on.
        for cluster in (a, b):
            cluster.interrupt()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda cluster: cluster.reap(grace=15), (a, b)))


def submitted_id(output: str, node: str) -> str:
    found = re.search(rf"^(\d+) on {re.escape(node)}:", output, re.MULTILINE)
    assert found, output
    return found.group(1)


def test_up_prints_token_and_writes_client_config(
    two_clusters: tuple[UpCluster, UpCluster],
) -> None:
    a, _ = two_clusters
    assert a.token.startswith("kawa_"), a.stdout
    assert a.url in a.stdout and "e2enode" in a.stdout
    config = tomllib.loads(a.config.read_text())
    assert config["client"]["url"] == a.url
    assert config["client"]["token"] == a.token
    assert oct(a.config.stat().st_mode & 0o777) == oct(0o600), "the token file is private"
    assert not (a.home / ".config" / "kawa").exists(), "the real user config was touched"
    assert (a.data / "admin-token").read_text().strip() == a.token


def test_readme_path(two_clusters: tuple[UpCluster, UpCluster]) -> None:
    a, _ = two_clusters
    [node] = a.kawa_json("node", "list")
    assert node["name"] == "e2enode" and node["status"] == "online"
    inventory = node["inventory"]
    assert inventory["cores"] >= 1 and inventory["memory"] > 0
    assert inventory["numa"] and all(z["cpus"] for z in inventory["numa"])

    failing = a.kawa("task", "submit", "--wait", "--", "sh", "-c", "exit 4")
    assert failing.returncode == 4, failing.stdout + failing.stderr
    failed_id = submitted_id(failing.stdout, "e2enode")

    hello = a.kawa("task", "submit", "--wait", "--", "echo", "hello")
    assert hello.returncode == 0, hello.stdout + hello.stderr
    assert "Traceback" not in hello.stderr
    hello_id = submitted_id(hello.stdout, "e2enode")

    tasks = {t["id"]: t for t in a.kawa_json("task", "list")}
    assert tasks[failed_id]["state"] == "failed" and tasks[failed_id]["exit_code"] == 4
    assert tasks[hello_id]["state"] == "completed" and tasks[hello_id]["exit_code"] == 0
    assert tasks[hello_id]["node"] == "e2enode"

    logs = a.kawa("task", "logs", hello_id)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "hello\n"

    status = a.kawa("task", "status", hello_id)
    assert status.returncode == 0 and "completed" in status.stdout

    [report] = a.kawa_json("node", "health", "e2enode")
    assert report["node"]["name"] == "e2enode"
    assert report["node"]["inventory"]["cores"] == inventory["cores"]


def test_two_clusters_side_by_side(two_clusters: tuple[UpCluster, UpCluster]) -> None:
    a, b = two_clusters
    assert a.cluster_id != b.cluster_id
    assert a.token != b.token
    assert [n["name"] for n in a.kawa_json("node", "list")] == ["e2enode"]
    assert [n["name"] for n in b.kawa_json("node", "list")] == ["e2enode-b"]

    def submit(cluster: UpCluster, word: str) -> subprocess.CompletedProcess[str]:
        return cluster.kawa("task", "submit", "--wait", "--", "echo", word)

    with ThreadPoolExecutor(2) as pool:
        ra, rb = pool.map(submit, [a, b], ["from-a", "from-b"])
    assert ra.returncode == 0 and rb.returncode == 0, ra.stderr + rb.stderr
    id_a, id_b = submitted_id(ra.stdout, "e2enode"), submitted_id(rb.stdout, "e2enode-b")
    # Ids are per cluster (two hosts may hand out the same one in the same millisecond),
    # so each cluster is checked by what its tasks ran.
    words_a = {t["id"]: (t["command"] or [""])[-1] for t in a.kawa_json("task", "list")}
    words_b = {t["id"]: (t["command"] or [""])[-1] for t in b.kawa_json("task", "list")}
    assert words_a.get(id_a) == "from-a" and "from-b" not in words_a.values()
    assert words_b.get(id_b) == "from-b" and "from-a" not in words_b.values()
    assert a.kawa("task", "logs", id_a).stdout == "from-a\n"
    assert b.kawa("task", "logs", id_b).stdout == "from-b\n"
    # Each config names its own cluster: one user's token does not open the other.
    other = subprocess.run(
        [*KAWA, "node", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**a.env(), "KAWA_CLIENT_URL": b.url},
    )
    assert other.returncode != 0 and "invalid token" in other.stderr, other.stderr


def test_up_refuses_a_port_in_use(
    two_clusters: tuple[UpCluster, UpCluster], tmp_path: Path
) -> None:
    a, _ = two_clusters
    clash = UpCluster(tmp_path, "clash", port=a.port)
    clash.home.mkdir()
    r = subprocess.run(
        [
            *KAWA,
            "up",
            "--data-dir",
            str(clash.data),
            "--port",
            str(a.port),
            "--runner-port",
            str(clash.runner_port),
            "--name",
            "clash",
        ],
        env=clash.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert r.stderr.startswith("error:") and "Traceback" not in r.stderr, r.stderr
    assert f"port {a.port}" in r.stderr
    assert [n["name"] for n in a.kawa_json("node", "list")] == ["e2enode"]


def test_stopping_up_is_clean(tmp_path: Path) -> None:
    c = UpCluster(tmp_path, "e2enode-stop")
    try:
        c.start()
        c.wait_up()
        with httpx.Client(timeout=10) as h:
            assert h.get(c.url + "/api/v1/health").status_code == 200
    finally:
        c.interrupt(signal.SIGINT)
        code, in_time = c.reap(grace=15)
    assert in_time, "kawa up did not stop within 15 s of Ctrl-C"
    assert code in (0, 130, -signal.SIGINT), (code, c.stderr)
    assert "Traceback" not in c.stderr, c.stderr
    with pytest.raises(httpx.TransportError), httpx.Client(timeout=5) as h:
        h.get(c.url + "/api/v1/health")
    with pytest.raises(OSError):  # the runner's process stopped with it
        socket.create_connection(("127.0.0.1", c.runner_port), timeout=5).close()


def test_up_stops_and_says_so_when_its_runner_dies(tmp_path: Path) -> None:
    """The local runner is a process of its own: if it dies, ``kawa up`` does not go on
    as a host without its node; it stops, says why, and exits non-zero."""
    c = UpCluster(tmp_path, "e2enode-dies")
    try:
        c.start()
        c.wait_up()
        assert c.proc is not None
        [runner] = psutil.Process(c.proc.pid).children()
        runner.kill()
        code, in_time = c.reap(grace=15)
    finally:
        c.interrupt(signal.SIGINT)
        c.reap(grace=15)
    assert in_time, "kawa up went on without its runner"
    assert code == 1, (code, c.stderr)
    assert "the local runner stopped on its own (exit code -9)" in c.stderr, c.stderr


def test_stop_after_a_waited_task_is_prompt(tmp_path: Path) -> None:
    """A finished ``--wait`` client leaves an event subscription behind on the host; it
    must not keep ``kawa up`` from stopping (the handler has to notice the client left)."""
    c = UpCluster(tmp_path, "e2enode-wait")
    try:
        c.start()
        c.wait_up()
        r = c.kawa("task", "submit", "--wait", "--", "true")
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        c.interrupt(signal.SIGINT)
        code, in_time = c.reap(grace=10)
    assert in_time, "kawa up did not stop within 10 s of Ctrl-C after a --wait client left"
    assert code in (0, 130, -signal.SIGINT), (code, c.stderr)


def test_help_is_fast_and_does_not_import_the_server_stack() -> None:
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kawa.cli.main", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "task" in r.stdout and "node" in r.stdout and "up" in r.stdout
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in r.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "kawa.cli.main" in imported or "kawa.cli" in imported, "import log not captured"
    heavy = {"fastapi", "uvicorn", "sqlalchemy", "docker", "alembic", "starlette"}
    loaded = sorted(m for m in imported if m.split(".")[0] in heavy)
    assert not loaded, f"`kawa --help` imports the server stack: {loaded}"

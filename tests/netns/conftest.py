"""A Kawa cluster spread over network-namespace machines: the host on 10.213.0.2, runners
r1 (.11) and r2 (.12) that joined with a join token, and a client machine (.20).

Needs root and iproute2: under CI=true a missing one is a failure, never a skip."""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import docker
import pytest

from kawa.client import KawaClient
from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from kawa.protocol.join import JoinTokenCreate
from kawa.settings import HostConfig
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import KAWA
from tests.netns.lab import Lab, lab_problem

T = TypeVar("T")
HOST, R1, R2, CLIENT, SPARE = "host", "r1", "r2", "cl", "r3"
API_PORT, SSH_PORT, RUNNER_PORT = 8420, 8422, 8421
NODE_TIMEOUT = 3.0
_labs = itertools.count()


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    problem: Exception | None = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # a call refused while the cluster settles
            last = None
            problem = exc
        else:
            problem = None
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last!r} {problem!r}")


@dataclass
class NetCluster:
    lab: Lab
    root: Path
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    token: str = ""
    cluster_id: str = ""
    runners: dict[str, Path] = field(default_factory=dict)
    """Node name -> its runner's data directory."""

    @property
    def url(self) -> str:
        return f"http://{self.lab.machines[HOST].address}:{API_PORT}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAWA_")}
        env.update(KAWA_CONFIG=str(self.root / "none.toml"), COLUMNS="200", **extra)
        return env

    def start_host(self) -> None:
        cfg = HostConfig(
            bind="0.0.0.0",
            port=API_PORT,
            ssh_port=SSH_PORT,
            data_dir=self.root / "host",
            cluster_secret=self.secret,
            default_image=BASE_IMAGE,
            heartbeat_interval=0.5,
            node_timeout=NODE_TIMEOUT,
        )
        sessions = prepare_database(cfg)
        self.token = Authenticator(sessions, self.secret).create_token("admin", "admin")
        settings = {
            f"KAWA_HOST_{k.upper()}": str(v) for k, v in cfg.model_dump().items() if v is not None
        }
        self.lab.spawn(HOST, [*KAWA, "host"], self.env(**settings), self.root / "host.log")
        health = eventually(lambda: self.api(lambda c: c.health()), 60, "the host to answer")
        self.cluster_id = str(health["cluster_id"])

    def api(self, fn: Callable[[KawaClient], T], machine: str = CLIENT) -> T:
        """``fn`` with a client of the host, called from ``machine``'s network."""

        def call() -> T:
            with KawaClient(self.url, self.token, timeout=60) as c:
                return fn(c)

        return self.lab.call(machine, call)

    def join_token(self, **spec: object) -> str:
        return self.api(lambda c: c.create_join_token(JoinTokenCreate.model_validate(spec))).token

    def join(self, machine: str, token: str, *extra: str) -> float:
        """``kawa join`` on ``machine`` (its name: the machine's); seconds until online."""
        data = self.root / "runners" / machine
        self.runners[machine] = data
        argv = [*KAWA, "join", self.url, token, "--name", machine, "--data-dir", str(data)]
        started = time.monotonic()
        self.lab.spawn(machine, [*argv, *extra], self.env(), self.root / f"runner-{machine}.log")
        eventually(lambda: self.status(machine) == "online", 60, f"{machine} online")
        return time.monotonic() - started

    def status(self, node: str) -> str | None:
        try:
            return self.api(lambda c: c.node(node).status.value)
        except Exception:
            return None

    def cli(
        self, *args: str, machine: str = CLIENT, input: str | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        env = self.env(KAWA_CLIENT_URL=self.url, KAWA_CLIENT_TOKEN=self.token, HOME=str(self.root))
        return self.lab.run(machine, [*KAWA, *args], env, timeout=timeout, input=input)

    def remove_containers(self) -> None:
        if not self.cluster_id:
            return
        with contextlib.closing(docker.from_env()) as client:
            for c in client.containers.list(
                all=True, filters={"label": f"kawa.cluster={self.cluster_id}"}
            ):
                with contextlib.suppress(docker.errors.APIError):
                    c.remove(force=True)


@pytest.fixture(scope="session")
def lab_ready() -> None:
    problem = lab_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem} (CI=true: network namespace tests must run)")
    pytest.skip(problem)


@pytest.fixture(scope="module")
def net(
    lab_ready: None, docker_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NetCluster]:
    """The host, r1 and r2 joined with one join token for two nodes, and a client."""
    lab = Lab(f"{os.getpid() % 100000}-{next(_labs)}")
    cluster = NetCluster(lab, Path(tmp_path_factory.mktemp("netns")))
    try:
        lab.start()
        lab.add(HOST, 2)
        lab.add(R1, 11)
        lab.add(R2, 12)
        lab.add(SPARE, 13)
        lab.add(CLIENT, 20)
        cluster.start_host()
        token = cluster.join_token(uses=2, ttl=600)
        cluster.join(R1, token)
        cluster.join(R2, token)
        yield cluster
    finally:
        lab.close()
        cluster.remove_containers()

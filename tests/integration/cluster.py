"""A real cluster for tests: one host and several runners as subprocesses on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import docker

from kawa.client import KawaClient
from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from kawa.settings import HostConfig
from tests.support import eventually as eventually
from tests.support import when as when

KAWA = [sys.executable, "-m", "kawa.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunnerProc:
    name: str
    port: int
    data_dir: Path
    cores: int | None
    proc: subprocess.Popen[bytes] | None = None
    gpu_inventory: Path | None = None
    """A recorded GPU inventory (JSON) the runner reports instead of asking NVML."""
    sysfs_root: Path | None = None
    """A recorded sysfs tree the runner reads its NUMA topology from."""
    shared_dir: Path | None = None
    """The runner's shared directory (the NFS mount of a real cluster)."""


@dataclass
class Cluster:
    root: Path
    image: str
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    port: int = field(default_factory=free_port)
    token: str = ""
    host_proc: subprocess.Popen[bytes] | None = None
    runners: dict[str, RunnerProc] = field(default_factory=dict)
    extra_host_env: dict[str, str] = field(default_factory=dict)
    runner_env: dict[str, str] = field(default_factory=dict)
    """Extra environment for runners started from now on (e.g. KAWA_RUNNER_ALLOW_NATIVE)."""
    heartbeat_interval: float | None = 0.5
    """The host's ``heartbeat_interval`` (None: the product default)."""
    node_timeout: float | None = 3.0
    """The host's ``node_timeout`` (None: the product default)."""
    gateway_port: int | None = None
    """The host's SSH gateway port (None: the product default)."""
    _cluster_id: str = field(default="", init=False, repr=False)
    database_url: str | None = None
    """The hosts' database (None: SQLite in the host's data directory)."""
    runner_host_url: str | None = None
    """What runners are given as ``host_url`` (None: :attr:`url`); several hosts' URLs,
    comma-separated, for hosts sharing one database."""
    tls: Path | None = None
    """A directory ``kawa init tls`` wrote (for 127.0.0.1): then the host and the runners
    serve https with its server.pem, and every client verifies them with its ca.pem."""

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path | None:
        return None if self.tls is None else self.tls / "ca.pem"

    def _tls_settings(self, section: str) -> dict[str, str]:
        """``KAWA_<SECTION>_TLS_CERT``, ``…_TLS_KEY`` and ``…_CA_FILE`` (none without TLS)."""
        if self.tls is None:
            return {}
        files = {"tls_cert": "server.pem", "tls_key": "server-key.pem", "ca_file": "ca.pem"}
        return {f"KAWA_{section}_{k.upper()}": str(self.tls / v) for k, v in files.items()}

    @property
    def config_file(self) -> Path:
        return self.root / "kawa.toml"

    def host_config(self) -> HostConfig:
        tls = self.tls
        cfg = HostConfig(
            bind="127.0.0.1",
            port=self.port,
            data_dir=self.root / "host",
            cluster_secret=self.secret,
            default_image=self.image,
            tls_cert=None if tls is None else tls / "server.pem",
            tls_key=None if tls is None else tls / "server-key.pem",
            ca_file=self.ca_file,
            database_url=self.database_url,
        )
        if self.heartbeat_interval is not None:
            cfg.heartbeat_interval = self.heartbeat_interval
        if self.node_timeout is not None:
            cfg.node_timeout = self.node_timeout
        if self.gateway_port is not None:
            cfg.ssh_port = self.gateway_port
        return cfg

    def _env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAWA_")}
        env["KAWA_CONFIG"] = str(self.config_file)
        env.update(extra)
        return env

    def start_host(self) -> None:
        self.host_proc = self.spawn_host(self.port)
        eventually(self._host_up, 30, "host to answer")
        assert self.cluster_id  # known from now on, also while the host is down

    def spawn_host(self, port: int, log_name: str = "host.log") -> subprocess.Popen[bytes]:
        """Start a ``kawa host`` process on ``port`` (another one than :attr:`port`: a
        second host on the same database) without waiting for it to answer."""
        cfg = self.host_config()
        cfg.port = port
        if not self.token:
            sessions = prepare_database(cfg)
            self.token = Authenticator(sessions, self.secret).create_token("admin", "admin")
            sessions.kw["bind"].dispose()  # close its connections (PostgreSQL's warn if left)
        settings = {
            f"KAWA_HOST_{k.upper()}": str(v) for k, v in cfg.model_dump().items() if v is not None
        }
        env = self._env(**{**settings, **self.extra_host_env})
        with (self.root / log_name).open("ab") as log:
            return subprocess.Popen([*KAWA, "host"], env=env, stdout=log, stderr=log)

    def kill_host(self) -> None:
        """SIGKILL the host (no shutdown at all) and reap it; the database stays."""
        if self.host_proc is not None and self.host_proc.poll() is None:
            self.host_proc.kill()
            self.host_proc.wait(30)
        self.host_proc = None

    def restart_host(self) -> None:
        """Start the host again on the same port and database (after :meth:`kill_host`)."""
        assert self.host_proc is None or self.host_proc.poll() is not None, "host still runs"
        self.start_host()

    def _host_up(self) -> bool:
        try:
            with self.client() as c:
                return bool(c.health())
        except Exception:
            return False

    def add_runner(
        self,
        name: str,
        cores: int | None = None,
        gpu_inventory: Path | None = None,
        sysfs_root: Path | None = None,
        shared_dir: Path | None = None,
    ) -> RunnerProc:
        r = RunnerProc(
            name,
            free_port(),
            self.root / "runners" / name,
            cores,
            gpu_inventory=gpu_inventory,
            sysfs_root=sysfs_root,
            shared_dir=shared_dir,
        )
        self.runners[name] = r
        self.start_runner(name)
        return r

    def start_runner(self, name: str, wait: bool = True) -> None:
        r = self.runners[name]
        env = self._env(
            KAWA_RUNNER_NAME=name,
            KAWA_RUNNER_PORT=str(r.port),
            KAWA_RUNNER_BIND="127.0.0.1",
            KAWA_RUNNER_HOST_URL=self.runner_host_url or self.url,
            KAWA_RUNNER_ADVERTISE_URL=f"{self.scheme}://127.0.0.1:{r.port}",
            KAWA_RUNNER_CLUSTER_SECRET=self.secret,
            KAWA_RUNNER_DATA_DIR=str(r.data_dir),
            **self._tls_settings("RUNNER"),
        )
        if r.cores:
            env["KAWA_RUNNER_CORES"] = str(r.cores)
        if r.gpu_inventory is not None:
            env["KAWA_RUNNER_GPU_INVENTORY"] = str(r.gpu_inventory)
        if r.sysfs_root is not None:
            env["KAWA_RUNNER_SYSFS_ROOT"] = str(r.sysfs_root)
        if r.shared_dir is not None:
            env["KAWA_RUNNER_SHARED_DIR"] = str(r.shared_dir)
        env.update(self.runner_env)
        with (self.root / f"runner-{name}.log").open("ab") as log:
            r.proc = subprocess.Popen([*KAWA, "runner"], env=env, stdout=log, stderr=log)
        if wait:
            eventually(lambda: self.node_status(name) == "online", 30, f"{name} online")

    def node_status(self, name: str) -> str | None:
        try:
            with self.client() as c:
                return c.node(name).status.value
        except Exception:
            return None

    def stop_runner(self, name: str, sig: int = signal.SIGKILL) -> None:
        r = self.runners[name]
        if r.proc is not None and r.proc.poll() is None:
            r.proc.send_signal(sig)
            r.proc.wait(30)
        r.proc = None

    def freeze_runner(self, name: str) -> None:
        """SIGSTOP the runner process: it stays alive but silent (a hung node)."""
        proc = self.runners[name].proc
        assert proc is not None and proc.poll() is None, f"runner {name} is not running"
        proc.send_signal(signal.SIGSTOP)

    def thaw_runner(self, name: str) -> None:
        """SIGCONT a runner frozen by :meth:`freeze_runner`."""
        proc = self.runners[name].proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)

    def client(self) -> KawaClient:
        return KawaClient(self.url, self.token, timeout=60, ca_file=self.ca_file)

    @property
    def cluster_id(self) -> str:
        """The cluster's id (asked of the host once, so it is known while the host is down)."""
        if not self._cluster_id:
            with self.client() as c:
                self._cluster_id = str(c.health()["cluster_id"])
        return self._cluster_id

    def containers(self, **labels: str) -> list[docker.models.containers.Container]:
        """The cluster's containers with these ``kawa.*`` labels; one removed while they
        are listed (a task that just ended) is left out, not an error."""
        filters = [f"kawa.cluster={self.cluster_id}", *[f"kawa.{k}={v}" for k, v in labels.items()]]
        found: list[docker.models.containers.Container] = []
        with contextlib.closing(docker.from_env()) as client:
            for c in client.containers.list(all=True, sparse=True, filters={"label": filters}):
                try:
                    c.reload()
                except docker.errors.NotFound:
                    continue
                found.append(c)
        return found

    def cli(
        self,
        *args: str,
        timeout: float = 120,
        input: bytes | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the ``kawa`` CLI as a user would, against this cluster (``extra_env``
        overrides its client settings)."""
        env = self._env(KAWA_CLIENT_URL=self.url, KAWA_CLIENT_TOKEN=self.token, COLUMNS="200")
        if self.ca_file is not None:
            env["KAWA_CLIENT_CA_FILE"] = str(self.ca_file)
        env.update(extra_env or {})
        return subprocess.run(
            [*KAWA, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=None if input is None else input.decode(),
        )

    def close(self) -> None:
        cluster_id = None
        with contextlib.suppress(Exception):  # a host that never answered
            cluster_id = self.cluster_id
        for name in list(self.runners):
            self.thaw_runner(name)  # a frozen runner cannot act on SIGTERM
            self.stop_runner(name, signal.SIGTERM)
        if self.host_proc is not None and self.host_proc.poll() is None:
            self.host_proc.terminate()
            self.host_proc.wait(30)
        if cluster_id:
            for c in docker.from_env().containers.list(
                all=True, filters={"label": f"kawa.cluster={cluster_id}"}
            ):
                c.remove(force=True)

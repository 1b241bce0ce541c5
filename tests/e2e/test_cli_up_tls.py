"""``kawa up --tls``: the same one-machine cluster, served over https with a CA kept in
the data directory, and a client configuration that trusts it."""

from __future__ import annotations

import re
import signal
import stat
import subprocess
import tomllib
from pathlib import Path

import httpx
import pytest

from kawa.tls.contexts import client_context
from tests.e2e.test_cli_up import UP_DEADLINE, UpCluster
from tests.integration.cluster import KAWA, eventually

pytestmark = pytest.mark.usefixtures("docker_available")


class TlsUpCluster(UpCluster):
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.data / "tls" / "ca.pem"

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        args = ["up", "--tls", "--data-dir", str(self.data), "--name", self.name]
        args += ["--port", str(self.port), "--runner-port", str(self.runner_port)]
        args += ["--ssh-port", str(self.ssh_port)]
        with (self.root / "up.out").open("wb") as out, (self.root / "up.err").open("wb") as err:
            self.proc = subprocess.Popen([*KAWA, *args], env=self.env(), stdout=out, stderr=err)

    def wait_up(self) -> None:
        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"kawa up exited:\n{self.stdout}\n{self.stderr}")
            return "Kawa is up." in self.stdout

        eventually(up, UP_DEADLINE, "'Kawa is up.'")
        found = re.search(r"admin token:\s+(\S+)", self.stdout)
        assert found, self.stdout
        self.token = found.group(1)
        with httpx.Client(timeout=10, verify=client_context(self.ca_file) or True) as h:
            self.cluster_id = h.get(self.url + "/api/v1/health").json()["cluster_id"]


def test_up_with_tls_serves_https_and_the_cli_trusts_it(tmp_path: Path) -> None:
    c = TlsUpCluster(tmp_path, "e2enode-tls")
    try:
        c.start()
        c.wait_up()
        assert c.url in c.stdout and f"https://127.0.0.1:{c.runner_port}" in c.stdout
        client = tomllib.loads(c.config.read_text())["client"]
        assert client["url"] == c.url and client["ca_file"] == str(c.ca_file)
        assert stat.S_IMODE((c.data / "tls" / "ca-key.pem").stat().st_mode) == 0o600

        hello = c.kawa("task", "submit", "--wait", "--", "echo", "hello")
        assert hello.returncode == 0, hello.stdout + hello.stderr
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(c.url + "/api/v1/health", timeout=10)  # the system CAs do not know it
    finally:
        c.interrupt(signal.SIGINT)
        code, in_time = c.reap(grace=15)
    assert in_time and code in (0, 130, -signal.SIGINT), (code, c.stderr)
    assert "Traceback" not in c.stderr, c.stderr

"""TLS for real: certificates from ``kawa init tls``, a host and a runner serving https
on 127.0.0.1, and clients that verify them (or, with the wrong CA, refuse them)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from kawa.cli import lite
from kawa.cli.output import CliError
from kawa.client import KawaClient, KawaError
from kawa.client.streams import open_terminal, terminal_result
from kawa.gateway.upstream import runner_session
from kawa.mux.stream import StreamError
from kawa.protocol.tasks import TaskAction, TaskSpec
from kawa.tls.contexts import client_context
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import KAWA, Cluster, RunnerProc, eventually, free_port, when
from tests.integration.env_support import drop_image, has_image, loads, run, tiny_rootfs


def init_tls(directory: Path) -> subprocess.CompletedProcess[str]:
    """``kawa init tls`` as a user runs it, for the names the test cluster is reached at."""
    names = ["--host-name", "localhost", "--ip", "127.0.0.1"]
    args = [*KAWA, "init", "tls", "--dir", str(directory), *names]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls") / "tls"
    done = init_tls(d)
    assert done.returncode == 0, done.stderr
    assert f'tls_cert = "{d / "server.pem"}"' in done.stdout
    assert f'ca_file = "{d / "ca.pem"}"' in done.stdout
    return d


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA of another cluster (same names, different key)."""
    d = tmp_path_factory.mktemp("other") / "tls"
    assert init_tls(d).returncode == 0
    return d / "ca.pem"


@pytest.fixture(scope="module")
def cluster(
    docker_available: None, tmp_path_factory: pytest.TempPathFactory, certs: Path
) -> Iterator[Cluster]:
    c = Cluster(Path(tmp_path_factory.mktemp("cluster")), BASE_IMAGE, tls=certs)
    try:
        c.start_host()
        c.add_runner("tls1", cores=2)
        yield c
    finally:
        c.close()


def test_the_host_and_the_runner_serve_https(cluster: Cluster) -> None:
    assert cluster.url.startswith("https://")
    with cluster.client() as c:
        assert c.node("tls1").url.startswith("https://")  # the host calls the runner over TLS


def test_a_task_runs_and_its_logs_are_read_over_https(cluster: Cluster) -> None:
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["sh", "-c", "echo over-tls"], targets=["tls1"])).tasks
        [done] = c.wait([t.id], timeout=120)  # the event stream: wss
        assert done.state == "completed", done
        assert b"".join(c.logs(t.id)) == b"over-tls\n"


def test_the_runner_downloads_an_environment_from_the_host_over_https(
    cluster: Cluster, tmp_path: Path
) -> None:
    with cluster.client() as c:
        v = c.import_tarball("tls-tiny", tiny_rootfs(tmp_path / "rootfs.tar"))
    dockerd = docker.from_env()
    try:
        drop_image(dockerd, v.image)  # the host's import loaded it into the same Docker
        [t] = run(cluster, command=["true"], container="tls-tiny", targets=["tls1"])
        # the image has no shell, so `true` cannot start; what matters is that it loaded
        assert has_image(dockerd, v.image), t.error
        assert loads(cluster, "tls1", v.image) == (1, "http")
    finally:
        with contextlib.suppress(docker.errors.APIError):
            dockerd.api.remove_image(v.image, force=True)
        dockerd.close()


def test_a_terminal_works_over_wss(cluster: Cluster) -> None:
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["sleep", "300"], targets=["tls1"])).tasks
        eventually(lambda: when(v := c.task(t.id), v.state == "running"), what="running")

    async def session() -> tuple[bytes, int]:
        async with open_terminal(
            cluster.url,
            cluster.token,
            t.id,
            command=["sh", "-c", "echo in-$((40+2)); exit 5"],
            ca_file=cluster.ca_file,
        ) as stream:
            output = b""
            while chunk := await asyncio.wait_for(stream.read(), 30):
                output += chunk
            return output, await terminal_result(stream)

    try:
        output, code = asyncio.run(session())
    finally:
        with cluster.client() as c:
            c.act(t.id, TaskAction.KILL)
    assert b"in-42" in output
    assert code == 5


@pytest.fixture(scope="module")
def web_task(cluster: Cluster) -> Iterator[str]:
    """A task on tls1 serving /small (``hello-tls``) over HTTP on 127.0.0.1:8765."""
    serve = (
        "mkdir -p /srv && echo hello-tls > /srv/small"
        " && exec python3 -m http.server 8765 --bind 127.0.0.1 --directory /srv"
    )
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["sh", "-c", serve], targets=["tls1"])).tasks
        eventually(lambda: when(v := c.task(t.id), v.state == "running"), what="running")
    yield t.id
    with cluster.client() as c:
        c.act(t.id, TaskAction.KILL)


def test_kawa_proxy_relays_a_forward_session_over_wss(cluster: Cluster, web_task: str) -> None:
    """No tunnels over TLS: ``kawa proxy`` (ssh's ProxyCommand) relays one stream of a
    forward session instead, on its own."""

    def fetched() -> str | None:
        done = cluster.cli(
            "proxy", web_task, "8765", input=b"GET /small HTTP/1.0\r\n\r\n", timeout=30
        )
        return when(done.stdout, "hello-tls" in done.stdout)

    reply = eventually(fetched, 60, "the server in the task to answer through kawa proxy")
    assert reply.startswith("HTTP/1.0 200")


def test_the_gateway_leg_verifies_the_runner_with_the_host_ca_file(
    cluster: Cluster, web_task: str
) -> None:
    """The SSH gateway's session to a runner serving https (the host's ``ca_file``)."""
    with cluster.client() as c:
        runner_url = c.node("tls1").url

    async def fetch(tls: ssl.SSLContext | None) -> bytes:
        async with runner_session(runner_url, cluster.secret, web_task, tls) as mux:
            stream = await mux.open({"port": 8765})
            await stream.write(b"GET /small HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := await asyncio.wait_for(stream.read(), 30):
                data += chunk
            return data

    def fetched() -> bytes | None:
        try:
            data = asyncio.run(fetch(client_context(cluster.ca_file)))
        except StreamError:  # the server is not listening yet
            return None
        return when(data, b"hello-tls" in data)

    eventually(fetched, 60, "the server in the task through the gateway's leg")
    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(fetch(None))  # the system's CAs do not know the cluster's


def test_the_cli_verifies_the_host_with_its_ca_file(cluster: Cluster, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[client]\nurl = "{cluster.url}"\ntoken = "{cluster.token}"\n'
        f'ca_file = "{cluster.ca_file}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAWA_")}
    env["KAWA_CONFIG"] = str(config)

    def kawa(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*KAWA, *args], env=env, capture_output=True, text=True, timeout=120)

    done = kawa("node", "list")
    assert done.returncode == 0, done.stderr
    assert "tls1" in done.stdout
    submitted = kawa("task", "submit", "--wait", "--target", "tls1", "--", "echo", "via-cli")
    assert submitted.returncode == 0, submitted.stderr


def test_the_wrong_ca_is_refused_with_a_clear_message(cluster: Cluster, other_ca: Path) -> None:
    done = cluster.cli("node", "list", extra_env={"KAWA_CLIENT_CA_FILE": str(other_ca)})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"cannot reach the Kawa host at {cluster.url}" in done.stderr
    assert "not signed by a CA this client trusts: check ca_file" in done.stderr
    with (
        KawaClient(cluster.url, cluster.token, ca_file=other_ca) as c,
        pytest.raises(KawaError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        c.nodes()


def test_without_the_ca_the_system_trust_refuses_too(cluster: Cluster) -> None:
    with (
        KawaClient(cluster.url, cluster.token) as c,
        pytest.raises(KawaError, match="check ca_file"),
    ):
        c.health()


def test_the_quick_path_of_kawa_ssh_calls_over_https(cluster: Cluster, other_ca: Path) -> None:
    creds = lite.Credentials(cluster.url, cluster.token, 30.0, str(cluster.ca_file))
    with cluster.client() as c:
        assert lite.call(creds, "GET", "/health")["cluster_id"] == c.health()["cluster_id"]
    wrong = lite.Credentials(cluster.url, cluster.token, 30.0, str(other_ca))
    with pytest.raises(CliError, match=r"CERTIFICATE_VERIFY_FAILED.*check ca_file"):
        lite.call(wrong, "GET", "/health")


def test_plain_http_to_the_https_port_fails_clearly(cluster: Cluster) -> None:
    plain = f"http://127.0.0.1:{cluster.port}"
    done = cluster.cli("node", "list", extra_env={"KAWA_CLIENT_URL": plain})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"cannot reach the Kawa host at {plain}" in done.stderr
    assert "use an https:// URL" in done.stderr
    with pytest.raises(httpx.HTTPError):  # nothing answers in plain HTTP
        httpx.get(f"{plain}/api/v1/health", timeout=10)


def test_a_runner_with_the_wrong_ca_cannot_register(cluster: Cluster, other_ca: Path) -> None:
    name = "wrong-ca"
    r = RunnerProc(name, free_port(), cluster.root / "runners" / name, 1)
    cluster.runners[name] = r
    cluster.runner_env["KAWA_RUNNER_CA_FILE"] = str(other_ca)
    try:
        cluster.start_runner(name, wait=False)
        log = cluster.root / f"runner-{name}.log"

        def refused() -> str | None:
            text = log.read_text() if log.exists() else ""
            return when(text, "CERTIFICATE_VERIFY_FAILED" in text)

        text = eventually(refused, 60, "the runner to report the host's certificate")
        assert "registration failed" in text
        assert cluster.node_status(name) is None
    finally:
        del cluster.runner_env["KAWA_RUNNER_CA_FILE"]
        cluster.stop_runner(name)
        del cluster.runners[name]


def test_a_runner_serving_https_stops_promptly(cluster: Cluster) -> None:
    """The host keeps idle connections to the runner in its pool and never reads them:
    stopping must not wait for their TLS close (30 s per connection otherwise)."""
    cluster.add_runner("tls2", cores=1)
    try:
        [t] = run(cluster, command=["true"], targets=["tls2"])
        assert t.state == "completed", t.error
        with cluster.client() as c:
            assert b"".join(c.logs(t.id)) == b""  # the host asked the runner: a pooled call
        proc = cluster.runners["tls2"].proc
        assert proc is not None
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert time.monotonic() - started < 10
    finally:
        cluster.stop_runner("tls2")
        del cluster.runners["tls2"]

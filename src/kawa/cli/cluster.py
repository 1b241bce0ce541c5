"""``kawa up``, ``kawa host``, ``kawa runner`` and ``kawa init``."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kawa.cli.init_tls import init_tls
from kawa.cli.output import CliError

if TYPE_CHECKING:
    from kawa.host.auth import Authenticator

init_app = typer.Typer(
    help="Write configuration and certificates, create tokens.", no_args_is_help=True
)
DEFAULT_IMAGE = "kawa/base:bookworm"
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Config file (default $KAWA_CONFIG).")
]


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kawa"


def _port_free(bind: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind, port))
        except OSError:
            return False
    return True


def _check_image(image: str) -> None:
    import docker
    import docker.errors

    try:
        docker.from_env(timeout=10).images.get(image)
    except docker.errors.ImageNotFound:
        raise CliError(
            f"the default environment's image {image!r} is not in Docker: build it "
            "with scripts/base-image.sh (no registry needed) or pass --image"
        ) from None
    except docker.errors.DockerException as exc:
        raise CliError(f"cannot talk to Docker: {exc}") from None


def up(
    data_dir: Annotated[Path | None, typer.Option(help="Where the cluster keeps its data.")] = None,
    port: Annotated[int, typer.Option(help="Host API port.")] = 8420,
    ssh_port: Annotated[int, typer.Option(help="SSH gateway port.")] = 8422,
    runner_port: Annotated[int, typer.Option(help="Local runner port.")] = 8421,
    bind: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    name: Annotated[str | None, typer.Option(help="Node name of the local runner.")] = None,
    image: Annotated[str, typer.Option(help="Image of the default environment.")] = DEFAULT_IMAGE,
    tls: Annotated[
        bool,
        typer.Option("--tls", help="Serve https with a CA and certificate kept in DATA_DIR/tls."),
    ] = False,
) -> None:
    """Bring up a single-machine cluster: host + one runner, SQLite, default environment."""
    from kawa.cli import local_runner
    from kawa.cli.serve import configure_logging, run_event_loop, serve_all, server
    from kawa.host.app import create_app, prepare_database
    from kawa.host.auth import Authenticator, new_secret
    from kawa.settings import ClientConfig, HostConfig, RunnerConfig, config_path, write_section

    data = (data_dir or _default_data_dir()).resolve()
    data.mkdir(parents=True, exist_ok=True)
    for p in (port, runner_port):
        if not _port_free(bind, p):
            raise CliError(f"port {p} on {bind} is in use: pick another with --port/--runner-port")
    _check_image(image)
    files = _up_certificates(data / "tls", bind) if tls else {}
    scheme = "https" if tls else "http"
    cluster_file = data / "cluster.toml"
    host_cfg = HostConfig.load(
        cluster_file,
        bind=bind,
        port=port,
        ssh_port=ssh_port,
        data_dir=data / "host",
        default_image=image,
        **files,
    )
    if not host_cfg.cluster_secret:
        host_cfg = host_cfg.model_copy(update={"cluster_secret": new_secret()})
    node = name or socket.gethostname()
    runner_cfg = RunnerConfig.load(
        cluster_file,
        name=node,
        host_url=f"{scheme}://127.0.0.1:{port}",
        bind="127.0.0.1",
        port=runner_port,
        advertise_url=f"{scheme}://127.0.0.1:{runner_port}",
        cluster_secret=host_cfg.cluster_secret,
        data_dir=data / "runners" / node,
        **files,
    )
    if not tls:  # the TLS files of an earlier `kawa up --tls` are not used
        plain = {"tls_cert": None, "tls_key": None, "ca_file": None}
        host_cfg, runner_cfg = (
            host_cfg.model_copy(update=plain),
            runner_cfg.model_copy(update=plain),
        )
    write_section(cluster_file, "host", host_cfg.model_dump(mode="json"))
    write_section(cluster_file, "runner", runner_cfg.model_dump(mode="json"))

    sessions = prepare_database(host_cfg)
    token_file = data / "admin-token"
    if token_file.exists():
        token = token_file.read_text().strip()
    else:
        token = Authenticator(sessions, host_cfg.cluster_secret).create_token("admin", "admin")
        token_file.touch(mode=0o600)
        token_file.write_text(token + "\n")
    url = f"{scheme}://{'127.0.0.1' if bind in ('0.0.0.0', '') else bind}:{port}"
    add_machine = _join_line_for_up(sessions, host_cfg, bind, scheme, port)
    client_file = config_path()
    client_cfg = ClientConfig(url=url, token=token, ca_file=files.get("ca_file"))
    write_section(client_file, "client", client_cfg.model_dump(mode="json"))

    configure_logging("WARNING")
    runner_pid = local_runner.fork_runner(runner_cfg)  # a process of its own, as on a node
    host = server(create_app(host_cfg, sessions), bind, port, host_cfg.tls_cert, host_cfg.tls_key)

    import asyncio

    runner_ended: list[int] = []

    async def main() -> None:
        async def announce() -> None:
            await _wait_registered(url, token, node, client_cfg.ca_file)
            typer.echo(
                f"Kawa is up.\n  API:          {url}  (OpenAPI docs at {url}/docs)\n"
                f"  dashboard:    {url}/  (log in with the admin token)\n"
                f"  runner:       {node} at {runner_cfg.url()}\n"
                f"  data:         {data}\n  client config: {client_file}\n"
                f"  admin token:  {token}\n"
                f"Try: kawa task submit --wait -- echo hello"
                + add_machine,
            )

        announcer = asyncio.create_task(announce())
        serving = asyncio.create_task(serve_all(host))
        runner_exit = asyncio.create_task(local_runner.exited(runner_pid))
        await asyncio.wait({serving, runner_exit}, return_when=asyncio.FIRST_COMPLETED)
        if runner_exit.done() and not host.should_exit:  # not a Ctrl-C that stopped both
            runner_ended.append(runner_exit.result())
            host.should_exit = True
        await serving
        announcer.cancel()
        runner_exit.cancel()

    try:
        run_event_loop(main())
    finally:
        local_runner.stop(runner_pid)
    if runner_ended:
        raise CliError(
            f"the local runner stopped on its own (exit code {runner_ended[0]}); "
            "the host was stopped too (its output above says why)"
        )


UP_JOIN_TTL = 3600.0
UP_JOIN_USES = 10


def _join_line_for_up(sessions: Any, cfg: Any, bind: str, scheme: str, port: int) -> str:
    """The lines ``kawa up`` prints to add another machine: a join token made now (valid
    an hour, for ten nodes) in the command to run there; a hint instead when the host
    listens on loopback only (no other machine can reach it)."""
    from kawa.advertise import primary_address, url_host
    from kawa.cli.join import join_line
    from kawa.host.auth import local_principal
    from kawa.host.join_service import JoinService
    from kawa.protocol.join import JoinTokenCreate
    from kawa.store.models import ClusterMeta

    if bind.startswith("127.") or bind in ("localhost", "::1"):
        return "\n(with --bind 0.0.0.0 other machines can join this cluster)"
    address = primary_address() if bind in ("0.0.0.0", "", "::") else bind
    with sessions() as s:
        cluster_id = s.get(ClusterMeta, "cluster_id").value
    joins = JoinService(sessions, cluster_id, cfg.cluster_secret, cfg.heartbeat_interval)
    spec = JoinTokenCreate(ttl=UP_JOIN_TTL, uses=UP_JOIN_USES, note="kawa up")
    made = joins.create(spec, local_principal())
    line = join_line(f"{scheme}://{url_host(address)}:{port}", made.token)
    return (
        f"\nAdd a machine (token valid 1h, {UP_JOIN_USES} uses; more: kawa join-token create):"
        f"\n  {line}"
    )


def _up_certificates(directory: Path, bind: str) -> dict[str, Path]:
    """The TLS settings of ``kawa up --tls``: certificates in ``directory``, written the
    first time (for localhost, 127.0.0.1, this host and the bind address)."""
    from kawa.tls.certificates import CertificateError, issue

    cert, key = directory / "server.pem", directory / "server-key.pem"
    if not cert.exists():
        addresses = ["127.0.0.1"] + ([bind] if bind not in ("", "0.0.0.0", "127.0.0.1") else [])
        try:
            issue(directory, sorted({"localhost", socket.gethostname()}), addresses)
        except CertificateError as exc:
            raise CliError(f"cannot write certificates for --tls: {exc}") from None
    return {"tls_cert": cert, "tls_key": key, "ca_file": directory / "ca.pem"}


async def _wait_registered(
    url: str, token: str, node: str, ca_file: Path | None = None, timeout: float = 60.0
) -> None:
    import asyncio

    from kawa.client.async_client import AsyncKawaClient
    from kawa.client.errors import KawaError

    deadline = time.monotonic() + timeout
    async with AsyncKawaClient(url, token, ca_file=ca_file) as c:
        while time.monotonic() < deadline:
            try:
                if any(n.name == node for n in await c.nodes()):
                    return
            except KawaError:
                pass
            await asyncio.sleep(0.1)
    raise CliError(f"runner {node} did not register within {timeout:.0f}s")


def host(
    config: ConfigOpt = None,
    port: Annotated[int | None, typer.Option(help="API port.")] = None,
    bind: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory.")] = None,
) -> None:
    """Run the host (API, scheduler, database)."""
    from kawa.cli.serve import configure_logging, run_event_loop, serve_all, server
    from kawa.host.app import create_app
    from kawa.settings import HostConfig

    cfg = HostConfig.load(config, port=port, bind=bind, data_dir=data_dir)
    if not cfg.cluster_secret:
        raise CliError(
            "no cluster_secret configured ([host] cluster_secret or "
            "KAWA_HOST_CLUSTER_SECRET); `kawa init config` writes one"
        )
    configure_logging()
    app = create_app(cfg)
    typer.echo(
        f"Kawa host on {cfg.bind}:{cfg.port}. To add a machine, run `kawa join-token create` "
        "(admin) and the line it prints on that machine."
    )
    run_event_loop(serve_all(server(app, cfg.bind, cfg.port, cfg.tls_cert, cfg.tls_key)))


def runner(
    config: ConfigOpt = None,
    name: Annotated[str | None, typer.Option(help="Node name.")] = None,
    port: Annotated[int | None, typer.Option(help="Runner port.")] = None,
    host_url: Annotated[str | None, typer.Option(help="The host's URL.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Runner state directory.")] = None,
    cores: Annotated[int | None, typer.Option(help="Cores to offer (default: all).")] = None,
) -> None:
    """Run a runner on this node."""
    from kawa.cli.serve import configure_logging, run_event_loop, serve_all, server
    from kawa.runner.app import create_runner_app
    from kawa.settings import RunnerConfig

    cfg = RunnerConfig.load(
        config, name=name, port=port, host_url=host_url, data_dir=data_dir, cores=cores
    )
    if not cfg.cluster_secret:
        raise CliError(
            "no cluster_secret configured ([runner] cluster_secret or KAWA_RUNNER_CLUSTER_SECRET)"
        )
    configure_logging()
    app = create_runner_app(cfg)
    run_event_loop(serve_all(server(app, cfg.bind, cfg.port, cfg.tls_cert, cfg.tls_key)))


@init_app.command("config")
def init_config(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write (default: config path).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented configuration file with a fresh cluster secret."""
    from kawa.host.auth import new_secret
    from kawa.settings import config_path

    path = output or config_path()
    if path.exists() and not force:
        raise CliError(f"{path} exists; use --force to overwrite")
    from kawa.cli.config_template import render

    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(render(new_secret(), socket.gethostname()))
    typer.echo(f"wrote {path}")


@init_app.command("service")
def init_service(
    host_role: Annotated[bool, typer.Option("--host", help="Write the host's unit.")] = False,
    runner_role: Annotated[bool, typer.Option("--runner", help="Write the runner's unit.")] = False,
    config: ConfigOpt = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for the unit files.")
    ] = Path("/etc/systemd/system"),
) -> None:
    """Write systemd unit files (kawa-host.service / kawa-runner.service)."""
    import sys

    from kawa.cli.service_units import render_unit
    from kawa.settings import config_path

    roles = [r for r, chosen in (("host", host_role), ("runner", runner_role)) if chosen]
    if not roles:
        raise CliError("choose --host, --runner or both", 2)
    cfg = (config or config_path()).resolve()
    output.mkdir(parents=True, exist_ok=True)
    for role in roles:
        path = output / f"kawa-{role}.service"
        path.write_text(render_unit(role, sys.executable, cfg))
        typer.echo(f"wrote {path}")
    typer.echo(
        "then: systemctl daemon-reload && systemctl enable --now "
        + " ".join(f"kawa-{r}" for r in roles)
    )


@init_app.command("token")
def init_token(
    config: ConfigOpt = None,
    user: Annotated[str, typer.Option(help="User the token belongs to.")] = "admin",
    role: Annotated[str, typer.Option(help="viewer, user or admin.")] = "admin",
) -> None:
    """Create an API token in the host's database and print it."""
    try:
        token = _authenticator(config).create_token(user, role)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    typer.echo(token)


@init_app.command("tokens")
def init_tokens(config: ConfigOpt = None) -> None:
    """List the API tokens in the host's database (id, user, role, created)."""
    from kawa.cli.output import table

    rows = _authenticator(config).tokens()
    table(
        "API tokens",
        ["ID", "USER", "ROLE", "CREATED"],
        [[str(i), user, role, f"{at:%Y-%m-%d %H:%M}"] for i, user, role, at in rows],
    )


@init_app.command("revoke-token")
def init_revoke_token(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `kawa init tokens`).")],
    config: ConfigOpt = None,
) -> None:
    """Remove an API token from the host's database: within 10 seconds no host accepts it."""
    from kawa.cli.output import visible

    try:
        user, role = _authenticator(config).revoke_token(token_id)
    except LookupError as exc:
        raise CliError(str(exc), 2) from None
    typer.echo(f"revoked token {token_id} (user {visible(user)}, role {role})")


def _authenticator(config: Path | None) -> Authenticator:
    """The host's token store, opened as ``kawa host`` opens it."""
    from kawa.host.app import prepare_database
    from kawa.host.auth import Authenticator
    from kawa.settings import HostConfig

    cfg = HostConfig.load(config)
    if not cfg.cluster_secret:
        raise CliError("no cluster_secret configured; run `kawa init config` first")
    return Authenticator(prepare_database(cfg), cfg.cluster_secret)


init_app.command("tls")(init_tls)  # its own module: kawa.cli.init_tls


def _init_join_token(
    ttl: Annotated[str, typer.Option(help="How long it is valid: 30m, 1h, 2d.")] = "1h",
    uses: Annotated[int, typer.Option(help="How many nodes may join with it.")] = 1,
    note: Annotated[str, typer.Option(help="A note shown by `kawa join-token list`.")] = "",
    url: Annotated[
        str | None, typer.Option(help="Host URL for the printed join line (default: found).")
    ] = None,
) -> None:
    """Make a join token and print the line to run on a new machine (as `kawa join-token
    create`; `kawa join-token list` and `revoke` manage them)."""
    from kawa.cli.join import create

    create(ttl=ttl, uses=uses, note=note, url=url)


init_app.command("join-token")(_init_join_token)

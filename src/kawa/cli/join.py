"""``kawa join URL TOKEN`` (a machine joins the cluster) and ``kawa join-token …``
(admins make, list and revoke the tokens it takes)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kawa.cli.output import CliError

if TYPE_CHECKING:
    from kawa.protocol.join import JoinAccepted

tokens_app = typer.Typer(
    help="Join tokens: short-lived, revocable passes for new nodes (admin).",
    no_args_is_help=True,
)
UNIT_DIR = Path("/etc/systemd/system")


def join_line(url: str, token: str) -> str:
    """The command to run on another machine to add it to the cluster at ``url``."""
    return f"kawa join {shlex.quote(url)} {shlex.quote(token)}"


def _default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/kawa-runner")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kawa-runner"


def _checked_url(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise CliError(f"bad host URL {url!r}: {exc}", 2) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(
            f"bad host URL {url!r}: expected http(s)://HOST:PORT, e.g. http://10.0.0.1:8420", 2
        )
    if parts.path.strip("/"):
        raise CliError(f"bad host URL {url!r}: give the host's base URL, without a path", 2)
    return f"{parts.scheme}://{parts.netloc}"


def exchange(url: str, token: str, name: str, ca_file: Path | None = None) -> JoinAccepted:
    """Check the host at ``url`` and trade ``token`` for the runner's credentials."""
    from kawa.client import KawaClient
    from kawa.client.errors import KawaError
    from kawa.protocol.join import PROTOCOL_VERSION, JoinRequest, token_cluster

    cluster = token_cluster(token)
    if cluster is None:
        raise CliError(
            "that is not a join token: they look like kawajoin.<cluster id>.<secret> "
            "(`kawa join-token create` on the host prints one)",
            2,
        )
    with KawaClient(url, "", timeout=15, ca_file=ca_file) as c:
        try:
            health = c.health()
        except KawaError as exc:
            hint = "(is the URL the Kawa host's, and its port open?)"
            raise CliError(f"{exc.message} {hint}") from None
        if "cluster_id" not in health:
            raise CliError(f"{url} does not answer as a Kawa host (no cluster id in /health)")
        theirs = health.get("protocol_version")
        if theirs is None:
            raise CliError(
                f"the host at {url} runs an older Kawa ({health.get('version', '?')}) that "
                f"cannot add nodes with `kawa join` (protocol {PROTOCOL_VERSION} here): upgrade "
                "the host, or configure this runner by hand"
            )
        if theirs != PROTOCOL_VERSION:
            raise CliError(
                f"protocol mismatch: the host at {url} speaks Kawa protocol {theirs} "
                f"(Kawa {health.get('version', '?')}), this machine {PROTOCOL_VERSION}: install "
                "the same Kawa release on both"
            )
        if health["cluster_id"] != cluster:
            raise CliError(
                f"this join token is for cluster {cluster}, but {url} runs cluster "
                f"{health['cluster_id']}: check the URL or ask this cluster's admin for a token"
            )
        req = JoinRequest(token=token.strip(), name=name, protocol_version=PROTOCOL_VERSION)
        try:
            return c.join(req)
        except KawaError as exc:
            raise CliError(f"the host refused to join this node: {exc.message}") from None


def join(
    url: Annotated[str, typer.Argument(help="The host's URL, e.g. http://10.0.0.1:8420.")],
    token: Annotated[str, typer.Argument(help="A join token (`kawa join-token create`).")],
    name: Annotated[str | None, typer.Option(help="Node name (default: hostname).")] = None,
    advertise: Annotated[
        str | None,
        typer.Option(help="URL the host reaches this runner at (default: found by route)."),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Runner state directory.")] = None,
    port: Annotated[int, typer.Option(help="Runner port.")] = 8421,
    bind: Annotated[str, typer.Option(help="Address the runner listens on.")] = "0.0.0.0",
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Runner config to write (DATA_DIR/runner.toml)."),
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option(help="CA certificates (PEM) of a host serving https.")
    ] = None,
    service: Annotated[
        bool, typer.Option("--service", help="Install and start a systemd unit instead.")
    ] = False,
    no_start: Annotated[
        bool, typer.Option("--no-start", help="Write the configuration only.")
    ] = False,
) -> None:
    """Join this machine to a cluster: trade the token, write the runner's config, start it."""
    import re
    import socket

    from kawa.protocol.bounds import MAX_NODE_NAME
    from kawa.settings import ConfigError, RunnerConfig, write_section

    host_url = _checked_url(url)
    node = name or socket.gethostname().split(".")[0]
    if len(node) > MAX_NODE_NAME or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", node):
        raise CliError(f"bad node name {node!r}: letters, digits, '.', '_' and '-' (set --name)", 2)
    if advertise is not None:
        _checked_url(advertise)
    if service and not Path("/run/systemd/system").is_dir():
        raise CliError("--service needs systemd running as PID 1; run without it (foreground)", 2)
    data = (data_dir or _default_data_dir()).resolve()
    config_file = (config or data / "runner.toml").resolve()
    for path in (data, config_file.parent):
        _check_writable(path)
    accepted = exchange(host_url, token, node, ca_file)
    try:
        cfg = RunnerConfig.load(
            Path("/nonexistent"),  # only what is given here: not another config's values
            name=node,
            host_url=host_url,
            bind=bind,
            port=port,
            advertise_url=advertise,
            cluster_secret=accepted.cluster_secret,
            data_dir=data,
            ca_file=ca_file,
        )
    except ConfigError as exc:
        raise CliError(str(exc), 2) from None
    data.mkdir(parents=True, exist_ok=True)
    write_section(config_file, "runner", cfg.model_dump(mode="json"))
    typer.echo(
        f"joined cluster {accepted.cluster_id} as {node}; runner config: {config_file}\n"
        f"  the host will reach this runner at {cfg.url()}"
    )
    if no_start:
        typer.echo(f"start it with: kawa runner --config {shlex.quote(str(config_file))}")
        return
    if service:
        _install_service(config_file)
        return
    from kawa.cli.serve import configure_logging, run_event_loop, serve_all, server
    from kawa.runner.app import create_runner_app

    configure_logging()
    app = create_runner_app(cfg)
    run_event_loop(serve_all(server(app, cfg.bind, cfg.port, cfg.tls_cert, cfg.tls_key)))


def _check_writable(path: Path) -> None:
    """CliError unless ``path`` exists writable or can be made (checked before the token
    is used, so a refusal here costs no use)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"cannot write {path} ({existing} is not a writable directory)", 2)


def _install_service(config_file: Path) -> None:
    import subprocess
    import sys

    from kawa.cli.service_units import render_unit

    unit = UNIT_DIR / "kawa-runner.service"
    unit.write_text(render_unit("runner", sys.executable, config_file))
    enable = ["systemctl", "enable", "--now", "kawa-runner"]
    for command in (["systemctl", "daemon-reload"], enable):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise CliError(f"{shlex.join(command)} failed: {done.stderr.strip()}")
    typer.echo(f"wrote {unit}; kawa-runner is enabled and started (journalctl -u kawa-runner)")


@tokens_app.command("create")
def create(
    ttl: Annotated[str, typer.Option(help="How long it is valid: 30m, 1h, 2d.")] = "1h",
    uses: Annotated[int, typer.Option(help="How many nodes may join with it.")] = 1,
    note: Annotated[str, typer.Option(help="A note shown by `list`.")] = "",
    url: Annotated[
        str | None, typer.Option(help="Host URL for the printed join line (default: found).")
    ] = None,
) -> None:
    """Make a join token and print the line to run on the new machine."""
    from kawa.cli.context import client
    from kawa.core.units import UnitError, parse_duration
    from kawa.protocol.join import MAX_JOIN_TTL, JoinTokenCreate

    try:
        seconds = parse_duration(ttl)
    except UnitError as exc:
        raise CliError(str(exc), 2) from None
    if seconds > MAX_JOIN_TTL:
        raise CliError(f"--ttl {ttl} is too long: at most 30d", 2)
    if uses < 1:
        raise CliError("--uses must be at least 1", 2)
    with client() as c:
        made = c.create_join_token(JoinTokenCreate(ttl=seconds, uses=uses, note=note))
        host_url = _checked_url(url) if url else reachable_url(c.url)
    typer.echo(
        f"join token {made.view.id} (valid until {made.view.expires_at:%Y-%m-%d %H:%M UTC}, "
        f"{uses} use(s)):\n{made.token}\n\nOn the new machine run:\n  "
        + join_line(host_url, made.token)
    )


def reachable_url(url: str) -> str:
    """``url`` with a loopback or wildcard host replaced by this machine's own address
    (what another machine would use to reach it)."""
    from urllib.parse import urlsplit

    from kawa.advertise import primary_address, url_host

    parts = urlsplit(url)
    if parts.hostname in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::", None):
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{url_host(primary_address())}{port}"
    return url.rstrip("/")


@tokens_app.command("list")
def list_tokens(json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List join tokens (their values are never shown again)."""
    from kawa.cli.context import client
    from kawa.cli.output import print_json, table

    with client() as c:
        tokens = c.join_tokens()
    if json:
        return print_json(tokens)
    table(
        None,
        ["ID", "STATE", "USED", "EXPIRES", "BY", "NOTE"],
        [
            (
                t.id,
                t.state,
                f"{t.used}/{t.uses}",
                f"{t.expires_at:%Y-%m-%d %H:%M}",
                t.created_by,
                t.note,
            )
            for t in tokens
        ],
    )


@tokens_app.command("revoke")
def revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (`list`).", min=1)],
) -> None:
    """Revoke a join token: no node may join with it any more."""
    from kawa.cli.context import client

    with client() as c:
        view = c.revoke_join_token(token_id)
    typer.echo(f"join token {view.id} revoked")

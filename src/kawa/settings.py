"""Configuration: one TOML file with [host], [runner] and [client] sections.

Precedence: command-line flags > ``KAWA_<SECTION>_<KEY>`` environment variables > the
TOML file > defaults. The file is ``$KAWA_CONFIG`` when set, else
``~/.config/kawa/config.toml`` (``$XDG_CONFIG_HOME`` respected).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from kawa import config_file
from kawa.config_file import CLIENT_TIMEOUT, CLIENT_URL
from kawa.config_file import ConfigError as ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
    section: ClassVar[str] = ""

    @classmethod
    def load(cls, path: Path | None = None, **overrides: Any) -> Self:
        """Defaults < file section < environment < non-None ``overrides``."""
        section = cls.section
        data = config_file.section_values(section, cls.model_fields, path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
                for e in exc.errors()
            )
            raise ConfigError(f"invalid [{section}] configuration: {problems}") from None


def _loadable_ca(path: Path | None) -> Path | None:
    from kawa.tls.contexts import client_context

    client_context(path)  # TLSFileError (a ValueError) says what is wrong with it
    return path


CaFile = Annotated[Path | None, AfterValidator(_loadable_ca)]


def _check_tls_pair(cert: Path | None, key: Path | None) -> None:
    """ValueError unless neither or both are set, and then load as a certificate + key."""
    if (cert is None) != (key is None):
        have, lack = ("tls_cert", "tls_key") if key is None else ("tls_key", "tls_cert")
        raise ValueError(f"{have} is set without {lack}: TLS needs both")
    if cert is not None and key is not None:
        from kawa.tls.contexts import check_server_files

        check_server_files(cert, key)


class HostConfig(_Section):
    section: ClassVar[str] = "host"
    bind: str = "0.0.0.0"
    port: int = Field(default=8420, ge=1, le=65535)
    ssh_port: int = Field(default=8422, ge=0, le=65535)
    data_dir: Path = Path("/var/lib/kawa")
    database_url: str | None = None
    """SQLAlchemy URL; default SQLite at ``data_dir/kawa.db``. ``postgresql://…`` works too."""
    cluster_secret: str = Field(default="", min_length=0)
    heartbeat_interval: float = Field(default=2.0, gt=0)
    node_timeout: float = Field(default=10.0, gt=0)
    strategy: str = Field(default="binpack", pattern="^(binpack|spread)$")
    starvation_after: float = Field(default=300.0, gt=0)
    default_container: str = "default"
    default_image: str | None = None
    """Local image that backs the default environment until one is packaged."""
    shared_dir: Path | None = None
    keep_versions: int = Field(default=3, ge=1)
    """Packaged versions kept per environment (older tarballs are removed)."""
    sweep_limit: int = Field(default=10_000, ge=1)
    """The most combinations one ``kawa task submit --sweep`` may have."""
    admin_ssh_keys: Path | None = None
    """authorized_keys file whose keys the SSH gateway lets reach every VPS."""
    ssh_fast_path: bool = True
    """Let the SSH gateway trim asyncssh's per-packet costs through its internals (only
    on the asyncssh versions that was written for); false: asyncssh's own, slower path."""
    stream_relay: str = Field(default="splice", pattern="^(splice|frames)$")
    """How the host carries terminal and forwarding sessions to runners: ``splice``
    passes the bytes between the two WebSockets in the kernel; ``frames`` reads and
    checks every frame in Python (slower; for servers that cannot hand over sockets).
    With TLS on either side the bytes are encrypted per connection: ``frames`` is used."""
    vps_retention: float = Field(default=7 * 86400.0, ge=0)
    """Seconds a stopped (or otherwise ended) VPS keeps its container and snapshots before
    the host removes them as ``kawa vps rm`` does; 0 keeps them forever."""
    metrics_public: bool = False
    """Serve ``/metrics`` without a token; by default a token of any role is needed."""
    audit_max_rows: int = Field(default=100_000, ge=1)
    """Audit log entries kept; older ones are removed (at startup, then once a minute)."""
    tls_cert: Path | None = None
    """Certificate (PEM, intermediates after it) the API serves https and wss with."""
    tls_key: Path | None = None
    """The private key (PEM) of ``tls_cert``."""
    ca_file: CaFile = None
    """CA certificates (PEM) that runners serving https are verified with
    (default: the system's)."""
    api_threads: int = Field(default=8, ge=1, le=256)
    """Worker threads that run API calls' database work at once (more wait their turn):
    few keep the event loop's share of the interpreter large under load."""
    submit_limit: int = Field(default=256, ge=1)
    """Submissions handled at once; one more is answered 429 with ``Retry-After``."""
    check_runner_reachable: bool = True
    """Refuse a runner's registration unless the host reaches it back at the URL it
    advertises (a GET of its ``/health`` with a short timeout)."""

    @model_validator(mode="after")
    def _tls(self) -> Self:
        _check_tls_pair(self.tls_cert, self.tls_key)
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'kawa.db'}"


class RunnerConfig(_Section):
    section: ClassVar[str] = "runner"
    name: str = Field(default_factory=socket.gethostname)
    host_url: str = "http://127.0.0.1:8420"
    """The host's URL; several, comma-separated, for hosts sharing one PostgreSQL
    database: the runner talks to whichever of them leads."""
    bind: str = "0.0.0.0"
    port: int = Field(default=8421, ge=1, le=65535)
    advertise_url: str | None = None
    """How the host reaches this runner; default ``http://<address>:<port>``
    (``https://`` with ``tls_cert``), where address is this machine's own address on
    its route to the host (no traffic is sent to find it)."""
    cluster_secret: str = ""
    data_dir: Path = Path("/var/lib/kawa-runner")
    shared_dir: Path | None = None
    local_temp_dir: Path | None = None
    cores: int | None = Field(default=None, ge=1)
    """Cores to offer the scheduler (default: all the machine has)."""
    memory: int | None = Field(default=None, ge=1)
    sysfs_root: Path = Path("/sys")
    gpu_inventory: Path | None = None
    """A recorded GPU inventory (JSON list of GPUs) to report instead of asking NVML:
    for hollow runners and tests. Unset: NVML where present, else no GPUs."""
    allow_native: bool = True
    """Accept native tasks (run on this node's OS, outside any container)."""
    native_user: str | None = None
    """The user native tasks run as (default: the runner's own user)."""
    tls_cert: Path | None = None
    """Certificate (PEM) the runner serves https and wss to the host with."""
    tls_key: Path | None = None
    """The private key (PEM) of ``tls_cert``."""
    ca_file: CaFile = None
    """CA certificates (PEM) that a host serving https is verified with
    (default: the system's)."""

    @model_validator(mode="after")
    def _tls(self) -> Self:
        _check_tls_pair(self.tls_cert, self.tls_key)
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def url(self) -> str:
        if self.advertise_url:
            return self.advertise_url
        from kawa.advertise import advertise_url

        first = self.host_url.split(",", 1)[0].strip()
        return advertise_url(first, self.port, self.tls, self.bind)


class ClientConfig(_Section):
    section: ClassVar[str] = "client"
    url: str = CLIENT_URL
    """The host's URL; several, comma-separated, for hosts sharing one PostgreSQL
    database: the first that answers is used."""
    token: str = ""
    timeout: float = Field(default=CLIENT_TIMEOUT, gt=0)
    ca_file: CaFile = None
    """CA certificates (PEM) that a host serving https is verified with
    (default: the system's)."""


def config_path() -> Path:
    """The configuration file (see :func:`kawa.config_file.config_path`)."""
    return Path(config_file.config_path())


def read_toml(path: Path) -> dict[str, Any]:
    """The file's tables; empty when there is no file."""
    return config_file.read_toml(path)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_section(path: Path, section: str, values: dict[str, Any]) -> None:
    """Replace ``[section]`` in the TOML file at ``path`` (0600), keeping other sections."""
    existing = read_toml(path)
    existing[section] = {k: v for k, v in values.items() if v is not None}
    lines: list[str] = []
    for name, body in existing.items():
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in body.items())
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text("\n".join(lines))
    tmp.replace(path)

"""The SSH gateway: a real SSH server on the host (``host.ssh_port``, default 8422).

It exists so that stock OpenSSH reaches a VPS without Kawa installed on the client::

    ssh -J kawa@HOST:8422 root@<vps-id>

Users authenticate by public key: the key a VPS was created with opens that VPS, and the
keys in ``host.admin_ssh_keys`` (an authorized_keys file) open every VPS. The only thing
the gateway does is ``direct-tcpip`` to ``<vps id | unique id prefix | name>:22``, relayed
through the VPS's runner over the same forward session as ``kawa forward``
(docs/streams.md); shells, commands, other ports and reverse forwarding are refused.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from kawa.core.task_states import TaskState
from kawa.gateway import asyncssh_fast_path
from kawa.gateway.channel import CIPHERS, WINDOW, ChannelSession
from kawa.gateway.directory import VpsDirectory
from kawa.gateway.upstream import SSH_PORT, runner_session, runner_tunnel
from kawa.mux.stream import SessionClosed, StreamError
from kawa.relay.pipe import relay
from kawa.ws.dial import Closed

if TYPE_CHECKING:
    from kawa.settings import HostConfig

log = logging.getLogger(__name__)

HOST_KEY_FILE = "ssh_gateway_host_key"
_PROHIBITED = asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED


def host_key(data_dir: Path) -> asyncssh.SSHKey:
    """The gateway's ed25519 host key, created once and kept under the data dir."""
    path = data_dir / HOST_KEY_FILE
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519", comment="kawa-gateway")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_bytes(key.export_private_key())
    tmp.replace(path)
    return key


def _key_id(text: str) -> tuple[str, str] | None:
    parts = text.split()
    return (parts[0], parts[1]) if len(parts) >= 2 else None


def admin_keys(path: Path | None) -> set[tuple[str, str]]:
    """(type, base64) of every key in an authorized_keys-style file (missing → none)."""
    if path is None:
        return set()
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        log.warning("cannot read admin SSH keys %s: %s", path, exc)
        return set()
    keys = set()
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#") and (kid := _key_id(line)) is not None:
            keys.add(kid)
    return keys


class SSHGateway:
    """The gateway's SSH server. It asks ``tasks`` which VPS a reference names and
    which keys open it, and reaches runners served over https with ``runner_tls``."""

    def __init__(
        self, config: HostConfig, tasks: VpsDirectory, runner_tls: ssl.SSLContext | None = None
    ) -> None:
        self.config = config
        self.tasks = tasks
        self.runner_tls = runner_tls
        self.fast_path = config.ssh_fast_path
        """Whether connections go on the fast path through asyncssh's internals (off:
        ``host.ssh_fast_path`` or an asyncssh version it was not written for)."""
        self.server: asyncssh.SSHAcceptor | None = None
        self.relays: set[asyncio.Task[None]] = set()

    # -- who may do what ------------------------------------------------------------
    def known_key(self, key: asyncssh.SSHKey) -> bool:
        kid = _key_id(key.export_public_key().decode())
        if kid is None:
            return False
        if kid in admin_keys(self.config.admin_ssh_keys):
            return True
        return self.tasks.vps_has_key(*kid)

    def resolve(self, ref: str, key: asyncssh.SSHKey) -> tuple[str, str]:
        """(task id, runner URL) of the VPS ``ref`` that ``key`` may reach."""
        kid = _key_id(key.export_public_key().decode())
        vps = self.tasks.vps_access(ref)
        if vps is None:
            raise asyncssh.ChannelOpenError(_PROHIBITED, f"no VPS {ref!r}")
        is_admin = kid in admin_keys(self.config.admin_ssh_keys)
        if not is_admin and _key_id(vps.ssh_key or "") != kid:
            raise asyncssh.ChannelOpenError(_PROHIBITED, f"no VPS {ref!r}")
        if vps.state is not TaskState.RUNNING:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED,
                f"VPS {vps.task_id} is {vps.state.value}, not running",
            )
        if vps.node_url is None:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "VPS has no node")
        return vps.task_id, vps.node_url

    # -- serving --------------------------------------------------------------------
    async def start(self) -> None:
        config = self.config
        gateway = self
        if not self.fast_path:
            log.info("SSH gateway fast path off (host.ssh_fast_path): asyncssh's own path")
        else:
            self.fast_path = asyncssh_fast_path.available()

        class Server(asyncssh.SSHServer):
            def __init__(self) -> None:
                self.key: asyncssh.SSHKey | None = None
                self.conn: asyncssh.SSHServerConnection | None = None
                self.fast: asyncssh_fast_path.FastPath | None = None

            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                self.conn = conn
                if gateway.fast_path:
                    self.fast = asyncssh_fast_path.install(conn)

            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return False

            def public_key_auth_supported(self) -> bool:
                return True

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                if gateway.known_key(key):
                    self.key = key
                    return True
                return False

            def session_requested(self) -> bool:
                raise asyncssh.ChannelOpenError(
                    _PROHIBITED,
                    "this is Kawa's SSH gateway: no shells here; use it as a jump host "
                    "(ssh -J kawa@HOST:PORT root@VPS-ID)",
                )

            def server_requested(self, listen_host: str, listen_port: int) -> bool:
                return False

            def connection_requested(
                self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
            ) -> Any:
                if dest_port != SSH_PORT:
                    raise asyncssh.ChannelOpenError(
                        _PROHIBITED, f"only port {SSH_PORT} of a VPS is reachable, not {dest_port}"
                    )
                assert self.key is not None and self.conn is not None
                task_id, url = gateway.resolve(dest_host, self.key)
                chan = self.conn.create_tcp_channel(window=WINDOW)
                session = ChannelSession(lambda pipe: gateway.spawn(task_id, url, pipe))
                if self.fast is not None:
                    session.packets = self.fast.channel(chan)
                return chan, session

        self.server = await asyncssh.create_server(
            Server,
            config.bind,
            config.ssh_port,
            server_host_keys=[host_key(config.data_dir)],
            encoding=None,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            encryption_algs=CIPHERS,
            compression_algs=["none"],
        )
        log.info("SSH gateway listening on %s:%s", config.bind, config.ssh_port)

    def spawn(self, task_id: str, url: str, pipe: ChannelSession) -> None:
        task = asyncio.get_running_loop().create_task(
            self.carry(task_id, url, pipe), name=f"gateway-relay-{task_id}"
        )
        self.relays.add(task)
        task.add_done_callback(self.relays.discard)

    async def carry(self, task_id: str, url: str, pipe: ChannelSession) -> None:
        """Relay the channel to the VPS's sshd: through a tunnel to the runner (raw
        bytes, docs/streams.md) or, where the runner has none, a forward session."""
        secret = self.config.cluster_secret
        try:
            to_sshd = await runner_tunnel(url, secret, task_id)
            if to_sshd is not None:
                await pipe.join(to_sshd)
                return
            async with runner_session(url, secret, task_id, self.runner_tls) as mux:
                stream = await mux.open({"port": SSH_PORT})
                await relay(pipe, stream)
        except Closed as exc:
            log.info("gateway connection to VPS %s refused: %s", task_id, exc)
        except (OSError, StreamError, SessionClosed, asyncssh.Error) as exc:
            log.info("gateway connection to VPS %s ended: %s", task_id, exc)
        except Exception:
            log.exception("gateway connection to VPS %s failed", task_id)
        finally:
            await pipe.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for task in list(self.relays):
            task.cancel()
        await asyncio.gather(*self.relays, return_exceptions=True)

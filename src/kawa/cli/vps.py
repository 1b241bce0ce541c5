"""``kawa vps …``: persistent containers reached over SSH (docs/vps.md)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kawa.cli import output
from kawa.cli.arguments import VpsArg, display_name
from kawa.cli.context import client
from kawa.cli.output import CliError, human_bytes, print_json, styled, table
from kawa.cli.tables import OutputOpt

if TYPE_CHECKING:
    from kawa.protocol.tasks import TaskSpec, TaskView

app = typer.Typer(
    help="VPS tasks: create, list, status, stop, restart, pause, resume, snapshot, rm, connect.",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
DEFAULT_KEYS = ("id_ed25519.pub", "id_rsa.pub")


def ssh_dir() -> Path:
    return Path.home() / ".ssh"


def read_key(path: Path) -> str:
    """The public key in ``path``, checked (CliError if unreadable or malformed)."""
    from kawa.protocol.tasks import check_public_key

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise CliError(f"cannot read public key {path}: {why}", 2) from None
    try:
        return check_public_key(text)
    except ValueError as exc:
        raise CliError(f"{path}: {exc}", 2) from None


def check_key_string(text: str) -> str:
    from kawa.protocol.tasks import check_public_key

    try:
        return check_public_key(text)
    except ValueError as exc:
        raise CliError(f"--public-key-string: {exc}", 2) from None


def default_key() -> str:
    for name in DEFAULT_KEYS:
        path = ssh_dir() / name
        if path.exists():
            return read_key(path)
    tried = " or ".join(str(ssh_dir() / n) for n in DEFAULT_KEYS)
    raise CliError(
        f"no public key found ({tried}); give --public-key-file, --public-key-string, "
        "--gen-ssh-key, or --no-ssh-key",
        2,
    )


def generate_key(path: Path) -> str:
    """Write a new ed25519 key pair at ``path`` (private, 0600) and ``path.pub``."""
    if shutil.which("ssh-keygen") is None:
        raise CliError("--gen-ssh-key needs ssh-keygen (install openssh-client)")
    if path.exists():
        raise CliError(f"{path} exists; choose another --key-out-file", 2)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    done = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kawa-vps", "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise CliError(f"ssh-keygen failed: {done.stderr.strip()}")
    path.chmod(0o600)
    return read_key(path.with_name(path.name + ".pub"))


def _move_key(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for suffix in ("", ".pub"):
        shutil.move(str(src) + suffix, str(dst) + suffix)
    dst.chmod(0o600)


@app.command()
def create(
    target: Annotated[
        str | None,
        typer.Option("--target", "-t", help="NODE[:NUMA][::GPU[,GPU…]] (default: auto)."),
    ] = None,
    cores: Annotated[int, typer.Option(help="CPU cores.")] = 1,
    memory: Annotated[str | None, typer.Option(help="Memory limit: 512M, 4G, 2Gi.")] = None,
    gpus: Annotated[int, typer.Option(help="Number of GPUs to auto-pick.")] = 0,
    container: Annotated[str | None, typer.Option(help="Environment name (needs sshd).")] = None,
    image: Annotated[str | None, typer.Option(help="Image already on the node.")] = None,
    privileged: Annotated[bool, typer.Option(help="Privileged container (admin).")] = False,
    mount: Annotated[list[str] | None, typer.Option(help="SRC:DST[:ro]; repeatable.")] = None,
    name: Annotated[
        str | None, typer.Option(help="A name for the VPS.", callback=display_name)
    ] = None,
    public_key_file: Annotated[
        Path | None, typer.Option("--public-key-file", help="Public key file for root.")
    ] = None,
    public_key_string: Annotated[
        str | None, typer.Option("--public-key-string", help="Public key text for root.")
    ] = None,
    gen_ssh_key: Annotated[
        bool, typer.Option("--gen-ssh-key", help="Generate an ed25519 key pair.")
    ] = False,
    key_out_file: Annotated[
        Path | None,
        typer.Option("--key-out-file", help="Where --gen-ssh-key writes the private key."),
    ] = None,
    no_ssh_key: Annotated[
        bool, typer.Option("--no-ssh-key", help="No key: passwordless root (unsafe).")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Create a VPS: a persistent container running sshd, reached with `kawa ssh ID`."""
    from pydantic import ValidationError

    from kawa.protocol.tasks import Mount, TaskSpec

    chosen = [
        flag
        for flag, on in (
            ("--public-key-file", public_key_file is not None),
            ("--public-key-string", public_key_string is not None),
            ("--gen-ssh-key", gen_ssh_key),
            ("--no-ssh-key", no_ssh_key),
        )
        if on
    ]
    if len(chosen) > 1:
        raise CliError(f"choose one key option, not {' and '.join(chosen)}", 2)
    if key_out_file is not None and not gen_ssh_key:
        raise CliError("--key-out-file goes with --gen-ssh-key", 2)
    temp_dir: str | None = None
    key: str | None
    if public_key_file is not None:
        key = read_key(public_key_file.expanduser())
    elif public_key_string is not None:
        key = check_key_string(public_key_string)
    elif gen_ssh_key:
        if key_out_file is not None:
            key = generate_key(key_out_file.expanduser())
        else:
            temp_dir = tempfile.mkdtemp(prefix="kawa-key-")
            key = generate_key(Path(temp_dir) / "key")
    elif no_ssh_key:
        key = None
    else:
        key = default_key()
    if container == "NULL":  # the spelling of native execution, which a VPS cannot be
        raise CliError(
            "a VPS needs a container environment: --container NULL means native execution, "
            "which a VPS cannot be; give --container NAME or --image REF, or neither",
            2,
        )
    try:
        try:
            spec = TaskSpec.model_validate(
                dict(
                    kind="vps",
                    targets=[target] if target else [],
                    cores=cores,
                    memory=memory,
                    gpus=gpus,
                    mounts=[Mount.parse(m) for m in mount or []],
                    container=container,
                    image=image,
                    privileged=privileged,
                    name=name,
                    ssh_key=key,
                    network="bridge",
                )
            )
        except (ValidationError, ValueError) as exc:
            from kawa.cli.tasks import _validation_message

            raise CliError(_validation_message(exc), 2) from None
        t = _submit(spec)
        if temp_dir is not None:
            key_out_file = ssh_dir() / f"kawa_vps_{t.id}"
            _move_key(Path(temp_dir) / "key", key_out_file)
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
    if no_ssh_key:
        output.err_console.print(
            "[bold red]WARNING:[/bold red] --no-ssh-key: root has NO password and NO key; "
            "anyone who reaches this VPS's sshd gets a root shell.",
            highlight=False,
        )
    if json:
        return print_json(t)
    typer.echo(f"created VPS {t.id} ({t.target or 'auto'})")
    if gen_ssh_key and key_out_file is not None:
        typer.echo(f"private key: {key_out_file}")
    ident = f" --identity {key_out_file}" if key_out_file is not None else ""
    typer.echo(f"connect: kawa ssh {t.id}{ident}")


def _submit(spec: TaskSpec) -> TaskView:
    """POST the spec as ``KawaClient.submit`` does: through :mod:`kawa.cli.lite` (no
    httpx import, on the VPS startup path) unless the configuration needs the client."""
    from kawa.cli import lite
    from kawa.protocol.tasks import SubmitResponse

    creds = lite.credentials()
    if not lite.usable(creds):
        with client() as c:
            return c.submit(spec).tasks[0]
    body = spec.model_dump(mode="json", exclude_defaults=True)
    return SubmitResponse.model_validate(lite.call(creds, "POST", "/tasks", body)).tasks[0]


def _vps(view: TaskView) -> TaskView:
    if view.kind.value != "vps":
        raise CliError(f"task {view.id} is not a VPS (it is a {view.kind.value} task)")
    return view


@app.command("list")
def list_vps(
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include stopped and ended.")] = False,
    json: JsonOpt = False,
    output: OutputOpt = None,
) -> None:
    """List VPS tasks (running, paused, pending and lost unless --all)."""
    from kawa.cli.tables import listing, relative

    active = ["pending", "assigning", "running", "paused", "lost"]
    with client() as c:
        found = c.tasks(None if all_ else active, kind="vps")
    listing(
        found,
        output,
        json,
        ["ID", "NAME", "STATE", "NODE", "CORES", "MEM", "GPUS", "AGE"],
        lambda t: (
            t.id,
            t.name,
            styled(t.state.value),
            t.node or f"({t.waiting_reason or '-'})",
            t.cores,
            human_bytes(t.memory),
            ",".join(map(str, t.gpu_ids)) or "-",
            relative(t.created_at),
        ),
        lambda t: t.id,
        flex=["NAME", "NODE"],
    )


def fingerprint(key: str | None) -> str | None:
    if not key:
        return None
    import base64
    import hashlib

    blob = base64.b64decode(key.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest} ({key.split()[0]})"


@app.command()
def status(vps_id: VpsArg, json: JsonOpt = False) -> None:
    """Show one VPS in detail, with its history and how to connect."""
    with client() as c:
        t = _vps(c.task(vps_id))
    if json:
        return print_json(t)
    rows = [
        ("id", t.id),
        ("name", t.name),
        ("state", styled(t.state.value)),
        ("target", t.target or "auto"),
        ("node", t.node),
        ("container", f"kawa-{t.node}-{t.id}" if t.node else None),
        ("gpus", ",".join(map(str, t.gpu_ids)) or None),
        ("cores", t.cores),
        ("memory", human_bytes(t.memory)),
        ("environment", t.container or t.image),
        ("key", fingerprint(t.ssh_key) or "none (passwordless root)"),
        ("error", t.error),
        ("created", t.created_at),
        ("started", t.started_at),
        ("finished", t.finished_at),
        ("connect", f"kawa ssh {t.id}"),
    ]
    table(None, ["", ""], [(k, v) for k, v in rows if v not in (None, "")])
    table(
        "history",
        ["AT", "FROM", "TO", "CAUSE"],
        [(h.at, h.source.value if h.source else "-", h.target.value, h.cause) for h in t.history],
    )


def _act(vps_id: str, action: str, done: str) -> None:
    from kawa.protocol.tasks import TaskAction

    with client() as c:
        _vps(c.task(vps_id))
        t = c.act(vps_id, TaskAction(action))
    output.console.print(f"{t.id}: {done} (now {styled(t.state.value)})")


@app.command()
def stop(vps_id: VpsArg) -> None:
    """Stop a VPS (its container is kept; `restart` brings it back)."""
    _act(vps_id, "stop", "stop requested")


@app.command()
def restart(vps_id: VpsArg) -> None:
    """Restart a VPS: in place when running or paused, else scheduled again.

    A running or paused VPS's container is stopped and started again (files and keys
    kept); a stopped, failed or lost one is scheduled again (its kept container, else its
    newest snapshot)."""
    _act(vps_id, "restart", "restart requested")


@app.command()
def pause(vps_id: VpsArg) -> None:
    """Freeze a running VPS (SSH connections hang until `resume`)."""
    _act(vps_id, "pause", "pause requested")


@app.command()
def resume(vps_id: VpsArg) -> None:
    """Resume a paused VPS."""
    _act(vps_id, "resume", "resume requested")


@app.command()
def snapshot(vps_id: VpsArg) -> None:
    """Commit the VPS's filesystem; a later restart starts from it (newest 3 kept)."""
    _act(vps_id, "snapshot", "snapshot taken")


@app.command("rm")
def remove(
    vps_id: str,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Stop a running or paused VPS first.")
    ] = False,
) -> None:
    """Remove a VPS's container and snapshots on its node (it stays listed as removed)."""
    with client() as c:
        _vps(c.task(vps_id))
        t = c.remove_vps(vps_id, force)
    output.console.print(f"{t.id}: container and snapshots removed (now {styled(t.state.value)})")


@app.command()
def connect(
    vps_id: VpsArg,
    identity: Annotated[
        Path | None, typer.Option("--identity", "-i", help="Private key for ssh.")
    ] = None,
) -> None:
    """Open an SSH session to a running VPS (stock ssh through Kawa's relay)."""
    from kawa.cli.ssh import run_ssh

    raise typer.Exit(run_ssh(vps_id, identity, []))

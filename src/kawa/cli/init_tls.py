"""``kawa init tls``: a CA and a server certificate for a cluster that speaks TLS."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from kawa.cli.output import CliError


def _default_dir() -> Path:
    from kawa.settings import config_path

    return config_path().parent / "tls"


def init_tls(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to write (default: tls/ beside the config file)."),
    ] = None,
    host_names: Annotated[
        list[str] | None,
        typer.Option("--host-name", help="A DNS name the server is reached at (repeatable)."),
    ] = None,
    ips: Annotated[
        list[str] | None,
        typer.Option("--ip", help="An IP address the server is reached at (repeatable)."),
    ] = None,
    name: Annotated[
        str, typer.Option(help="File name of the server certificate: NAME.pem, NAME-key.pem.")
    ] = "server",
    force: Annotated[bool, typer.Option(help="Replace an existing NAME.pem.")] = False,
) -> None:
    """Write a CA (reused if the directory has one) and a server certificate signed by it.

    Without --host-name and --ip the certificate is for localhost, 127.0.0.1 and this
    machine's host name. Keys are written 0600.
    """
    from kawa.tls.certificates import CertificateError, issue

    names, addresses = list(host_names or []), list(ips or [])
    if not names and not addresses:
        names, addresses = sorted({"localhost", socket.gethostname()}), ["127.0.0.1"]
    where = (directory or _default_dir()).absolute()
    try:
        files = issue(where, names, addresses, stem=name, force=force)
    except CertificateError as exc:
        raise CliError(str(exc), 2) from None
    except OSError as exc:
        raise CliError(f"cannot write to {where}: {exc.strerror or exc}") from None
    if files.ca_created:
        typer.echo(f"wrote CA {files.ca_cert} (its key {files.ca_key} stays private, mode 0600)")
    else:
        typer.echo(f"using the CA in {files.ca_cert}")
    typer.echo(f"wrote {files.cert} and {files.key} for {', '.join(names + addresses)}")
    server = names[0] if names else addresses[0]
    if ":" in server:  # an IPv6 address
        server = f"[{server}]"
    typer.echo(
        "\nConfiguration (every process that calls another verifies it with ca_file):\n"
        f"[host]\n{_line('tls_cert', files.cert)}\n{_line('tls_key', files.key)}\n"
        f"{_line('ca_file', files.ca_cert)}  # verifies runners that serve https\n\n"
        f'[runner]\nhost_url = "https://{server}:8420"\n'
        f"{_line('tls_cert', files.cert)}  # a runner on another machine: its own --name\n"
        f"{_line('tls_key', files.key)}\n{_line('ca_file', files.ca_cert)}  # verifies the host\n\n"
        f'[client]\nurl = "https://{server}:8420"\n{_line("ca_file", files.ca_cert)}'
    )


def _line(key: str, path: Path) -> str:
    text = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return f'{key} = "{text}"'

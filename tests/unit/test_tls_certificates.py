"""The certificates ``kawa init tls`` writes: names, key usages, file modes, and that a
TLS client trusting the CA accepts them (handshakes in memory, no sockets)."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from kawa.cli.cluster import init_app
from kawa.cli.output import CliError
from kawa.settings import ClientConfig, ConfigError, HostConfig, RunnerConfig
from kawa.tls.certificates import CertificateError, issue
from kawa.tls.contexts import TLSFileError, check_server_files, client_context


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def handshake(ca: Path, cert: Path, key: Path, server_name: str) -> None:
    """A TLS handshake between a client trusting ``ca`` and a server with ``cert``;
    raises what the client raises (ssl.SSLCertVerificationError when it does not verify)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(ca))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError(f"the handshake did not finish: {done}")


def test_writes_a_ca_and_a_server_certificate_with_the_names_asked(tmp_path: Path) -> None:
    d = tmp_path / "tls"
    files = issue(d, ["localhost", "node1.example"], ["127.0.0.1", "::1"])
    assert files.ca_created
    assert {p.name for p in d.iterdir()} == {"ca.pem", "ca-key.pem", "server.pem", "server-key.pem"}
    assert (mode(d / "ca-key.pem"), mode(d / "server-key.pem")) == (0o600, 0o600)
    for public in (d / "ca.pem", d / "server.pem"):  # 0644 less the umask
        assert mode(public) & ~0o644 == 0 and mode(public) & 0o600 == 0o600

    server = load(files.cert)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "node1.example"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    for name in ("localhost", "node1.example", "127.0.0.1"):
        handshake(files.ca_cert, files.cert, files.key, name)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(files.ca_cert, files.cert, files.key, "elsewhere.example")


def test_key_usages_fit_a_ca_and_a_server(tmp_path: Path) -> None:
    files = issue(tmp_path, ["localhost"], [])
    ca, server = load(files.ca_cert), load(files.cert)
    assert ca.subject == ca.issuer == server.issuer

    ca_basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    ca_usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert ca_basic.critical and ca_basic.value.ca
    assert (
        ca_usage.critical and ca_usage.value.key_cert_sign and not ca_usage.value.digital_signature
    )

    basic = server.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = server.extensions.get_extension_for_class(x509.KeyUsage)
    extended = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert basic.critical and not basic.value.ca
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert list(extended) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert server.not_valid_after_utc <= ca.not_valid_after_utc
    assert (server.not_valid_after_utc - server.not_valid_before_utc).days <= 826


def test_a_second_certificate_is_signed_by_the_same_ca(tmp_path: Path) -> None:
    first = issue(tmp_path, ["host1"], [])
    ca_bytes = first.ca_cert.read_bytes()
    second = issue(tmp_path, ["node2"], [], stem="node2")
    assert not second.ca_created
    assert second.ca_cert.read_bytes() == ca_bytes
    assert (second.cert.name, second.key.name) == ("node2.pem", "node2-key.pem")
    handshake(second.ca_cert, second.cert, second.key, "node2")


def test_another_ca_does_not_verify(tmp_path: Path) -> None:
    ours = issue(tmp_path / "a", ["localhost"], [])
    theirs = issue(tmp_path / "b", ["localhost"], [])
    with pytest.raises(ssl.SSLCertVerificationError, match="verify failed"):
        handshake(theirs.ca_cert, ours.cert, ours.key, "localhost")


@pytest.mark.parametrize(
    ("names", "ips", "message"),
    [
        (["bad name"], [], "not a DNS host name"),
        (["-x"], [], "not a DNS host name"),
        ([], ["300.1.1.1"], "not an IP address"),
        ([], [], "at least one name or address"),
    ],
)
def test_bad_names_are_refused_and_nothing_is_written(
    tmp_path: Path, names: list[str], ips: list[str], message: str
) -> None:
    d = tmp_path / "tls"
    with pytest.raises(CertificateError, match=message):
        issue(d, names, ips)
    assert not d.exists()


def test_an_existing_certificate_is_kept_unless_forced(tmp_path: Path) -> None:
    files = issue(tmp_path, ["localhost"], [])
    before = files.cert.read_bytes()
    with pytest.raises(CertificateError, match="exists; use --force"):
        issue(tmp_path, ["other"], [])
    assert files.cert.read_bytes() == before
    issue(tmp_path, ["other"], [], force=True)
    assert files.cert.read_bytes() != before


def test_half_a_ca_is_refused(tmp_path: Path) -> None:
    files = issue(tmp_path, ["localhost"], [])
    files.ca_key.unlink()
    with pytest.raises(CertificateError, match=r"ca-key\.pem is missing"):
        issue(tmp_path, ["x"], [], stem="x")
    assert not (tmp_path / "x.pem").exists()


def test_the_command_writes_files_and_prints_the_configuration(tmp_path: Path) -> None:
    d = tmp_path / "tls"
    result = CliRunner().invoke(init_app, ["tls", "--dir", str(d), "--host-name", "h1"])
    assert result.exit_code == 0, result.output
    assert f'tls_cert = "{d / "server.pem"}"' in result.output
    assert f'ca_file = "{d / "ca.pem"}"' in result.output
    assert 'url = "https://h1:8420"' in result.output
    san = load(d / "server.pem").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["h1"]
    again = CliRunner().invoke(init_app, ["tls", "--dir", str(d), "--ip", "nope"])
    assert isinstance(again.exception, CliError) and again.exception.code == 2
    assert again.exception.message == "not an IP address: 'nope'"


def test_the_configuration_checks_tls_files(tmp_path: Path) -> None:
    files = issue(tmp_path, ["localhost"], [])
    cfg = HostConfig(tls_cert=files.cert, tls_key=files.key, ca_file=files.ca_cert)
    assert cfg.tls
    runner = RunnerConfig(tls_cert=files.cert, tls_key=files.key, port=9000)
    assert runner.url().startswith("https://") and runner.url().endswith(":9000")
    with pytest.raises(ConfigError, match="tls_cert is set without tls_key: TLS needs both"):
        HostConfig.load(tmp_path / "none.toml", tls_cert=files.cert)
    with pytest.raises(ConfigError, match="the key is not the certificate's"):
        RunnerConfig.load(tmp_path / "none.toml", tls_cert=files.cert, tls_key=files.ca_key)
    with pytest.raises(ConfigError, match=r"ca_file: .*cannot load CA certificates from"):
        ClientConfig.load(tmp_path / "none.toml", ca_file=tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="it holds no PEM certificate"):
        ClientConfig.load(tmp_path / "none.toml", ca_file=files.key)


def test_contexts(tmp_path: Path) -> None:
    files = issue(tmp_path, ["localhost"], [])
    assert client_context(None) is None
    context = client_context(files.ca_cert)
    assert context is not None and context is client_context(str(files.ca_cert))
    assert context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED
    check_server_files(files.cert, files.key)
    with pytest.raises(TLSFileError, match="No such file"):
        check_server_files(files.cert, tmp_path / "nothing.pem")

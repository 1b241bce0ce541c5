"""A small certificate authority for one cluster (``kawa init tls``).

It writes an ECDSA P-256 CA certificate and key, and server certificates signed by it
for the names and addresses the host and runners are reached at. The keys are written
0600; the certificates are public. An existing CA in the directory is reused, so each
node's certificate can be issued from the same CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 825
"""Validity in days: ten years for the CA; for server certificates the longest that
common TLS clients accept (825 days)."""
CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
_BACKDATE = datetime.timedelta(minutes=5)  # clocks of the nodes differ a little


class CertificateError(ValueError):
    """The request cannot be carried out (bad name or address, files in the way)."""


@dataclass(frozen=True)
class IssuedFiles:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path
    ca_created: bool


def parse_addresses(addresses: list[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """IP addresses for the subject alternative names; CertificateError for a bad one."""
    parsed = []
    for text in addresses:
        try:
            parsed.append(ipaddress.ip_address(text))
        except ValueError:
            raise CertificateError(f"not an IP address: {text!r}") from None
    return parsed


def check_names(names: list[str]) -> list[str]:
    """DNS names for the subject alternative names; CertificateError for a bad one."""
    for name in names:
        labels = name.removeprefix("*.").split(".")
        if not name or len(name) > 253 or not all(_label_ok(label) for label in labels):
            raise CertificateError(f"not a DNS host name: {name!r}")
    return names


def _label_ok(label: str) -> bool:
    return (
        0 < len(label) <= 63
        and label.isascii()
        and all(c.isalnum() or c == "-" for c in label)
        and not label.startswith("-")
        and not label.endswith("-")
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file created 0600 (it is never readable by others)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate (keyCertSign, cRLSign; no intermediates) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def new_server_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: list[str],
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate (serverAuth, digitalSignature) for ``names`` and
    ``addresses``, signed by the CA, and its key."""
    if not names and not addresses:
        raise CertificateError("a server certificate needs at least one name or address")
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = names[0] if names else str(addresses[0])
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(a) for a in addresses]
    now = _now()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(
            min(now + datetime.timedelta(days=SERVER_DAYS), ca_cert.not_valid_after_utc)
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateError(f"cannot read the CA in {directory}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{key_path} is not an ECDSA key")
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise CertificateError(f"{key_path} is not the key of {cert_path}")
    return cert, key


def issue(
    directory: Path,
    names: list[str],
    addresses: list[str],
    stem: str = "server",
    force: bool = False,
) -> IssuedFiles:
    """Write ``STEM.pem`` and ``STEM-key.pem`` for ``names`` and ``addresses`` into
    ``directory``, signed by its CA (``ca.pem``, ``ca-key.pem``), which is created
    first when absent. Refuses to replace an existing server certificate unless
    ``force``; checks everything before writing anything."""
    check_names(names)
    ips = parse_addresses(addresses)
    if not names and not ips:
        raise CertificateError("a server certificate needs at least one name or address")
    if not stem or "/" in stem or stem.startswith(".") or stem in ("ca", "ca-key"):
        raise CertificateError(f"not a usable certificate name: {stem!r}")
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    if not force and (cert_path.exists() or key_path.exists()):
        raise CertificateError(f"{cert_path} exists; use --force to replace it")
    has_cert, has_key = (directory / CA_CERT).exists(), (directory / CA_KEY).exists()
    if has_cert != has_key:
        missing = CA_KEY if has_cert else CA_CERT
        raise CertificateError(f"{directory} holds half a CA: {missing} is missing")
    if has_cert:
        ca_cert, ca_key = _load_ca(directory)
    else:
        ca_cert, ca_key = new_ca(f"Kawa cluster CA ({(names or addresses)[0]})")
    cert, key = new_server_certificate(ca_cert, ca_key, names, ips)
    directory.mkdir(parents=True, exist_ok=True)
    if not has_cert:
        _write_private(directory / CA_KEY, _key_pem(ca_key))
        _write_public(directory / CA_CERT, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return IssuedFiles(directory / CA_CERT, directory / CA_KEY, cert_path, key_path, not has_cert)

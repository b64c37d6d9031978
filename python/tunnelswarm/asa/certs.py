"""The mock ASA's TLS identity: a self-signed certificate made once and kept on disk.

:func:`load_or_create_identity` returns the PEM chain, the PEM key and the
``pin-sha256:`` openconnect's ``--servercert`` takes. With a state directory the files
``mock-asa-cert.pem`` / ``mock-asa-key.pem`` are created on the first start (key mode
0600) and reused afterwards, so the pin stays stable across restarts; without one the
identity lives in memory only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tunnelswarm._core import pin_sha256
from tunnelswarm.errors import ConfigError

__all__ = ["CERT_FILE", "KEY_FILE", "Identity", "load_or_create_identity"]

CERT_FILE: Final = "mock-asa-cert.pem"
KEY_FILE: Final = "mock-asa-key.pem"


@dataclass(frozen=True, slots=True)
class Identity:
    chain_pem: bytes
    key_pem: bytes
    der: bytes
    pin: str


def _make(hostname: str, addresses: tuple[str, ...]) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    alt: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost")]
    for a in addresses:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(a)))
        except ValueError:
            alt.append(x509.DNSName(a))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _identity(chain_pem: bytes, key_pem: bytes) -> Identity:
    try:
        cert = x509.load_pem_x509_certificate(chain_pem)
    except ValueError as e:
        raise ConfigError(f"bad mock ASA certificate: {e}") from None
    der = cert.public_bytes(serialization.Encoding.DER)
    pin = pin_sha256(der)
    if pin is None:
        raise ConfigError("bad mock ASA certificate: no pin-sha256")
    return Identity(chain_pem, key_pem, der, pin)


def load_or_create_identity(
    state_dir: str | Path | None,
    *,
    hostname: str = "ciscoasa",
    addresses: tuple[str, ...] = ("127.0.0.1",),
) -> Identity:
    """The certificate of ``state_dir`` (made there on the first call), or a fresh one
    in memory when ``state_dir`` is None. ConfigError if the directory is unusable."""
    if state_dir is None:
        return _identity(*_make(hostname, addresses))
    d = Path(state_dir)
    cert_path, key_path = d / CERT_FILE, d / KEY_FILE
    try:
        if cert_path.is_file() and key_path.is_file():
            return _identity(cert_path.read_bytes(), key_path.read_bytes())
        d.mkdir(parents=True, exist_ok=True)
        chain, key = _make(hostname, addresses)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        cert_path.write_bytes(chain)
    except OSError as e:
        raise ConfigError(f"state directory {d}: {e.strerror or e}") from None
    return _identity(chain, key)

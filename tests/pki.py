"""Keys and certificates for the auth and TLS tests, made fresh with ``cryptography``."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass
class Pair:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, folder: Path, name: str) -> tuple[Path, Path]:
        cert, key = folder / f"{name}.crt", folder / f"{name}.key"
        cert.write_bytes(self.cert_pem())
        key.write_bytes(self.key_pem())
        return cert, key


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _builder(subject: str, issuer: str, public_key: rsa.RSAPublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


def self_signed(common: str = "dreg-test-ca", ca: bool = True) -> Pair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = _builder(common, common, key.public_key()).add_extension(
        x509.BasicConstraints(ca=ca, path_length=None), critical=True
    )
    return Pair(key, builder.sign(key, hashes.SHA256()))


def server_cert(ca: Pair, host: str = "127.0.0.1") -> Pair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer = ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    builder = _builder(host, str(issuer), key.public_key()).add_extension(
        x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]),
        critical=False,
    )
    return Pair(key, builder.sign(ca.key, hashes.SHA256()))


def libtrust_kid(public_key: rsa.RSAPublicKey) -> str:
    """The key ID Distribution 2.8 expects in a token's ``kid``: base32 of the first 30 bytes of the
    sha256 of the DER SubjectPublicKeyInfo, in 12 groups of 4 joined by ':'."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, 48, 4))

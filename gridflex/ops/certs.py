"""A deployment's own certificate authority: the broker's certificate and one client certificate per identity.

Mutual TLS is the deployment default (`gridflex deploy-config`, the demo): Mosquitto
requires a client certificate signed by this CA and takes the certificate's common name
as the client's username (`use_identity_as_username`), so the per-site ACL is keyed on
the certificate, not on a password that could be shared. Keys are EC P-256 (fast to
make, so the demo and the tests generate theirs at start), signatures SHA-256.

The CA signs only end-entity certificates (`path_length=0`); the broker's certificate
names its host names and IP addresses as subject alternative names, because clients
verify the host they dial against them (Python's `ssl` ignores the common name).
Private keys are written unencrypted with mode 0600: they are mounted as secrets, as
the broker passwords are.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocols.errors import ConfigError

__all__ = ["CertificateAuthority", "IssuedCert", "LoopbackPki", "write_pem"]

#: Clock skew a freshly issued certificate tolerates (its not-before lies this far back).
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedCert:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        """The parsed certificate (for tests and for `deploy-config`'s re-run checks)."""
        return x509.load_pem_x509_certificate(self.cert_pem)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GridFlex"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hostnames: Sequence[str]) -> x509.SubjectAlternativeName:
    """DNS names and IP addresses as the subject alternative names clients check the host against."""
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


class CertificateAuthority:
    """A self-signed CA that issues the broker's and the clients' certificates."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = key

    @classmethod
    def generate(cls, common_name: str = "GridFlex deployment CA", *, valid_days: int = 3650) -> Self:
        """A new CA, valid from a few minutes ago for `valid_days`."""
        key = _new_key()
        now = datetime.now(UTC)
        name = _name(common_name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=valid_days))
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, cert_file: Path, key_file: Path) -> Self:
        """The CA of an earlier run (so a re-run of `deploy-config` keeps every issued certificate valid)."""
        try:
            cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the CA certificate: {exc}", file=str(cert_file)) from None
        try:
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot load the CA key: {exc}", file=str(key_file)) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError("the CA key is not an EC key", file=str(key_file))
        if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise ConfigError("the CA key does not belong to the CA certificate", file=str(key_file))
        return cls(cert, key)

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate, PEM: every client's and the broker's trust anchor."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """The CA's private key, PEM (kept by the operator; never mounted into a service)."""
        return _key_pem(self.key)

    def _issue(
        self,
        common_name: str,
        usage: x509.ObjectIdentifier,
        *,
        hostnames: Sequence[str] = (),
        valid_days: int,
        not_valid_before: datetime | None,
        not_valid_after: datetime | None,
    ) -> IssuedCert:
        key = _new_key()
        now = datetime.now(UTC)
        start = not_valid_before or now - BACKDATE
        end = not_valid_after or now + timedelta(days=valid_days)
        if end <= start:
            raise ValueError("a certificate's not_valid_after must be after its not_valid_before")
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if hostnames:
            builder = builder.add_extension(_san(hostnames), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return IssuedCert(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def issue_server(
        self,
        hostnames: Sequence[str],
        *,
        valid_days: int = 825,
        not_valid_before: datetime | None = None,
        not_valid_after: datetime | None = None,
    ) -> IssuedCert:
        """The broker's certificate for every name and address clients dial it by."""
        if not hostnames:
            raise ValueError("a server certificate needs at least one host name or IP address")
        return self._issue(
            hostnames[0],
            ExtendedKeyUsageOID.SERVER_AUTH,
            hostnames=hostnames,
            valid_days=valid_days,
            not_valid_before=not_valid_before,
            not_valid_after=not_valid_after,
        )

    def issue_client(
        self,
        identity: str,
        *,
        valid_days: int = 825,
        not_valid_before: datetime | None = None,
        not_valid_after: datetime | None = None,
    ) -> IssuedCert:
        """A client certificate whose common name is the broker identity (username = client id)."""
        if not identity:
            raise ValueError("a client certificate needs an identity")
        return self._issue(
            identity,
            ExtendedKeyUsageOID.CLIENT_AUTH,
            valid_days=valid_days,
            not_valid_before=not_valid_before,
            not_valid_after=not_valid_after,
        )


def write_pem(path: Path, data: bytes, *, private: bool) -> None:
    """Write a PEM file; a private key is created 0600 (never world-readable, not even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if private:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        path.chmod(0o600)
    else:
        path.write_bytes(data)
        path.chmod(0o644)


class LoopbackPki:
    """Throwaway TLS and signing material for a demo on loopback, generated at start in the run's folder.

    Files follow `gridflex deploy-config`'s layout, so the same agent overrides serve both:
    `ca.crt`, `<identity>.crt` / `.key` (issued on first use), `broker.crt` / `.key` for
    127.0.0.1 and localhost, and `signing/<site>.<kid>.key` (one HMAC key per site).
    """

    KID = "demo1"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.signing_dir = root / "signing"
        self._ca: CertificateAuthority | None = None

    @property
    def ca_file(self) -> Path:
        """The CA every client verifies the broker against."""
        return self.root / "ca.crt"

    def generate(self) -> None:
        """Make the CA and the broker's certificate (a fresh CA each run: nothing outlives the demo)."""
        self._ca = CertificateAuthority.generate("GridFlex demo CA", valid_days=30)
        write_pem(self.ca_file, self._ca.cert_pem, private=False)
        broker = self._ca.issue_server(["127.0.0.1", "localhost"], valid_days=30)
        write_pem(self.root / "broker.crt", broker.cert_pem, private=False)
        write_pem(self.root / "broker.key", broker.key_pem, private=True)

    def broker_files(self) -> tuple[Path, Path, Path]:
        """(CA, certificate, key) of the broker's TLS listener."""
        return self.ca_file, self.root / "broker.crt", self.root / "broker.key"

    def client(self, identity: str) -> tuple[Path, Path]:
        """(certificate, key) for `identity`, issued now if this run has none yet."""
        cert, key = self.root / f"{identity}.crt", self.root / f"{identity}.key"
        if not cert.exists():
            if self._ca is None:
                raise RuntimeError("LoopbackPki.generate() first")
            issued = self._ca.issue_client(identity, valid_days=30)
            write_pem(cert, issued.cert_pem, private=False)
            write_pem(key, issued.key_pem, private=True)
        return cert, key

    def signing_key(self, site: str) -> tuple[str, Path]:
        """(kid, file) of the site's command-signing key, made now if this run has none yet."""
        path = self.signing_dir / f"{site}.{self.KID}.key"
        if not path.exists():
            write_pem(path, (os.urandom(32).hex() + "\n").encode(), private=True)
        return self.KID, path

"""The deployment CA issues what mutual TLS needs: names, usages, validity; a reloaded CA is the same CA."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gridflex.ops.certs import CertificateAuthority, write_pem
from protocols.errors import ConfigError


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.generate("unit CA")


def test_server_certificate_names_every_host_and_ip_and_chains_to_the_ca(ca: CertificateAuthority) -> None:
    cert = ca.issue_server(["mosquitto", "127.0.0.1"]).certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mosquitto"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert (
        ExtendedKeyUsageOID.SERVER_AUTH
        in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    assert cert.issuer == ca.cert.subject
    cert.verify_directly_issued_by(ca.cert)


def test_client_certificate_carries_the_identity_as_common_name(ca: CertificateAuthority) -> None:
    cert = ca.issue_client("b001").certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "b001"
    assert (
        ExtendedKeyUsageOID.CLIENT_AUTH
        in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_validity_window_can_lie_in_the_past_but_not_end_before_it_starts(ca: CertificateAuthority) -> None:
    past = datetime.now(UTC) - timedelta(days=10)
    cert = ca.issue_client("a", not_valid_before=past, not_valid_after=past + timedelta(days=1)).certificate
    assert cert.not_valid_after_utc < datetime.now(UTC)
    with pytest.raises(ValueError, match="after"):
        ca.issue_client("a", not_valid_before=past, not_valid_after=past)


def test_ca_reloads_from_its_files_and_refuses_a_foreign_key(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    write_pem(tmp_path / "ca.crt", ca.cert_pem, private=False)
    write_pem(tmp_path / "ca.key", ca.key_pem, private=True)
    assert oct((tmp_path / "ca.key").stat().st_mode & 0o777) == "0o600"
    again = CertificateAuthority.load(tmp_path / "ca.crt", tmp_path / "ca.key")
    again.issue_client("b").certificate.verify_directly_issued_by(ca.cert)
    write_pem(tmp_path / "other.key", CertificateAuthority.generate().key_pem, private=True)
    with pytest.raises(ConfigError, match="does not belong"):
        CertificateAuthority.load(tmp_path / "ca.crt", tmp_path / "other.key")
    (tmp_path / "bad.crt").write_text("not a certificate")
    with pytest.raises(ConfigError) as info:
        CertificateAuthority.load(tmp_path / "bad.crt", tmp_path / "ca.key")
    assert info.value.file == str(tmp_path / "bad.crt")

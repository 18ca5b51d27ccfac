"""The cluster CA and registry credentials (dragonball.pki): SANs, chains, modes, htpasswd."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
import stat

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from dragonball import pki


@pytest.fixture(scope="module")
def ca():
    return pki.create_ca()


@pytest.fixture(scope="module")
def server(ca):
    return pki.issue_server_cert(ca, "portal", ips=["10.0.0.5", "127.0.0.1"],
                                 dns_names=["portal.cluster", "localhost"])


def load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_ca_is_a_p256_ca_that_signs_only_leaf_certificates(ca):
    cert = load(ca.cert_pem)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.issuer == cert.subject


def test_server_cert_names_every_ip_and_dns_name(server):
    san = load(server.cert_pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5"),
                                                         ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["portal.cluster", "localhost"]


def test_server_cert_is_a_tls_server_leaf_signed_by_the_ca(ca, server):
    cert, ca_cert = load(server.cert_pem), load(ca.cert_pem)
    cert.verify_directly_issued_by(ca_cert)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_python_ssl_accepts_the_pair(ca, server, tmp_path):
    """The same check a TLS client makes: chain to the CA file, key matches the cert."""
    pki.write_pem_files(server, tmp_path / "server.crt", tmp_path / "server.key")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    assert client.get_ca_certs()[0]["subject"][0][0][1] == "DragonBall cluster CA"


def test_server_cert_never_outlives_its_ca():
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    short_ca = pki.create_ca(days=30, now=start)
    cert = load(pki.issue_server_cert(short_ca, "x", ips=["10.0.0.1"], now=start).cert_pem)
    assert cert.not_valid_after_utc == load(short_ca.cert_pem).not_valid_after_utc


def test_validity_starts_a_little_before_now_for_lagging_clocks():
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    cert = load(pki.create_ca(now=start).cert_pem)
    assert cert.not_valid_before_utc == start - pki.CLOCK_SKEW


@pytest.mark.parametrize("ips,dns", [(["not-an-ip"], []), ([], [])])
def test_bad_or_missing_names_are_refused(ca, ips, dns):
    with pytest.raises(pki.PkiError):
        pki.issue_server_cert(ca, "x", ips=ips, dns_names=dns)


def test_fingerprint_is_sha256_of_the_der(ca):
    der = load(ca.cert_pem).public_bytes(serialization.Encoding.DER)
    assert pki.fingerprint(ca.cert_pem) == hashlib.sha256(der).hexdigest()


def test_key_files_are_0600_and_certs_0644(server, tmp_path):
    pki.write_pem_files(server, tmp_path / "d" / "server.crt", tmp_path / "d" / "server.key")
    assert stat.S_IMODE((tmp_path / "d" / "server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "d" / "server.crt").stat().st_mode) == 0o644
    assert (tmp_path / "d" / "server.key").read_bytes() == server.key_pem
    assert [p.name for p in (tmp_path / "d").iterdir() if p.name.startswith(".")] == []


def test_htpasswd_line_verifies_with_bcrypt_at_cost_5():
    secret = pki.new_secret()
    line = pki.htpasswd_line("dragonball", secret)
    user, hashed = line.split(":", 1)
    assert user == "dragonball"
    assert hashed.startswith("$2b$05$")
    assert bcrypt.checkpw(secret.encode(), hashed.encode())
    assert not bcrypt.checkpw(b"wrong", hashed.encode())
    assert "\n" not in line


@pytest.mark.parametrize("user,password", [("a:b", "x"), ("", "x"), ("u", ""), ("u", "x" * 73),
                                           ("u\n", "x"), ("u", "a\nb")])
def test_htpasswd_refuses_what_would_break_the_file(user, password):
    with pytest.raises(pki.PkiError):
        pki.htpasswd_line(user, password)


def test_new_secret_has_256_random_bits():
    secrets = {pki.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(s) == 43 for s in secrets)  # 32 bytes, base64url without padding

"""The cluster's own certificate authority, and the registry's machine credentials.

Pure functions return PEM bytes or text; `write_pem_files` is the one adapter
that touches the disk (keys 0600). Keys are ECDSA P-256: Go's TLS stack (the
registry, the Docker engine) accepts it everywhere, Ed25519 certificates it
does not accept as widely.

Registry credentials are machine-generated with 256 random bits (`new_secret`),
so their htpasswd hash is bcrypt at cost 5: the registry checks it on every
request (~13 ms at cost 5, ~0.24 s at cost 12, measured), and no dictionary
exists to try against a random 256-bit secret. People's passwords get a slow KDF
elsewhere, never this.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import pathlib
import secrets
import tempfile
from collections.abc import Iterable

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dragonball.errors import PkiError
from dragonball.shared import fingerprints

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity Apple and browsers accept for a server certificate
CLOCK_SKEW = datetime.timedelta(minutes=5)  # servers whose clocks lag a little still agree
HTPASSWD_COST = 5
SECRET_BYTES = 32


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return now or datetime.datetime.now(datetime.timezone.utc)


def create_ca(common_name: str = "DragonBall cluster CA", days: int = CA_DAYS,
              now: datetime.datetime | None = None) -> KeyPair:
    """A new self-signed CA that may sign server certificates (path length 0)."""
    key, start = _new_key(), _now(now)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DragonBall")])
    public = key.public_key()
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - CLOCK_SKEW)
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def subject_alt_names(ips: Iterable[str], dns_names: Iterable[str]) -> list[x509.GeneralName]:
    """SAN entries: IP addresses first, then DNS names; a bad IP raises `PkiError`."""
    names: list[x509.GeneralName] = []
    for ip in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError as e:
            raise PkiError(f"{ip!r} is not an IP address", "give IPv4 or IPv6 addresses") from e
    names += [x509.DNSName(name) for name in dns_names]
    if not names:
        raise PkiError("a server certificate needs at least one IP address or DNS name",
                       "pass the server's address, e.g. its cluster IP")
    return names


def issue_server_cert(ca: KeyPair, common_name: str, ips: Iterable[str] = (),
                      dns_names: Iterable[str] = (), days: int = SERVER_DAYS,
                      now: datetime.datetime | None = None) -> KeyPair:
    """A server certificate signed by `ca` for the given IP and DNS names (TLS server auth)."""
    return _issue_leaf(ca, common_name, subject_alt_names(ips, dns_names),
                       [ExtendedKeyUsageOID.SERVER_AUTH], days, now)


def issue_client_cert(ca: KeyPair, common_name: str, days: int = SERVER_DAYS,
                      now: datetime.datetime | None = None) -> KeyPair:
    """A TLS client certificate signed by `ca`: extended key usage clientAuth only, so it
    cannot serve as a server; its name as common name and DNS name."""
    return _issue_leaf(ca, common_name, [x509.DNSName(common_name)],
                       [ExtendedKeyUsageOID.CLIENT_AUTH], days, now)


def issue_peer_cert(ca: KeyPair, common_name: str, ips: Iterable[str] = (),
                    dns_names: Iterable[str] = (), days: int = SERVER_DAYS,
                    now: datetime.datetime | None = None) -> KeyPair:
    """A certificate for both ends of TLS (serverAuth and clientAuth): an etcd member
    serves its clients and peers with it and presents it to the peers it dials."""
    return _issue_leaf(ca, common_name, subject_alt_names(ips, dns_names),
                       [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                       days, now)


#: The largest certificate signing request read (a P-256 one is about 400 bytes).
CSR_MAX_BYTES = 8192


def new_key_pem() -> bytes:
    """A new P-256 private key (PEM): made where it is used, it never leaves that server."""
    return _key_pem(_new_key())


def csr_pem(key_pem: bytes, common_name: str) -> bytes:
    """A certificate signing request for `key_pem`, naming `common_name` (PEM)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def sign_peer_csr(ca: KeyPair, csr: bytes | str, common_name: str, ips: Iterable[str] = (),
                  days: int = SERVER_DAYS, now: datetime.datetime | None = None) -> bytes:
    """A peer certificate (serverAuth and clientAuth) for the key of `csr`, naming
    `common_name` and `ips` as the signer decides (the request's own names are ignored).
    PkiError when `csr` is not one PEM request for a P-256 key, signed by that key."""
    return _sign_leaf(ca, common_name, subject_alt_names(ips, ()),
                      [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                      days, now, check_csr(csr))


def check_csr(csr: bytes | str) -> ec.EllipticCurvePublicKey:
    """The public key of a certificate signing request, once it is checked: at most
    CSR_MAX_BYTES, one PEM request, for a P-256 key, signed by that key; PkiError if not."""
    data = csr.encode() if isinstance(csr, str) else csr
    if len(data) > CSR_MAX_BYTES:
        raise PkiError(f"the certificate signing request is {len(data)} bytes, more than "
                       f"{CSR_MAX_BYTES}", "send the request the installer made")
    try:
        request = x509.load_pem_x509_csr(data)
    except ValueError as e:
        raise PkiError("the certificate signing request is not a PEM CSR",
                       "send the request the installer made") from e
    public = request.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or \
            not isinstance(public.curve, ec.SECP256R1):
        raise PkiError("the certificate signing request is not for a P-256 (ECDSA) key",
                       "send the request the installer made")
    if not request.is_signature_valid:
        raise PkiError("the certificate signing request's signature does not verify",
                       "send the request the installer made")
    return public


def _issue_leaf(ca: KeyPair, common_name: str, names: list, usages: list, days: int,
                now: datetime.datetime | None) -> KeyPair:
    """A leaf certificate for the TLS `usages`, valid at most as long as its CA."""
    key = _new_key()
    return KeyPair(_sign_leaf(ca, common_name, names, usages, days, now, key.public_key()),
                   _key_pem(key))


def _sign_leaf(ca: KeyPair, common_name: str, names: list, usages: list, days: int,
               now: datetime.datetime | None, public) -> bytes:
    """The certificate (PEM) of `public` for the TLS `usages`, valid at most as long as its
    CA."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    start = _now(now)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - CLOCK_SKEW)
            .not_valid_after(min(start + datetime.timedelta(days=days),
                                 ca_cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=False, crl_sign=False,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def not_after(cert_pem: bytes) -> datetime.datetime:
    """When a PEM certificate ends (UTC); `PkiError` when it is not one."""
    try:
        return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc
    except ValueError as e:
        raise PkiError("this is not a PEM certificate", "read it with 'openssl x509 -text'") from e


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER, lower-case hex: what a joining server compares."""
    return fingerprints.hex_digest(cert_pem)


def new_secret() -> str:
    """A machine credential: 256 random bits, URL-safe text (43 characters)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def htpasswd_line(username: str, password: str, cost: int = HTPASSWD_COST) -> str:
    """One htpasswd line ``user:$2b$05$...`` (no newline) for a machine-generated password."""
    if not username or any(c in username for c in ":\n\r") or username != username.strip():
        raise PkiError(f"user name {username!r} cannot go into an htpasswd file",
                       "use letters, digits, '-', '_' or '.'")
    secret = password.encode()
    if not secret or len(secret) > 72 or b"\n" in secret:  # bcrypt reads at most 72 bytes
        raise PkiError("an htpasswd password must be 1 to 72 bytes, on one line",
                       "use dragonball.pki.new_secret()")
    hashed = bcrypt.hashpw(secret, bcrypt.gensalt(rounds=cost))
    return f"{username}:{hashed.decode()}"


def write_private(path: pathlib.Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` atomically; the file has `mode` from its first byte on."""
    path = pathlib.Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as e:
        raise PkiError(f"cannot write {path}: {e.strerror}",
                       "check the folder exists and is writable by root") from e
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise PkiError(f"cannot write {path}: {e.strerror}",
                       "check the folder exists and is writable by root") from e


def write_pem_files(pair: KeyPair, cert_path: pathlib.Path, key_path: pathlib.Path) -> None:
    """Write a certificate (0644) and its key (0600)."""
    write_private(key_path, pair.key_pem, 0o600)
    write_private(cert_path, pair.cert_pem, 0o644)

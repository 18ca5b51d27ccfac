"""CA fingerprints: ``SHA256:<hex of sha256(DER)>``, what a joining server is given and
compares (docs/enrollment.md)."""

from __future__ import annotations

import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization

PREFIX = "SHA256:"
_FINGERPRINT = re.compile(r"^SHA256:[0-9a-f]{64}$")


def hex_digest(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER, lower-case hex; ValueError when not a PEM cert."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def of_certificate(cert_pem: bytes) -> str:
    """``SHA256:<hex>`` of a PEM certificate; ValueError when it is not one."""
    return PREFIX + hex_digest(cert_pem)


def normalize(value: str) -> str | None:
    """`SHA256:<64 lower-case hex>` from what a person pasted, or None when it is not one.

    Forgiving like the enrollment code: any case, no prefix, spaces and colons between
    hex pairs (as openssl prints them).
    """
    body = value.strip()
    if body[:7].upper() == PREFIX:
        body = body[7:]
    candidate = PREFIX + re.sub(r"[\s:]", "", body).lower()
    return candidate if _FINGERPRINT.match(candidate) else None

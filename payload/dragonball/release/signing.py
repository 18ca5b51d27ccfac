"""Ed25519 signatures of a release: its manifest (inside the .bin) and SHA256SUMS (beside it).

A program cannot vouch for itself: a tampered .bin could carry a runtime that
approves anything. So the signature that protects against a substituted release
is the detached one over SHA256SUMS, checked on a trusted machine with plain
OpenSSL (`openssl_verify_command`); the embedded one lets the runtime (and an
already-installed dragonball) check the manifest and tell releases apart.
"""

from __future__ import annotations

import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dragonball.errors import Denied, InvalidInput, ReleaseError
from dragonball.release.sections import BinError, bin_sections, open_section


class KeyInvalid(ReleaseError, InvalidInput):
    """A key is unusable: not PEM, not Ed25519, unreadable."""


class SignatureError(ReleaseError, Denied):
    """A signature does not match the key: the release is refused."""


def new_key_pair() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a new Ed25519 key."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def load_private(pem: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise KeyInvalid(f"{where} is not an unencrypted PEM private key",
                         "make one with: python build.py keygen DIR") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyInvalid(f"{where} is not an Ed25519 key", "make one with: python build.py keygen DIR")
    return key


def load_public(pem: bytes, where: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise KeyInvalid(f"{where} is not a PEM public key",
                         "use the release's .pub file from the release engineer") from e
    if not isinstance(key, Ed25519PublicKey):
        raise KeyInvalid(f"{where} is not an Ed25519 public key", "use the release's .pub file")
    return key


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()


def verify(public: Ed25519PublicKey, signature: bytes, data: bytes, what: str) -> None:
    try:
        public.verify(signature, data)
    except InvalidSignature as e:
        raise SignatureError(f"the signature of {what} does not match the key {fingerprint(public)}",
                             "the release was altered or signed with another key: do not install it; "
                             "ask the release engineer for the right file and key") from e


def openssl_verify_command(pub: str, data: str, sig: str) -> str:
    """How an operator checks a detached signature with OpenSSL 3 alone."""
    return f"openssl pkeyutl -verify -pubin -inkey {pub} -rawin -in {data} -sigfile {sig}"


def verify_bin(environ, key: str):
    """(the public key, the .bin's path) once the .bin this runtime came from is signed by
    `key` (a PEM file) and its sections match the signed manifest; else the error."""
    path, sections = bin_sections(environ)
    if "signature" not in sections:
        raise BinError(f"{path} is not signed",
                       "ask for a signed build (python build.py --sign-key KEY)")
    try:
        with open(key, "rb") as f:
            public = load_public(f.read(), key)
    except OSError as e:
        raise KeyInvalid(f"cannot read {key}: {e.strerror}",
                                 "give the path of the .pub file") from e
    with open(path, "rb") as f:
        manifest = open_section(f, sections["manifest"], verify=True).read()
        signature = open_section(f, sections["signature"], verify=True).read()
    verify(public, signature, manifest, f"{path} (manifest)")
    listed = json.loads(manifest)["sections"]
    mismatch = [n for n, s in listed.items() if sections[n].sha256 != s["sha256"]]
    if mismatch:
        raise SignatureError(f"the signed manifest does not describe sections "
                                     f"{', '.join(mismatch)}",
                                     "the release was altered: do not install it")
    return public, path

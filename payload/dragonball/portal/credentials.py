"""How the portal's store keeps secrets: hashes, never the secrets themselves.

- people's passwords: scrypt (n=2**14, r=8, p=1, a random 16-byte salt per password),
  verified in constant time;
- enrollment codes and device tokens: sha256. A code has ~74 random bits (and failed tries
  are rate-limited), a token 256, so an unsalted fast hash is enough for them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

from dragonball.shared import codes

#: scrypt parameters for people's passwords: 16 MiB of memory and ~50 ms per try here.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
SCRYPT_SALT_BYTES, SCRYPT_KEY_BYTES = 16, 32
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def code_hash(code: str) -> str:
    """sha256 of the normalized code: what the store keeps."""
    return hashlib.sha256(codes.normalize(code).encode()).hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt b64>$<key b64>`` for a person's password."""
    salt = salt if salt is not None else secrets.token_bytes(SCRYPT_SALT_BYTES)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                         maxmem=_SCRYPT_MAXMEM, dklen=SCRYPT_KEY_BYTES)
    return "$".join(("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(key).decode()))


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (hash_password's text); constant-time compare."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), maxmem=_SCRYPT_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@functools.lru_cache(maxsize=1)
def dummy_hash() -> str:
    """Checked against when the user is unknown, so that case costs the same time."""
    return hash_password(secrets.token_urlsafe(16))

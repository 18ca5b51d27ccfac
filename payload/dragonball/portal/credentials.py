"""How the portal's store keeps secrets: hashes, never the secrets themselves.

- people's passwords: scrypt at OWASP's current guidance (N=2**17, r=8, p=1: 128 MiB and
  ~0.4 s per try here), a random 16-byte salt per password, verified in constant time. A
  hash made with other parameters (N=2**14 before) still verifies, and is made again at
  the next right login (`needs_rehash`). One runs at a time (`CONCURRENT_SCRYPT`), so
  concurrent logins queue rather than take 128 MiB each;
- enrollment codes and device tokens: sha256. A code has ~74 random bits (and failed tries
  are rate-limited), a token 256, so an unsalted fast hash is enough for them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import threading

from dragonball.shared import codes

#: scrypt parameters for people's passwords (OWASP, 2024): 128 MiB, ~0.4 s per try here.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 17, 8, 1
SCRYPT_SALT_BYTES, SCRYPT_KEY_BYTES = 16, 32
#: The largest cost a stored hash may ask for (N=2**17): a hash is data, not a command.
_SCRYPT_MAXMEM = 144 * 1024 * 1024
#: One at a time: the portal's memory stays bounded (128 MiB more) whoever guesses.
CONCURRENT_SCRYPT = 1
_running = threading.BoundedSemaphore(CONCURRENT_SCRYPT)


def code_hash(code: str) -> str:
    """sha256 of the normalized code: what the store keeps."""
    return hashlib.sha256(codes.normalize(code).encode()).hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$<salt b64>$<key b64>`` for a person's password."""
    salt = salt if salt is not None else secrets.token_bytes(SCRYPT_SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_KEY_BYTES)
    return "$".join(("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(key).decode()))


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (hash_password's text); constant-time compare."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p),
                         len(expected))
    except (ValueError, TypeError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(stored: str) -> bool:
    """Whether `stored` was made with other parameters than today's (made again at the
    next right login)."""
    return stored.split("$")[:4] != ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P)]


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    with _running:
        return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                              maxmem=_SCRYPT_MAXMEM, dklen=dklen)


@functools.lru_cache(maxsize=1)
def dummy_hash() -> str:
    """Checked against when the user is unknown, so that case costs the same time."""
    return hash_password(secrets.token_urlsafe(16))

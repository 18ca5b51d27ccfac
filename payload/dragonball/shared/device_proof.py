"""A device's calls to the portal signed with its own key (issue 13: "/joined and every device
call are authenticated by the device's own certificate").

A device holds its agent identity (a P-256 key made on it at enrollment, and the certificate
the portal signed for it: installer/join.py). Its calls to the portal (`/joined`, the manager
bundle) carry, beside the device token, a signature by that key over what is asked:

    X-DragonBall-Date:  the Unix time of the call, in seconds
    X-DragonBall-Proof: base64 of ECDSA-SHA256 over "METHOD\\nPATH\\nDATE\\nsha256(body) hex"

The portal keeps the certificate it issued (portal/store.py, `device_identities`) and checks
the signature with its public key, and that the date is within CLOCK_SKEW_S of its own clock.
A copied device token alone opens nothing; neither does a proof replayed for another path or
body, nor after the window.

Why not mutual TLS: the portal's port also serves browsers, and uvicorn does not hand the
peer certificate to the application (docs/agent.md, "Security"); a signature over the request
proves the same possession of the key, checked where the decision is made.

Pure: `proof_headers` and `check` only compute.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

DATE, PROOF = "X-DragonBall-Date", "X-DragonBall-Proof"
CLOCK_SKEW_S = 300  # the same tolerance as the certificates' start (pki.CLOCK_SKEW)


def message(method: str, path: str, date: str, body: bytes) -> bytes:
    """What is signed (pure)."""
    return f"{method.upper()}\n{path}\n{date}\n{hashlib.sha256(body).hexdigest()}".encode()


def proof_headers(key_pem: bytes, method: str, path: str, body: bytes, now: float) -> dict:
    """The two headers of a signed call to `path` with `body` (the exact bytes sent)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    date = str(int(now))
    signature = key.sign(message(method, path, date, body), ec.ECDSA(hashes.SHA256()))
    return {DATE: date, PROOF: base64.b64encode(signature).decode()}


def check(cert_pem: str | bytes, method: str, path: str, body: bytes, headers,
          now: float) -> str | None:
    """None when `headers` prove the call was signed by the key of `cert_pem` within the
    window; else what is wrong (for the refusal, never a secret)."""
    date, proof = headers.get(DATE), headers.get(PROOF)
    if not date or not proof:
        return (f"this device's calls must be signed with its own key ({DATE} and {PROOF} "
                "headers): use the .bin the portal was installed from")
    try:
        when = int(date)
    except ValueError:
        return f"{DATE} is not a Unix time in seconds"
    if abs(now - when) > CLOCK_SKEW_S:
        return (f"the call was signed {int(now - when)} s from the portal's clock (at most "
                f"{CLOCK_SKEW_S} s either way): set this server's clock (NTP)")
    try:
        signature = base64.b64decode(proof, validate=True)
        pem = cert_pem.encode() if isinstance(cert_pem, str) else cert_pem
        public = x509.load_pem_x509_certificate(pem).public_key()
        public.verify(signature, message(method, path, date, body), ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, TypeError, InvalidSignature):
        return "the call's signature is not this device's"
    return None

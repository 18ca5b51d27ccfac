"""Which agent certificate the portal accepts at each address: the one it signed.

The portal keeps the agent certificate it signed for each enrolled device
(`device_identities`, replicated with its store). `IdentityPins(store)` is the `pins` of
`AgentClient`: address -> the SHA-256 of that certificate, so a call to a device's agent
accepts only it. What that revokes, with no list to keep: a removed device's certificate
(its row goes with it), and the one a device had before `dragonball rejoin` (its row is
replaced), even presented at the same address by whoever holds its key. An address with no
row (the portal's own server, a device enrolled by an earlier release) gets no pin: the CA
and the address are checked as before.

    pins = IdentityPins(store)
    pins("10.0.0.2")        # "9f86d0..." or None
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable

from cryptography import x509

from dragonball.agent_client import fingerprint

#: How long the pins read from the store are used before they are read again: a device
#: enrolled, removed or rejoined is pinned within this.
REFRESH_S = 2.0


def pins_of(cert_pems: Iterable[str]) -> dict[str, str]:
    """{address (canonical form): SHA-256 of the certificate} for each certificate's IP
    SANs (pure); a certificate that cannot be read pins nothing."""
    found = {}
    for pem in cert_pems:
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (ValueError, x509.ExtensionNotFound):
            continue
        for address in san.get_values_for_type(x509.IPAddress):
            found[str(address)] = fingerprint(pem)
    return found


class IdentityPins:
    """`pins` for AgentClient, read from the portal's store (at most every `REFRESH_S`)."""

    def __init__(self, store, refresh_s: float = REFRESH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.refresh_s, self.clock = store, refresh_s, clock
        self._pins: dict[str, str] = {}
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def __call__(self, address: str) -> str | None:
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.refresh_s:
                self._pins = pins_of(self.store.device_identities().values())
                self._read_at = now
            pins = self._pins
        try:
            return pins.get(str(ipaddress.ip_address(address)))
        except ValueError:
            return None

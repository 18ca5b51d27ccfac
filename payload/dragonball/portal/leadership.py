"""Which manager's portal does the background work (notifications, snapshots): the one that
holds the key ``<prefix>leader`` in etcd, attached to a lease it keeps alive.

The holder renews its lease every `every_s` seconds; when it stops (its server is gone, or cut
from the quorum), etcd drops the key `ttl_s` seconds after its last renewal and another portal
creates it. The holder counts itself leader only until `ttl_s - every_s` seconds after the
start of its last successful renewal, so two portals never both think they lead: the old one
stops before etcd lets a new one in. Without etcd (no `state_endpoints`) there is one portal,
and it always leads (`AlwaysLeader`).
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable

from dragonball.errors import DragonBallError
from dragonball.etcd import Etcd

log = logging.getLogger(__name__)

TTL_S = 10
EVERY_S = 3.0


class AlwaysLeader:
    """The one portal of a cluster without replicated state."""

    def is_leader(self) -> bool:
        return True

    def run(self, stop: threading.Event) -> None:
        stop.wait()

    def resign(self) -> None:
        pass


class Leadership:
    """Campaign for, and hold, `key` in etcd; `is_leader()` says whether this portal holds it."""

    def __init__(self, etcd: Etcd, key: str, ttl_s: int = TTL_S, every_s: float = EVERY_S,
                 clock: Callable[[], float] = time.monotonic, name: str = "") -> None:
        self.etcd, self.key, self.ttl_s, self.every_s, self.clock = \
            etcd, key, ttl_s, every_s, clock
        self.identity = f"{name or socket.gethostname()}/{secrets.token_hex(4)}"
        self.lease: str | None = None
        self._until = 0.0       # leader until this time of `clock`, if it holds the key

    def is_leader(self) -> bool:
        return self.lease is not None and self.clock() < self._until

    def step(self) -> bool:
        """One round: renew the lease held, or try to take the key; whether it leads."""
        started = self.clock()
        if self.lease is not None:
            if self.etcd.keepalive(self.lease) > 0 and \
                    self.etcd.get(self.key) == self.identity.encode():
                self._until = started + self.ttl_s - self.every_s
                return True
            log.warning("this portal lost the leadership of background work")
            self.lease, self._until = None, 0.0
        if self.etcd.get(self.key) is not None:
            return False
        lease = self.etcd.grant(self.ttl_s)
        if not self.etcd.create(self.key, self.identity.encode(), lease=lease):
            self.etcd.revoke(lease)
            return False
        self.lease, self._until = lease, started + self.ttl_s - self.every_s
        log.info("this portal leads the background work (%s)", self.identity)
        return True

    def run(self, stop: threading.Event) -> None:
        """Campaign and renew until `stop`; then give the key up at once."""
        while not stop.is_set():
            try:
                self.step()
            except DragonBallError as e:
                log.warning("leadership: %s", e.message)
            stop.wait(self.every_s)
        self.resign()

    def resign(self) -> None:
        lease, self.lease, self._until = self.lease, None, 0.0
        if lease is not None:
            try:
                self.etcd.revoke(lease)
            except DragonBallError as e:
                log.warning("leadership: cannot give the lease up (%s); it ends by itself",
                            e.message)

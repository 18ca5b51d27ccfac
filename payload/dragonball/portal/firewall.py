"""The cluster's members, sent to every server's agent (docs/security.md, "The network").

Every server drops connections to the cluster ports (Swarm, agent, etcd, registry) from
any source but the members (shared/firewall.py). The members are every device the portal
knows (enrolled, joined, or the portal itself; a removed device is forgotten) and the
portal's own address. The leading portal sends the list (`PUT /v1/firewall`) to every
joined server whose agent did not get this very list yet, each round (WATCH_S), so a
server that joins gets it once its agent runs, and one that failed is tried again.

Two moments cannot wait for a round:
- an enroll: the new device joins the Swarm (a manager's 2377) right after the answer, so
  the managers get the new list before the portal answers (`now`); an agent answers once
  its host applied the list (agent_firewall: up to 5 s), so the rules are there, not only
  the file;
- a removal: the removed address goes at once, on every server (`now`).

Sends are serialized, and each takes the store's list at the moment it is sent: two enrolls
at once cannot leave an agent with the older list after the newer one. What an agent got
is sent again after RESEND_S anyway (the agent writes only a change): another manager's
portal may have sent a list meanwhile.

`cluster_members` and `targets` are pure; `MembersSync` talks to the agents.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable

from dragonball.errors import DragonBallError
from dragonball.shared import firewall as fw

log = logging.getLogger(__name__)

WATCH_S = 5.0
#: An enroll waits this long for each manager's agent (they are asked at once); an agent
#: waits up to 5 s for its host to apply the list.
ENROLL_TIMEOUT_S = 8.0
ROUND_TIMEOUT_S = 10.0
RESEND_S = 60.0
WORKERS = 8


def cluster_members(devices: Iterable, own: Iterable[str]) -> tuple[str, ...]:
    """Every device's address (whatever its state: an enrolled device is about to join)
    and the portal's own addresses, with loopback, normalised (pure)."""
    return fw.members([*(d.address for d in devices), *own])


def agent_addresses(devices: Iterable) -> list[str]:
    """Where an agent runs: the joined servers (pure)."""
    return sorted({d.address for d in devices if d.state == "joined" and d.address})


def targets(addresses: Iterable[str], sent: dict, members: tuple, now: float = 0.0,
            resend_s: float = RESEND_S) -> list[str]:
    """The addresses whose agent did not get `members` yet, or got them more than
    `resend_s` ago (pure): `sent` maps an address to (members, when)."""
    def due(address: str) -> bool:
        got, when = sent.get(address, (None, None))
        return got != members or now - when >= resend_s
    return [a for a in addresses if due(a)]


class MembersSync:
    """Sends the members to the agents; remembers what each one got."""

    def __init__(self, devices: Callable[[], list], own: Callable[[], list[str]],
                 agents: Callable[[], object], clock: Callable[[], float] = time.monotonic
                 ) -> None:
        """`devices()`: the store's devices; `own()`: the portal's addresses; `agents()`:
        an AgentClient (made at the first call: its files may not exist in a test)."""
        self.devices, self.own, self.make_agents, self.clock = devices, own, agents, clock
        self.sent: dict[str, tuple] = {}   # address -> (members, when)
        self._agents = None
        self._lock = threading.Lock()
        self._sending = threading.Lock()

    def members(self) -> tuple[str, ...]:
        return cluster_members(self.devices(), self.own())

    def round(self, timeout: float = ROUND_TIMEOUT_S) -> dict:
        """Every joined server that lacks the current list gets it: {address: error}."""
        with self._sending:
            devices = self.devices()
            members = cluster_members(devices, self.own())
            addresses = agent_addresses(devices)
            with self._lock:
                for gone in set(self.sent) - set(addresses):
                    del self.sent[gone]
                due = targets(addresses, self.sent, members, self.clock())
            return self._send(due, members, timeout)

    def now(self, addresses: Iterable[str], timeout: float = ENROLL_TIMEOUT_S) -> dict:
        """The current list to `addresses` (host, host:port or URL) at once, whatever they
        got before: {address: error message} of those that failed."""
        hosts = [h for h in (fw.host_of(a) for a in addresses) if h]
        with self._sending:
            return self._send(hosts, self.members(), timeout)

    def _send(self, addresses: list[str], members: tuple, timeout: float) -> dict:
        if not addresses:
            return {}
        try:
            agents = self._client()
        except DragonBallError as e:
            log.warning("firewall members not sent: %s", e.message)
            return {a: e.message for a in addresses}
        failed = {}
        with concurrent.futures.ThreadPoolExecutor(min(WORKERS, len(addresses))) as pool:
            calls = {a: pool.submit(agents.put_firewall, a, list(members), timeout)
                     for a in addresses}
            for address, call in calls.items():
                try:
                    answer = call.result()
                except DragonBallError as e:
                    failed[address] = e.message
                    continue
                if answer.get("applied") is False:
                    log.warning("firewall members sent to %s, not applied there within the "
                                "agent's wait (see 'journalctl -u dragonball-firewall' on it)",
                                address)
                with self._lock:
                    self.sent[address] = (members, self.clock())
        for address, message in failed.items():
            log.warning("firewall members not sent to %s: %s (tried again next round)",
                        address, message)
        return failed

    def _client(self):
        with self._lock:
            if self._agents is None:
                self._agents = self.make_agents()
            return self._agents


def run_forever(sync: MembersSync, stop: threading.Event, active: Callable[[], bool],
                interval: float = WATCH_S) -> None:
    """The leading portal's rounds until `stop`."""
    while not stop.wait(interval):
        if not active():
            continue
        try:
            sync.round()
        except DragonBallError as e:
            log.warning("firewall members: %s", e.message)
        except Exception:  # never let one bad round end the loop
            log.exception("firewall members: unexpected error")

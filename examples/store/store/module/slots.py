"""The slot identity the orchestrator gives each slot of a replicated service.

docs/module-spec.md, "Stateful slots and replication":

    DRAGONBALL_SLOT=2                               this slot's number, 1-based
    DRAGONBALL_SLOT_NAME=store-2                    its stable DNS name on the app network
    DRAGONBALL_PEERS=store-1,store-2,store-3        every slot's name, itself included, in order

No DRAGONBALL_PEERS (or only one name in it) means a single, unreplicated slot: the store then
runs exactly as it always did. Pure: reads only the mapping it is given.
"""

from __future__ import annotations

import dataclasses
import re

SLOT, SLOT_NAME, PEERS = "DRAGONBALL_SLOT", "DRAGONBALL_SLOT_NAME", "DRAGONBALL_PEERS"
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class SlotError(Exception):
    """The slot variables contradict each other; the message lists every problem."""


@dataclasses.dataclass(frozen=True)
class Slot:
    number: int
    name: str
    peers: tuple[str, ...]

    @property
    def replicated(self) -> bool:
        return len(self.peers) >= 2

    @property
    def others(self) -> tuple[str, ...]:
        return tuple(p for p in self.peers if p != self.name)

    @property
    def quorum(self) -> int:
        """Sentinels that must agree the primary is down: a majority of the slots."""
        return len(self.peers) // 2 + 1


def from_environ(env) -> Slot | None:
    """The slot, or None when the service is not replicated (no DRAGONBALL_PEERS)."""
    peers_text = (env.get(PEERS) or "").strip()
    if not peers_text:
        return None
    peers = tuple(p.strip() for p in peers_text.split(","))
    name = (env.get(SLOT_NAME) or "").strip()
    number_text = (env.get(SLOT) or "").strip()
    found = []
    for peer in peers:
        if not DNS_LABEL.match(peer):
            found.append(f"{PEERS}: {peer!r} is not a DNS name (lower-case letters, digits, '-')")
    if len(set(peers)) != len(peers):
        found.append(f"{PEERS} names a slot twice: {peers_text}")
    if not name:
        found.append(f"{SLOT_NAME} is not set (it must be one of {PEERS})")
    elif name not in peers:
        found.append(f"{SLOT_NAME}={name} is not one of {PEERS}={peers_text}")
    try:
        number = int(number_text)
    except ValueError:
        number = 0
        found.append(f"{SLOT} must be the slot's number (1-based), got {number_text!r}")
    if number and name in peers and peers.index(name) + 1 != number:
        found.append(f"{SLOT}={number} but {name} is slot {peers.index(name) + 1} in {PEERS}")
    if found:
        raise SlotError("; ".join(found))
    return Slot(number, name, peers)

"""A manager's place handed over before it is removed (portal/removal.py does the rest).

A manager runs the Swarm's raft, a portal and an etcd member. To remove one:

1. refused whole, changing nothing, when it is the server of the portal answering now (it
   would demote itself half way: ask another manager's portal, e.g. the portal's moving
   address once this one stops leading), or the portal's first server (it holds the
   registry and the release's images);
2. demoted in the Swarm (`Role: worker`): the Swarm itself refuses when the managers left
   would lose their quorum, and nothing else has changed then;
3. its etcd member removed (the portal's replicated state keeps a quorum of the others);
4. then removed like any device (drained, `docker node rm`, forgotten, tokens rotated),
   and an enrolled worker promoted in its place when there is one (portal/swarm.py).

Each step is skipped when already done, so a remove cut short runs again to the end. Its
disk still holds the cluster's CA keys (every manager has them): the answer says so, so the
operator wipes it (`reset`) or, if it was stolen, knows what left with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dragonball.portal import managers

log = logging.getLogger("dragonball.portal")

KEYS_WARNING = ("{name} was a manager: its disk still holds the cluster's CA keys "
                "(/etc/dragonball/ca). Run 'DragonBall.bin reset' on it (or wipe its disk) "
                "before it leaves the site; if it was lost or stolen, treat those keys as "
                "known to whoever has it (docs/security.md, 'Removing a manager')")


def refusal(target, own_hostname: str) -> str | None:
    """Why the manager `target` (removal.Target) cannot be removed from this portal (pure)."""
    if target.device is not None and target.device.role == "portal":
        return (f"{target.name} is the portal's first server: it holds the registry and "
                "the release's images")
    if target.name.lower() == own_hostname.lower():
        return (f"{target.name} runs the portal answering you: it would demote itself half "
                "way; run this on another manager's portal (dragonball --portal "
                "https://OTHER:8443 ...)")
    return None


def is_manager(target) -> bool:
    """A Swarm manager, or the portal's first server (a manager from the start) (pure)."""
    return bool((target.node and target.node.manager) or
                (target.device and target.device.role == "portal"))


class Demotion:
    """Steps 2 and 3 above over the portal's Swarm adapter and its etcd (`etcd_factory()`:
    a client of the managers' etcd, None when this portal has no replicated store)."""

    def __init__(self, cluster, etcd_factory: Callable | None, own_hostname: str) -> None:
        self.cluster, self.etcd_factory, self.own_hostname = cluster, etcd_factory, own_hostname

    def hand_over(self, target) -> dict:
        """Demote `target`'s node (SwarmError when the Swarm refuses) and remove its etcd
        member: what was done."""
        demoted = False
        if target.node is not None and target.node.manager:
            demoted = self.cluster.update_node(target.node.id, demote=True)
            log.info("%s demoted to a worker", target.name)
        removed = False
        if self.etcd_factory is not None and target.device is not None:
            peer = managers.peer_url(target.device.address)
            with self.etcd_factory() as etcd:
                member = next((m for m in etcd.members() if peer in m.peer_urls), None)
                if member is not None:
                    etcd.remove_member(member.id)
                    removed = True
                    log.info("etcd member %s (%s) removed", member.name or member.id, peer)
        return {"demoted": demoted, "etcd_member_removed": removed,
                "warning": KEYS_WARNING.format(name=target.name)}

"""Strangers: Swarm nodes that no device the portal enrolled is.

A Swarm join token that leaked (an old device's logs, a copied answers file) lets any
machine on the network join the Swarm directly. Such a node must never be promoted (see
portal/swarm.py), labelled or given a task: it lacks the enrolled label every task's
constraint asks for (shared/node_labels.py), the leading portal drains it within a round
(WATCH_S), records `node.stranger` once, and the devices list, `dragonball status` and the
Devices page show it with what to do (`dragonball devices remove NODE`).

A device that is joining is a stranger for the moment between its Swarm join and its
`/joined` report. While some enrolled device has not reported its join yet, a new
stranger is left alone for GRACE_S (it runs no task meanwhile: it lacks the label); and
should one be drained in that moment anyway, `/joined` (authenticated by the device's
token) makes it active again, as does a round that drained a node that became enrolled
meanwhile, so either order ends with the device active (a drained node is never
promoted: promotions happen at the joins).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from dragonball.errors import DragonBallError
from dragonball.portal.swarm import Cluster, enrolled_nodes, strangers
from dragonball.shared import node_labels

WATCH_S = 5.0
GRACE_S = 120.0
DRAIN = "drain"

log = logging.getLogger(__name__)


def stranger_rows(nodes, devices) -> list[dict]:
    """What the devices list shows of each stranger (pure)."""
    return [{"node_id": n.id, "hostname": n.hostname, "address": n.address,
             "role": n.role, "availability": n.availability, "ready": n.ready}
            for n in strangers(nodes, enrolled_nodes(devices))]


class Watch:
    """One round at a time: drain the strangers, tell once about each."""

    def __init__(self, cluster: Cluster, devices: Callable[[], list],
                 record: Callable[[str, dict], None],
                 pending: Callable[[], list] = lambda: [],
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`pending()`: the devices enrolled that have not reported their join yet."""
        self.cluster, self.devices, self.record = cluster, devices, record
        self.pending, self.clock = pending, clock
        self.told: set[str] = set()
        self.first_seen: dict[str, float] = {}

    def _waits(self, node_id: str, joining: bool) -> bool:
        """Whether a stranger is left alone this round: a device may be joining."""
        first = self.first_seen.setdefault(node_id, self.clock())
        return joining and self.clock() - first < GRACE_S

    def round(self) -> list[str]:
        """Drain every stranger (and take its enrolled label, should it have one); label
        every enrolled node that lacks it (a cluster installed before the label); the IDs
        of the strangers drained now."""
        nodes, enrolled = self.cluster.nodes(), enrolled_nodes(self.devices())
        for node in nodes:
            if node.id in enrolled and node.labels.get(node_labels.ENROLLED) != "true":
                self.cluster.update_node(node.id, labels={node_labels.ENROLLED: "true"})
        drained, joining = [], bool(self.pending())
        for node in strangers(nodes, enrolled):
            if self._waits(node.id, joining):
                continue
            if node_labels.ENROLLED in node.labels:
                self.cluster.update_node(node.id, labels={node_labels.ENROLLED: None})
            if node.id not in self.told:
                self.told.add(node.id)
                log.warning("node %s (%s, %s) is in the Swarm but no device the portal "
                            "enrolled: drained; remove it with 'dragonball devices remove "
                            "%s'", node.id, node.hostname, node.address, node.id)
                self.record("node.stranger", {"node_id": node.id, "hostname": node.hostname,
                                              "address": node.address, "role": node.role})
            if node.availability != DRAIN and self.cluster.update_node(node.id,
                                                                      availability=DRAIN):
                drained.append(node.id)
        again = enrolled_nodes(self.devices())   # a device that reported meanwhile
        for node_id in drained:
            if node_id in again:
                self.cluster.update_node(node_id, availability="active")
        return [n for n in drained if n not in again]


def run_forever(make_watch: Callable[[], Watch], stop: threading.Event,
                active: Callable[[], bool], interval: float = WATCH_S) -> None:
    """The leading portal's rounds until `stop` (the Watch made at the first one)."""
    watch = None
    while not stop.wait(interval):
        if not active():
            continue
        try:
            watch = watch or make_watch()
            watch.round()
        except DragonBallError as e:
            log.warning("strangers in the Swarm: %s", e.message)
        except Exception:  # never let one bad round end the loop
            log.exception("strangers in the Swarm: unexpected error")

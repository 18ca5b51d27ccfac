"""Which DragonBall and which release each server runs, as the portal shows them (issue 18).

The truth is two labels on each server's Swarm node (shared/node_labels.py says who writes
them and why labels). Here: reading them for the devices list, the Devices page and the
dashboard (`device_versions`, `version_text`: pure; the dashboard's summary is
web/views.py's), and the portal labelling its own node when it starts (`label_own_node`):
after an install or an upgrade, that is when its runtime is the new one.
"""

from __future__ import annotations

import logging

from dragonball import __version__
from dragonball.errors import DragonBallError
from dragonball.release import installed
from dragonball.shared import node_labels

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
_NONE = {"version": None, "release": None}


def device_versions(devices, nodes) -> dict[int, dict]:
    """{device id: {"version", "release"}} from the nodes' labels; a device without a node
    or a label has None there (pure)."""
    labels = {n.id: n.labels for n in nodes}
    return {d.id: node_labels.versions_of(labels[d.node_id]) if d.node_id in labels
            else dict(_NONE) for d in devices}


def release_text(release) -> str:
    """{"name", "version"} as "notes 0.1.0"; None as "unknown" (pure)."""
    return f"{release['name']} {release['version']}" if release else UNKNOWN


def version_text(running: dict | None) -> tuple[str, str]:
    """A device's {"version", "release"} as (DragonBall version, release) texts, "unknown"
    for what its node does not say (pure)."""
    running = running or _NONE
    return running.get("version") or UNKNOWN, release_text(running.get("release"))


def own_versions(release_root: str = installed.RELEASE_DIR) -> tuple[str, dict | None]:
    """(this runtime's version, the release this server recorded last, or None)."""
    return __version__, installed.read(installed.CURRENT, release_root)


def label_own_node(swarm, release_root: str = installed.RELEASE_DIR) -> bool:
    """Label this portal's own node with the versions it runs; whether it was done (a
    failure is logged: the labels are a display, the portal serves without them)."""
    version, release = own_versions(release_root)
    try:
        node_id = swarm.local_node_id()
        if node_id:
            node_labels.set_versions(swarm, [node_id], version, release)
            log.info("node %s labelled: DragonBall %s, release %s", node_id, version,
                     release_text(release))
            return True
        log.warning("this engine is in no Swarm: its node is not labelled with its versions")
    except DragonBallError as e:
        log.warning("cannot label this server's node with its versions: %s", e.message)
    return False

"""The backup's copy of the app's data: a snapshot of every stateful slot's volume (DESIGN,
"Upgrades without failed requests": "the pre-upgrade backup includes a snapshot of every
stateful slot's volume"), taken before anything changes and kept with the portal's store in
the upgrade's backup folder.

Each volume labelled with a slot of the app (io.dragonball.slot) on every ready server is
packed by that server's agent with its users **paused** (`POST /v1/volumes/export?pause=1`:
the cgroup freezer, for the seconds the packing takes; requests wait, none fails), so the
copy is of one instant with nothing lost that the store had written, then streamed to the
portal as `volumes/<server>/<volume>.tar` (0600) and checked against the agent's SHA-256.
`volumes.json` beside them lists each one: server, name, slot, service, bytes, sha256, the
containers paused and for how long.

The snapshots are not put back by a rollback: a rollback keeps the writes made meanwhile
(migrations are expand-only, DESIGN). They are for a person who needs the data as it was
before the upgrade: docs/upgrade.md, "The backup", says how to put one back.
"""

from __future__ import annotations

import hashlib
import json
import os

from dragonball.errors import DragonBallError
from dragonball.upgrade.errors import UpgradeFailed

FOLDER = "volumes"
INDEX = "volumes.json"
#: the largest volume snapshotted with its users paused: ~1 s per 100 MB measured here, so
#: about 2.5 s, under a replicated store's default down_after_ms (3 s) and far under the
#: health checks' 15 s (docs/upgrade.md, "The backup")
LIMIT_BYTES = 256 << 20
PAUSE_S_PER_MB = 0.01


def slot_volumes(listed: list[dict], app: str) -> list[dict]:
    """The volumes of `app`'s slots among an agent's list (pure): each slot's data."""
    return sorted((v for v in listed if v.get("app") == app and v.get("slot")),
                  key=lambda v: v["name"])


def size_problems(listed: dict[str, list[dict]], app: str,
                  limit: int = LIMIT_BYTES) -> list[str]:
    """The slot volumes of `app` too big to snapshot with their users paused, from each
    server's list with sizes ({hostname: [volume]}) (pure)."""
    problems = []
    for server, volumes in sorted(listed.items()):
        for volume in slot_volumes(volumes, app):
            size = volume.get("size") or 0
            if size > limit:
                problems.append(
                    f"volume {volume['name']} on {server} holds {size / 1e6:.0f} MB: its "
                    f"snapshot would pause slot {volume['slot']} about "
                    f"{size / 1e6 * PAUSE_S_PER_MB:.0f} s (more than {limit >> 20} MiB: its "
                    "sentinels would fail over, its health checks could fail)")
    return problems


def take(agents, nodes, app: str | None, folder: str, say=lambda text: None) -> list[dict]:
    """Snapshot every volume of `app`'s slots on the ready `nodes` into `folder`/volumes;
    their entries (also written to `folder`/volumes.json). UpgradeFailed naming the server
    and the volume when one cannot be taken: the upgrade stops before any change."""
    entries: list[dict] = []
    if app:
        for node in (n for n in nodes if n.ready):
            for volume in slot_volumes(_listed(agents, node), app):
                say(f"{volume['name']} on {node.hostname}")
                entries.append(_one(agents, node, volume, folder))
    index = os.path.join(folder, INDEX)
    with open(os.open(index, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump({"app": app, "volumes": entries}, f, indent=1)
    return entries


def _listed(agents, node) -> list[dict]:
    try:
        return agents.volumes(node.address)
    except DragonBallError as e:
        raise _failed(node, "the volumes", e) from e


def _one(agents, node, volume: dict, folder: str) -> dict:
    name = volume["name"]
    try:
        exported = agents.export_volume(node.address, name, pause=True)
    except DragonBallError as e:
        raise _failed(node, f"volume {name}", e) from e
    target_dir = os.path.join(folder, FOLDER, node.hostname)
    os.makedirs(target_dir, mode=0o700, exist_ok=True)
    path = os.path.join(target_dir, f"{name}.tar")
    try:
        size, sha256 = _stream(agents, node.address, exported["id"], path)
    except (DragonBallError, OSError) as e:
        _remove(path)
        raise _failed(node, f"volume {name}", e) from e
    finally:
        try:
            agents.delete_transfer(node.address, exported["id"])
        except DragonBallError:
            pass    # the agent sweeps its staged files after a day
    if (size, sha256) != (exported["size"], exported["sha256"]):
        _remove(path)
        raise UpgradeFailed(
            f"the snapshot of volume {name} on {node.hostname} arrived as {size} bytes "
            f"(sha256 {sha256[:12]}), not the {exported['size']} bytes (sha256 "
            f"{exported['sha256'][:12]}) its agent packed: nothing was changed",
            "run the upgrade again (a connection that broke half way)")
    return {"server": node.hostname, "name": name, "slot": volume.get("slot"),
            "service": volume.get("service"), "size": size, "sha256": sha256,
            "file": os.path.relpath(path, folder), "paused": exported.get("paused") or [],
            "paused_s": exported.get("paused_s", 0.0)}


def _stream(agents, address: str, transfer_id: str, path: str) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        for chunk in agents.read_transfer(address, transfer_id):
            f.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _failed(node, what: str, error: Exception) -> UpgradeFailed:
    reason = error.message if isinstance(error, DragonBallError) else str(error)
    return UpgradeFailed(
        f"the backup could not take a snapshot of {what} on {node.hostname}: {reason}; "
        "nothing was changed",
        f"bring {node.hostname}'s agent back (dragonball devices), or free the portal's disk "
        "if it is full, then run the upgrade again")

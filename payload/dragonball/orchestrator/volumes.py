"""Which slot owns each application volume on each server, pure (`dragonball volumes`).

A slot owns `<app>_<service>_storage.<n>` and `…_log.<n>` on the server it is pinned to
(orchestrator.slotting). Any other application volume is owned by no slot: the source of a
move, a slot scaled away, the volume of an app no longer applied. Such volumes are listed,
with why, and never deleted by DragonBall: removing one is the admin's explicit act.

    rows(reports, {"notes": units})   # reports: server -> the agent's volumes, or an error
"""

from __future__ import annotations

import re

from dragonball.app import slots as slots_mod
from dragonball.errors import AppError, NotFound

_NAME = re.compile(r"^(?P<app>[a-z0-9][a-z0-9-]*)_(?P<service>[A-Za-z0-9][A-Za-z0-9_-]*)_"
                   r"(?P<what>storage|log)\.(?P<number>[0-9]+)$")


class VolumeUnknown(AppError, NotFound):
    """No app volume of that name on that server."""


def slot_of(name: str) -> tuple[str, str, int] | None:
    """(app, service, slot number) a volume's name says, or None."""
    match = _NAME.match(name)
    return (match["app"], match["service"], int(match["number"])) if match else None


def owner(server: str, volume: dict, units: dict) -> tuple[str | None, str]:
    """(the owning slot, or None; why) for `volume` (an agent's entry) on `server`."""
    found = slot_of(volume.get("name", ""))
    if found is None:
        return None, "not a slot's volume (its name follows no slot)"
    app, service, number = found
    if app not in units:
        return None, f"its app {app} is not applied"
    slot = slots_mod.slot_name(service, number)
    app_units = units[app]
    if slot not in app_units.slots:
        return None, f"{slot} is not in {app}'s spec (scaled away, or removed)"
    pinned = app_units.pins.get(slot)
    if pinned != server:
        return None, f"{slot} is pinned to {pinned or 'no server yet'}: a copy left here"
    return slot, "in use" if volume.get("in_use") else "its slot is not running"


def rows(reports: dict, units: dict) -> list[dict]:
    """One row per volume on each server (`reports`: server -> the agent's volume entries,
    or a str saying why they could not be read); `units`: app -> Units."""
    found = []
    for server in sorted(reports):
        report = reports[server]
        if isinstance(report, str):
            found.append({"server": server, "name": None, "error": report})
            continue
        for volume in report:
            slot, why = owner(server, volume, units)
            found.append({"server": server, "name": volume.get("name"),
                          "app": volume.get("app"), "size": volume.get("size"),
                          "in_use": bool(volume.get("in_use")), "owner": slot, "why": why})
    return found

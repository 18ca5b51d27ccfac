"""An upgrade's history in the portal's audit log (issue 18).

The upgrade (dragonball/upgrade/) calls `record_upgrade` at each of its steps; the events
are the store's (`upgrade.<step>`), shown on the Events page (`/events?kind=upgrade`: the
upgrades alone) with who, when, and:

    from, to              "notes 0.1.0": the release left and the one aimed at
    from_dragonball,      DragonBall's versions of each, when the records say them
    to_dragonball
    phase                 the phase a phase_done / phase_failed event is about
    error                 what failed (its last ERROR_CHARS characters)

Steps: started, phase_done, phase_failed, rolled_back, rollback_failed, finished. An event
never holds a secret: `error` and `detail` are the caller's, and must not either.
"""

from __future__ import annotations

from dragonball.errors import InvalidInput, PortalError
from dragonball.portal.versions import release_text

STEPS = ("started", "phase_done", "phase_failed", "rolled_back", "rollback_failed",
         "finished")
PHASED = ("phase_done", "phase_failed")
KIND_PREFIX = "upgrade."
#: The characters of a failure kept in the event (the last ones: where it ended).
ERROR_CHARS = 2000


class UpgradeEventInvalid(PortalError, InvalidInput):
    """An upgrade event the audit log does not know (a caller's mistake)."""


def upgrade_event(step: str, from_release, to_release, phase: str | None = None,
                  error: str | None = None, detail: dict | None = None) -> tuple[str, dict]:
    """(kind, detail) of an upgrade's event (pure). `from_release`, `to_release`: an
    installed-release record (release/installed.py) or {"name", "version"}; None when not
    known (a server installed before releases were recorded)."""
    if step not in STEPS:
        raise UpgradeEventInvalid(f"{step!r} is not a step of an upgrade",
                                  f"record one of {', '.join(STEPS)}")
    if (step in PHASED) != bool(phase):
        raise UpgradeEventInvalid(f"upgrade.{step}: a phase is named with "
                                  f"{' and '.join(PHASED)} events, and only with them")
    out = {**(detail or {}), "from": release_text(from_release),
           "to": release_text(to_release)}
    for key, release in (("from_dragonball", from_release), ("to_dragonball", to_release)):
        if (release or {}).get("runtime_version"):
            out[key] = release["runtime_version"]
    if phase:
        out["phase"] = phase
    if error:
        out["error"] = error[-ERROR_CHARS:]
    return KIND_PREFIX + step, out


def record_upgrade(store, step: str, from_release, to_release, phase: str | None = None,
                   error: str | None = None, detail: dict | None = None,
                   actor: str = "upgrade") -> dict:
    """Put one step of an upgrade (or of a rollback) in the audit log of `store` (the
    portal's Store, local or replicated: dragonball.portal.statelog.open_store); the
    event's detail. The store's errors (StoreError: no quorum) pass through: the caller
    decides whether an upgrade goes on without its history."""
    kind, body = upgrade_event(step, from_release, to_release, phase, error, detail)
    store.record(kind, actor, None, body)
    return body

"""Telling services when what they depend on changes state (docs/orchestrator.md).

Every few seconds the portal looks at each applied app's services on Swarm; when a
service's state changes (healthy, unhealthy, stopped, scaled), a notification is queued for
each service that depends on it (its backends or depends_on name it) and, when it is a slot
of a service with storage (`store-2`), for each of its peers (`store-1`, `store-3`: how a
replicated module hears that a peer left or came back), in the same store transaction as
the new state. A service with slots also has a state of its own, its slots' together
(`store`: desired = slots meant to run, healthy = slots healthy; with two slots or more);
its changes (`scaled` when slots are added or removed) go to each of its slots.

Delivery is per receiver, in order: the oldest undelivered one goes to every running task of
the receiver (`run.sh notify` through the node's agent, which runs the module's
config_change scripts with DRAGONBALL_EVENT=notify); only when every task took it is it
marked delivered and the next one sent. A failed delivery is retried on the next round: at
least once, in order. Each payload carries `seq`, increasing per receiver, and the
supervisor acknowledges a seq it already handled without running anything again.

`transitions` is pure; `Notifier` is the loop's body.
"""

from __future__ import annotations

import datetime
import logging
import threading

from dragonball.app import graph, plan as plan_mod
from dragonball.errors import DragonBallError
from dragonball.shared import app_lock

log = logging.getLogger(__name__)
SCHEMA = 1
INTERVAL_S = 2.0
REFRESH_EVERY = 15      # rounds: the moving addresses are checked every 30 s


def state_of(desired: int, healthy: int) -> dict:
    """The state the notifications speak of: a name and the replica counts."""
    if desired == 0:
        name = "stopped"
    elif healthy >= desired:
        name = "healthy"
    else:
        name = "unhealthy"
    return {"state": name, "desired": desired, "healthy": healthy}


def transitions(before: dict, now: dict) -> list[tuple[str, str]]:
    """[(service, event)] from the states before to now (pure). A service seen for the
    first time is not a change; a change of desired replicas is `scaled` (and, when its
    health changed too, that as well)."""
    events = []
    for service in sorted(now):
        old, new = before.get(service), now[service]
        if old is None:
            continue
        if old["desired"] != new["desired"] and old["desired"] and new["desired"]:
            events.append((service, "scaled"))
        if old["state"] != new["state"]:
            events.append((service, new["state"]))
    return events


def payloads(app: str, deps: dict, events: list, now: dict,
             at: datetime.datetime, peers: dict | None = None) -> list[tuple[str, dict]]:
    """[(receiver, payload without seq/to)] for each event, to each dependent of it and,
    for a slot, to each of its peers (`peers`: slot -> the other slots of its service)."""
    queued = []
    for service, event in events:
        receivers = graph.dependents(deps, service) + list((peers or {}).get(service, ()))
        for receiver in receivers:
            queued.append((receiver, {
                "schema": SCHEMA, "app": app, "service": service, "event": event,
                "replicas": {"desired": now[service]["desired"],
                             "running": now[service]["healthy"],
                             "healthy": now[service]["healthy"]},
                "at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}))
    return queued


class Notifier:
    """One round: observe, queue, deliver. `control` is an orchestrator.control.Control."""

    def __init__(self, control, clock=None, refresh_every: int = REFRESH_EVERY,
                 lock_dir: str | None = app_lock.LOCK_DIR) -> None:
        """`lock_dir`: where the apps' locks are (None: none taken, for tests)."""
        self.control, self.lock_dir = control, lock_dir
        self.clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.rounds, self.refresh_every = 0, refresh_every

    def observe(self, app: str) -> dict:
        """unit -> its state; and a service with slots (`store`) -> its slots' together
        (desired: how many slots should run; healthy: how many do)."""
        now, slots = {}, {}
        for row in self.control.status(app):
            now[row["service"]] = state_of(row["desired"], row["healthy"])
            if row.get("of"):
                slots.setdefault(row["of"], []).append(row)
        for service, rows in slots.items():
            if len(rows) >= 2:   # one slot: the slot's own state says it all
                now.setdefault(service, state_of(sum(r["desired"] for r in rows),
                                                 sum(r["healthy"] for r in rows)))
        return now

    def round(self) -> dict:
        """Queue the changes seen and deliver what is pending; {app: delivered count}."""
        done = {}
        self.rounds += 1
        for app in self.control.store.apps():
            if self.rounds % self.refresh_every == 1 or self.refresh_every == 1:
                self.refresh(app)
            try:
                units = self.control.units_of(app)
                now = self.observe(app)
                before = self.control.store.states(app)
                events = transitions(before, now)
                peers = {unit: [p for p in slot.peers if p != unit]
                         for unit, slot in units.slots.items()}
                for unit, slot in units.slots.items():   # the service's own: to its slots
                    peers.setdefault(slot.service, []).append(unit)
                queued = payloads(app, plan_mod.dependencies(units.spec), events, now,
                                  self.clock(), peers)
                if events or before != now:
                    self.control.store.record_changes(app, now, queued)
                for service, event in events:
                    log.info("%s/%s is %s: %d notification(s) queued", app, service, event,
                             sum(1 for r, p in queued if p["service"] == service))
                done[app] = self.deliver(app)
            except DragonBallError as e:
                log.warning("notifications of %s: %s", app, e.message)
        return done

    def refresh(self, app: str) -> None:
        """The app's moving addresses follow the servers (Control.refresh_addresses): a
        server that joined after the apply takes part without a new apply. Skipped while a
        command changes the app (it plans the addresses itself)."""
        try:
            if self.lock_dir is None:
                updated = self.control.refresh_addresses(app)
            else:
                with app_lock.app_lock(app, "the portal's address upkeep", self.lock_dir,
                                       background=True):
                    updated = self.control.refresh_addresses(app)
        except app_lock.AppLocked:
            return
        except DragonBallError as e:
            log.warning("moving addresses of %s: %s", app, e.message)
            return
        for service in updated:
            log.info("%s/%s: its moving address now spans the servers there are", app, service)

    def deliver(self, app: str) -> int:
        """Send each receiver its oldest pending notification; count those delivered."""
        delivered = 0
        for receiver, note in self.control.store.pending(app).items():
            results = self.control.each_task(app, receiver, "notify", note.payload)
            failed = [r for r in results if not r.ok]
            if failed:
                why = "; ".join(f"{r.task} on {r.server}: {r.detail}" for r in failed)
                self.control.store.failed(note.id, why)
                log.warning("notification %d of %s to %s not delivered: %s", note.seq, app,
                            receiver, why)
            else:
                self.control.store.delivered(note.id)
                delivered += 1
        return delivered


def run_forever(make_control, stop: threading.Event, interval: float = INTERVAL_S,
                active=lambda: True) -> None:
    """The portal's notification loop (a daemon thread of `dragonball portal serve`); its
    rounds run only while `active()` (the portal that leads the background work)."""
    notifier = None
    while not stop.is_set():
        try:
            if not active():
                stop.wait(interval)
                continue
            notifier = notifier or Notifier(make_control())
            notifier.round()
        except DragonBallError as e:
            log.warning("notifications: %s", e.message)
        except Exception:  # never let one bad round end the loop
            log.exception("notifications: unexpected error")
        stop.wait(interval)

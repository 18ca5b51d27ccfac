"""Notifications to dependents: what counts as a change (pure), the payloads (the contract's
fields, to dependents only), and delivery in order through a fake control over a real
AppStore: delivered only when every running task took it, else retried."""

from __future__ import annotations

import datetime
import pathlib

import pytest

from dragonball.app.plan import dependencies
from dragonball.app.spec import load_file
from dragonball.orchestrator import notify, slotting
from dragonball.orchestrator.control import TaskResult
from dragonball.orchestrator.notify import Notifier, payloads, state_of, transitions
from dragonball.orchestrator.state import AppStore
from dragonball.portal.store import Store

REPO = pathlib.Path(__file__).parents[2]
AT = datetime.datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=datetime.timezone.utc)
DIAMOND = {"front": ["shop", "blog"], "shop": ["db"], "blog": ["db", "cache"], "db": [],
           "cache": []}


# -- states and transitions (pure) -------------------------------------------------------
def test_state_of():
    assert state_of(2, 2) == {"state": "healthy", "desired": 2, "healthy": 2}
    assert state_of(2, 1)["state"] == "unhealthy"
    assert state_of(2, 0)["state"] == "unhealthy"
    assert state_of(0, 0)["state"] == "stopped"
    assert state_of(1, 3)["state"] == "healthy"


def test_first_sight_is_not_a_change():
    assert transitions({}, {"api": state_of(2, 0)}) == []
    assert transitions({"db": state_of(1, 1)},
                       {"db": state_of(1, 1), "api": state_of(2, 0)}) == []


def test_no_change_no_event():
    assert transitions({"api": state_of(2, 2)}, {"api": state_of(2, 2)}) == []


def test_healthy_to_unhealthy_and_back():
    assert transitions({"api": state_of(2, 2)}, {"api": state_of(2, 1)}) == \
        [("api", "unhealthy")]
    assert transitions({"api": state_of(2, 1)}, {"api": state_of(2, 2)}) == \
        [("api", "healthy")]


def test_a_healthy_count_moving_within_unhealthy_is_no_event():
    assert transitions({"api": state_of(3, 1)}, {"api": state_of(3, 2)}) == []


def test_scaled_and_its_health_change_both():
    assert transitions({"api": state_of(2, 2)}, {"api": state_of(3, 3)}) == [("api", "scaled")]
    assert transitions({"api": state_of(2, 2)}, {"api": state_of(3, 2)}) == \
        [("api", "scaled"), ("api", "unhealthy")]


def test_stopped_and_started_are_not_scaled():
    assert transitions({"api": state_of(2, 2)}, {"api": state_of(0, 0)}) == [("api", "stopped")]
    assert transitions({"api": state_of(0, 0)}, {"api": state_of(2, 2)}) == [("api", "healthy")]


def test_events_come_in_service_order():
    before = {"b": state_of(1, 1), "a": state_of(1, 1)}
    now = {"b": state_of(0, 0), "a": state_of(1, 0)}
    assert transitions(before, now) == [("a", "unhealthy"), ("b", "stopped")]


# -- payloads (pure) ---------------------------------------------------------------------
def test_payloads_go_to_direct_dependents_only():
    now = {"db": state_of(1, 0)}
    queued = payloads("shop", DIAMOND, [("db", "unhealthy")], now, AT)
    assert [receiver for receiver, _ in queued] == ["blog", "shop"]   # not front, not db


def test_a_payload_has_the_contract_fields():
    now = {"cache": state_of(3, 2)}
    [(receiver, body)] = payloads("shop", DIAMOND, [("cache", "unhealthy")], now, AT)
    assert receiver == "blog"
    # seq and to are added when it is queued (per receiver)
    assert body == {"schema": 1, "app": "shop", "service": "cache", "event": "unhealthy",
                    "replicas": {"desired": 3, "running": 2, "healthy": 2},
                    "at": "2025-03-04T05:06:07Z"}


def test_nothing_for_a_service_no_one_needs():
    assert payloads("shop", DIAMOND, [("front", "stopped")], {"front": state_of(0, 0)},
                    AT) == []


def test_notes_dependents():
    deps = dependencies(load_file(str(REPO / "examples" / "notes.app.yaml")))
    now = {"store": state_of(1, 0), "api": state_of(2, 2)}
    queued = payloads("notes", deps, [("store", "unhealthy"), ("api", "scaled")], now, AT)
    assert [(r, p["service"], p["event"]) for r, p in queued] == [
        ("api", "store", "unhealthy"), ("web", "api", "scaled")]


# -- the loop over a fake control --------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeControl:
    """What Notifier uses of Control: its store, the spec, status rows, each_task."""

    def __init__(self, store: AppStore, spec) -> None:
        self.store, self.spec = store, spec
        self.rows: dict = {}        # service -> (desired, healthy)
        self.tasks: dict = {}       # service -> [(task label, ok)]
        self.sent: list = []        # (receiver, task label, payload)
        self.refreshed: list = []   # apps whose moving addresses were brought up to date

    def refresh_addresses(self, app: str) -> list[str]:
        self.refreshed.append(app)
        return ["web"]

    def spec_of(self, app: str):
        return self.spec

    def units_of(self, app: str):
        return slotting.expand(self.spec, (), place_new=False)

    def status(self, app: str) -> list[dict]:
        return [{"service": s, "desired": d, "healthy": h,
                 **({"of": s.rsplit("-", 1)[0]} if s.startswith("store-") else {})}
                for s, (d, h) in self.rows.items()]

    def each_task(self, app: str, name: str, action: str, body: dict,
                  replace: bool = False) -> list[TaskResult]:
        assert action == "notify" and not replace
        results = []
        for label, ok in self.tasks.get(name, []):
            self.sent.append((name, label, body))
            results.append(TaskResult(name, label, "node-a", ok, "ok" if ok else "exit 1"))
        return results


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def control(tmp_path, clock):
    store = Store.open(str(tmp_path / "portal.db"), clock=clock)
    apps = AppStore(store)
    spec = load_file(str(REPO / "examples" / "notes.app.yaml"))
    apps.save_app("notes", "notes.app.yaml", "app: notes")
    made = FakeControl(apps, spec)
    made.rows = {"store-1": (1, 1), "api": (2, 2), "web": (1, 1)}
    made.tasks = {"api": [("api.1", True), ("api.2", True)], "web": [("web.1", True)]}
    yield made
    store.close()


def queue(control, **changes) -> None:
    """Record states as now, then `changes` (`store` for its slot store-1), with their
    notifications."""
    changes = {("store-1" if k == "store" else k): v for k, v in changes.items()}
    before = {s: state_of(*v) for s, v in control.rows.items()}
    control.rows.update(changes)
    now = {s: state_of(*v) for s, v in control.rows.items()}
    events = transitions(before, now)
    control.store.record_changes("notes", before, [])
    control.store.record_changes("notes", now, payloads(
        "notes", dependencies(control.units_of("notes").spec), events, now, AT))


def test_deliver_marks_delivered_when_every_task_took_it(control):
    queue(control, store=(1, 0))
    assert Notifier(control, lock_dir=None).deliver("notes") == 1
    assert [(r, label) for r, label, _ in control.sent] == [("api", "api.1"), ("api", "api.2")]
    body = control.sent[0][2]
    assert body["seq"] == 1 and body["to"] == "api" and body["service"] == "store-1"
    assert body["event"] == "unhealthy" and body["schema"] == 1
    assert control.store.pending("notes", due_only=False) == {}


def test_a_task_that_refused_keeps_it_pending_and_in_order(control, clock):
    queue(control, store=(1, 0))
    queue(control, store=(1, 1))
    control.tasks["api"] = [("api.1", True), ("api.2", False)]
    notifier = Notifier(control, lock_dir=None)
    assert notifier.deliver("notes") == 0
    note = control.store.pending("notes", due_only=False)["api"]
    assert (note.seq, note.attempts) == (1, 1)
    assert note.last_error == "api.2 on node-a: exit 1"
    # not due yet: nothing is sent, and never the second before the first
    control.sent.clear()
    assert notifier.deliver("notes") == 0 and control.sent == []
    clock.now += 2
    control.tasks["api"] = [("api.1", True), ("api.2", True)]
    assert notifier.deliver("notes") == 1
    assert {body["seq"] for _, _, body in control.sent} == {1}
    control.sent.clear()
    assert notifier.deliver("notes") == 1
    assert [(body["seq"], body["event"]) for _, _, body in control.sent] == \
        [(2, "healthy"), (2, "healthy")]
    assert control.store.pending("notes", due_only=False) == {}


def test_each_receiver_gets_its_oldest_in_one_round(control):
    queue(control, store=(1, 0), api=(2, 1))
    sent = Notifier(control, lock_dir=None).deliver("notes")
    assert sent == 2
    assert {(r, body["service"]) for r, _, body in control.sent} == {("api", "store-1"),
                                                                     ("web", "api")}


def test_a_receiver_without_running_tasks_counts_as_delivered(control):
    control.tasks["api"] = []
    queue(control, store=(0, 0))
    assert Notifier(control, lock_dir=None).deliver("notes") == 1
    assert control.sent == []


def test_a_round_records_first_sight_without_notifying(control):
    notifier = Notifier(control, clock=lambda: AT, lock_dir=None)
    assert notifier.round() == {"notes": 0}
    assert control.store.states("notes")["api"] == state_of(2, 2)
    assert control.store.notifications("notes") == []


def test_a_round_queues_and_delivers_a_change(control):
    notifier = Notifier(control, clock=lambda: AT, lock_dir=None)
    notifier.round()
    control.rows["store-1"] = (1, 0)
    assert notifier.round() == {"notes": 1}
    [(receiver, label, body)] = control.sent[:1]
    assert (receiver, body["service"], body["event"], body["at"]) == \
        ("api", "store-1", "unhealthy", "2025-03-04T05:06:07Z")
    assert control.store.states("notes")["store-1"]["state"] == "unhealthy"
    # the same state again: nothing new
    control.sent.clear()
    assert notifier.round() == {"notes": 0} and control.sent == []


def test_a_slot_s_change_reaches_its_peers_and_what_needs_its_service(control):
    control.spec = control.spec.model_copy(update={"services": {
        **control.spec.services,
        "store": control.spec.services["store"].model_copy(update={"replicas": 3})}})
    control.rows = {"store-1": (1, 1), "store-2": (1, 1), "store-3": (1, 1), "api": (2, 2),
                    "web": (1, 1)}
    control.tasks["store-1"] = [("store-1.1", True)]
    control.tasks["store-3"] = [("store-3.1", True)]
    notifier = Notifier(control, clock=lambda: AT, lock_dir=None)
    notifier.round()
    control.rows["store-2"] = (1, 0)
    notifier.round()
    notifier.round()   # one notification per receiver and round, in order
    assert sorted((r, b["service"], b["event"]) for r, _, b in control.sent) == [
        ("api", "store-2", "unhealthy"), ("api", "store-2", "unhealthy"),
        ("store-1", "store", "unhealthy"), ("store-1", "store-2", "unhealthy"),
        ("store-3", "store", "unhealthy"), ("store-3", "store-2", "unhealthy")]
    # the service as a whole: scaled to 4 slots, each slot hears it (the documented contract)
    control.sent.clear()
    control.spec = control.spec.model_copy(update={"services": {
        **control.spec.services,
        "store": control.spec.services["store"].model_copy(update={"replicas": 4})}})
    control.rows.update({"store-2": (1, 1), "store-4": (1, 1)})
    control.tasks["store-4"] = [("store-4.1", True)]
    notifier.round()
    scaled = [(r, b["replicas"]["desired"]) for r, _, b in control.sent
              if b["service"] == "store" and b["event"] == "scaled"]
    assert scaled == [("store-1", 4), ("store-3", 4), ("store-4", 4)]


def test_the_loop_survives_a_bad_round():
    import threading
    stop, calls = threading.Event(), []

    def make_control():
        calls.append(1)
        if len(calls) >= 3:
            stop.set()
        raise RuntimeError("engine gone")
    notify.run_forever(make_control, stop, interval=0)
    assert len(calls) == 3


def test_the_moving_addresses_follow_the_servers_every_few_rounds(control):
    notifier = Notifier(control, clock=lambda: AT, refresh_every=3, lock_dir=None)
    for _ in range(7):
        notifier.round()
    assert control.refreshed == ["notes"] * 3      # rounds 1, 4 and 7


def test_no_address_upkeep_while_a_command_changes_the_app(control, tmp_path):
    from dragonball.shared import app_lock
    notifier = Notifier(control, clock=lambda: AT, refresh_every=1, lock_dir=str(tmp_path))
    with app_lock.app_lock("notes", "an apply", str(tmp_path)):
        notifier.round()
    assert control.refreshed == []
    notifier.round()
    assert control.refreshed == ["notes"]

"""`dragonball move` (orchestrator.moving): the slot named, the move checked whole before
anything changes, then stop -> copy -> re-pin -> start on the fakes; a failed copy leaves the
slot where it was, running; and which slot owns each volume (orchestrator.volumes)."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

from orchestrator_fakes import FakeAgents, FakeRegistry, FakeSwarm
from dragonball.app.errors import UnknownService
from dragonball.app.spec import load
from dragonball.errors import ExitStatus
from dragonball.orchestrator import moving, slotting, volumes
from dragonball.orchestrator.control import Control
from dragonball.orchestrator.state import AppStore
from dragonball.portal.store import Store
from dragonball.swarm import Node
from dragonball.volume_copy import VolumeCopyFailed

REPO = pathlib.Path(__file__).parents[2]
NOTES = (REPO / "examples" / "notes.app.yaml").read_text()
TWO = NOTES.replace("    replicas: 1\n    storage: true", "    replicas: 2\n    storage: true")
DIGESTS = {f"notes/{m}:0.1.0": f"sha256:{m[0] * 64}" for m in ("web", "api", "store")}
NODES = (Node("id-a", "node-a", "10.0.0.1"), Node("id-b", "node-b", "10.0.0.2"),
         Node("id-c", "node-c", "10.0.0.3"))
PIN = "dragonball.placement.notes.store-{}"


class Agents(FakeAgents):
    """Each slot's volumes on its server."""

    def __init__(self) -> None:
        super().__init__()
        self.held = {"10.0.0.1": ["notes_store_storage.1", "notes_store_log.1"],
                     "10.0.0.2": ["notes_store_storage.2", "notes_store_log.2"]}


@pytest.fixture
def engine():
    return FakeSwarm(NODES)


@pytest.fixture
def agents():
    return Agents()


@pytest.fixture
def control(tmp_path, engine, agents):
    store = Store.open(str(tmp_path / "portal.db"))
    now = [0.0]
    made = Control(engine, AppStore(store), agents, FakeRegistry(DIGESTS), "10.0.0.9:5000",
                   wait_s=5.0, clock=lambda: now[0],
                   sleep=lambda s: now.__setitem__(0, now[0] + s))
    (tmp_path / "notes.app.yaml").write_text(TWO)
    made.apply(str(tmp_path / "notes.app.yaml"))       # store-1 on node-a, store-2 on node-b
    engine.calls.clear()
    yield made
    store.close()


def pins(engine) -> dict:
    return {k: n.hostname for n in engine.nodes() for k, v in n.labels.items()
            if k.startswith("dragonball.placement.notes.store-") and v == "true"}


# -- naming the slot ------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [("store.2", ("store", 2)), ("store-2", ("store", 2)),
                                            ("store.1", ("store", 1))])
def test_a_slot_is_named_service_dot_number_or_its_dns_name(text, expected):
    assert moving.parse_slot(text, load(TWO, "t")) == expected


def test_a_lone_slot_may_be_named_by_its_service():
    assert moving.parse_slot("store", load(NOTES, "t")) == ("store", 1)


@pytest.mark.parametrize("text, error, says", [
    ("store", moving.MoveRefused, "store has 2 slots: say which one"),
    ("store.3", moving.MoveRefused, "store has no slot 3 (its slots: 1..2)"),
    ("api.1", moving.MoveRefused, "api has no storage: there is no data to move"),
    ("nope.1", UnknownService, "no service 'nope.1'"),
    ("", UnknownService, "no service ''"),
    ("store.2; rm -rf /", UnknownService, "no service"),
])
def test_a_slot_that_is_not_one_is_refused_with_the_reason(text, error, says):
    with pytest.raises(error) as refused:
        moving.parse_slot(text, load(TWO, "t"))
    assert says in refused.value.message and refused.value.hint


# -- the move checked whole -------------------------------------------------------------------
def planned(control, engine, slot: str, server: str) -> moving.Move:
    spec = control.spec_of("notes")
    units = slotting.expand(spec, engine.nodes(), place_new=False)
    return moving.plan_move(spec, units, engine.nodes(), moving.parse_slot(slot, spec), server)


def down(engine, node_id: str) -> None:
    engine._nodes[node_id] = dataclasses.replace(engine._nodes[node_id], ready=False)


@pytest.mark.parametrize("slot, server, setup, error, says, status", [
    ("store.2", "node-z", None, moving.MoveTargetUnknown, "no server 'node-z'",
     ExitStatus.NOT_FOUND),
    ("store.2", "node-c", "id-c", moving.MoveTargetDown, "node-c is down",
     ExitStatus.UNAVAILABLE),
    ("store.2", "node-b", None, moving.MoveConflict, "store-2 is on node-b already",
     ExitStatus.CONFLICT),
    ("store.2", "node-a", None, moving.MoveConflict, "node-a holds store-1 already",
     ExitStatus.CONFLICT),
    ("store.2", "node-c", "id-b", moving.MoveTargetDown, "store-2's server node-b is down",
     ExitStatus.UNAVAILABLE),
])
def test_a_move_that_cannot_be_done_is_refused_and_changes_nothing(
        control, engine, agents, slot, server, setup, error, says, status):
    if setup:
        down(engine, setup)
    with pytest.raises(error) as refused:
        control.move("notes", slot, server)
    assert says in refused.value.message and refused.value.exit_status == status
    assert engine.mutations() == [] and pins(engine) == {PIN.format(1): "node-a",
                                                         PIN.format(2): "node-b"}


def test_a_target_without_room_is_refused_before_the_slot_stops(control, engine, agents):
    agents.free["10.0.0.3"] = 30 << 20
    with pytest.raises(moving.MoveRefused, match="node-c has 30 MiB free"):
        control.move("notes", "store.2", "node-c")
    assert engine.mutations() == []


def test_a_target_holding_the_volume_already_is_refused(control, engine, agents):
    agents.held["10.0.0.3"] = ["notes_store_storage.2"]
    with pytest.raises(moving.MoveConflict, match="node-c holds notes_store_storage.2"):
        control.move("notes", "store.2", "node-c")
    assert engine.mutations() == []


def test_a_placement_that_does_not_allow_the_target_is_refused(control, engine):
    text = TWO.replace("    storage: true",
                       "    storage: true\n    placement: {labels: {disk: ssd}}")
    control.store.save_app("notes", "notes.app.yaml", text)
    with pytest.raises(moving.MoveRefused, match="node-c is not among the servers"):
        control.move("notes", "store.2", "node-c")


# -- the move carried out ------------------------------------------------------------------------
def test_stop_copy_repin_start_and_the_source_is_kept(control, engine, agents):
    copies = []

    def copy(agents_, source, target, name, labels, progress):
        progress(5, 10)
        progress(10, 10)
        copies.append((source, target, name, labels["io.dragonball.slot"]))
        return {"name": name, "size": 10, "sha256": "ab" * 32, "seconds": 0.1}
    move = planned(control, engine, "store.2", "node-c")
    done = moving.Mover(control, copy).run(move)
    assert copies == [("10.0.0.2", "10.0.0.3", "notes_store_storage.2", "store-2"),
                      ("10.0.0.2", "10.0.0.3", "notes_store_log.2", "store-2")]
    kinds = [c[:2] for c in engine.mutations()]
    assert kinds[0] == ("scale", "notes_store-2") and engine.mutations()[0][2] == 0
    assert kinds[-1] == ("scale", "notes_store-2") and engine.mutations()[-1][2] == 1
    assert ("update_node", "id-c") in kinds and ("update_node", "id-b") in kinds
    assert pins(engine) == {PIN.format(1): "node-a", PIN.format(2): "node-c"}
    assert done["from"] == "node-b" and done["to"] == "node-c"
    assert done["kept"] == ["notes_store_storage.2 on node-b", "notes_store_log.2 on node-b"]
    # the next apply keeps it there
    engine.calls.clear()
    plan = control.prepare_text(TWO, "notes.app.yaml").plan
    assert "store-2 stays on node-c (its storage is there)" in plan.notes


def test_a_failed_copy_leaves_the_slot_where_it_was_running_and_says_how_to_retry(
        control, engine):
    def copy(*args):
        raise VolumeCopyFailed("the copy of notes_store_storage.2 broke", "run it again",
                               "copy")
    with pytest.raises(VolumeCopyFailed):
        moving.Mover(control, copy).run(planned(control, engine, "store.2", "node-c"))
    assert pins(engine) == {PIN.format(1): "node-a", PIN.format(2): "node-b"}
    assert engine.mutations()[-1] == ("scale", "notes_store-2", 1)
    assert not [c for c in engine.mutations() if c[0] == "update_node"]


# -- who owns each volume ------------------------------------------------------------------
def test_each_volume_is_owned_by_the_slot_pinned_there_or_says_why_not(control, engine):
    units = {"notes": control.units_of("notes")}
    reports = {
        "node-a": [{"name": "notes_store_storage.1", "in_use": True}],
        "node-b": [{"name": "notes_store_storage.2", "in_use": False},
                   {"name": "notes_store_storage.1", "in_use": False},   # a move's source
                   {"name": "notes_store_storage.3", "in_use": False},   # scaled away
                   {"name": "blog_db_storage.1", "in_use": False},       # not applied
                   {"name": "scratch", "in_use": False}],
        "node-c": "the server is down: its volumes cannot be listed"}
    rows = {(r["server"], r["name"]): (r.get("owner"), r.get("why") or r.get("error"))
            for r in volumes.rows(reports, units)}
    assert rows == {
        ("node-a", "notes_store_storage.1"): ("store-1", "in use"),
        ("node-b", "notes_store_storage.2"): ("store-2", "its slot is not running"),
        ("node-b", "notes_store_storage.1"): (None, "store-1 is pinned to node-a: a copy "
                                                    "left here"),
        ("node-b", "notes_store_storage.3"): (None, "store-3 is not in notes's spec "
                                                    "(scaled away, or removed)"),
        ("node-b", "blog_db_storage.1"): (None, "its app blog is not applied"),
        ("node-b", "scratch"): (None, "not a slot's volume (its name follows no slot)"),
        ("node-c", None): (None, "the server is down: its volumes cannot be listed")}


# -- a server gone for good ------------------------------------------------------------------------
def remove_node(engine, node_id: str) -> None:
    """`docker node rm`: the node and its labels are gone from the Swarm."""
    del engine._nodes[node_id]


def test_a_slot_whose_server_left_the_swarm_waits_and_is_never_placed_again(
        control, engine, tmp_path):
    assert control.store.pins("notes") == {"store-1": "node-a", "store-2": "node-b"}
    remove_node(engine, "id-b")
    [row] = [r for r in control.status("notes") if r["service"] == "store-2"]
    assert (row["server"], row["waiting"]) == ("node-b", "node-b")
    plan = control.apply(str(tmp_path / "notes.app.yaml"))
    assert any(n.startswith("store-2 waits for node-b") for n in plan.notes), plan.notes
    assert pins(engine) == {PIN.format(1): "node-a"}   # not placed on node-c, empty


def test_a_gone_server_s_slot_moves_only_when_its_data_is_given_up(control, engine):
    remove_node(engine, "id-b")
    with pytest.raises(moving.MoveTargetDown) as refused:
        control.move("notes", "store.2", "node-c")
    assert "node-b is not in the cluster any more" in refused.value.message
    assert "--data-lost" in refused.value.hint and engine.mutations() == []
    copies = []
    move = control.check_move("notes", "store.2", "node-c", data_lost=True)
    done = moving.Mover(control, lambda *a: copies.append(a)).run(move)
    assert copies == [] and done["data_lost"] and done["kept"] == []
    assert pins(engine) == {PIN.format(1): "node-a", PIN.format(2): "node-c"}
    assert control.store.pins("notes")["store-2"] == "node-c"


def test_data_lost_is_refused_while_the_data_can_be_copied(control, engine):
    with pytest.raises(moving.MoveRefused, match="node-b is up: its data can be copied"):
        control.check_move("notes", "store.2", "node-c", data_lost=True)


# -- removing an old copy: the admin's explicit act ---------------------------------------------
class RemovingAgents(Agents):
    def delete_volume(self, address: str, name: str) -> dict:
        self.calls.append(("delete_volume", address, name))
        self.held[address].remove(name)
        return {"name": name, "removed": True}


def test_only_a_volume_no_slot_owns_is_removed(tmp_path, engine):
    store = Store.open(str(tmp_path / "portal.db"))
    agents = RemovingAgents()
    agents.held["10.0.0.3"] = ["notes_store_storage.2"]      # a copy left by a move
    control = Control(engine, AppStore(store), agents, FakeRegistry(DIGESTS), "r:5000",
                      wait_s=5.0, clock=lambda: 0.0, sleep=lambda s: None)
    (tmp_path / "notes.app.yaml").write_text(TWO)
    control.apply(str(tmp_path / "notes.app.yaml"))
    with pytest.raises(moving.MoveConflict, match="store-2's data: it is not removed"):
        control.remove_volume("node-b", "notes_store_storage.2")
    for server, name, error in (("node-z", "x", moving.MoveTargetUnknown),
                                ("node-c", "notes_store_storage.9", volumes.VolumeUnknown)):
        with pytest.raises(error):
            control.remove_volume(server, name)
    assert agents.named("delete_volume") == []
    assert control.remove_volume("node-c", "notes_store_storage.2")["removed"] is True
    assert agents.named("delete_volume") == [("delete_volume", "10.0.0.3",
                                               "notes_store_storage.2")]
    store.close()

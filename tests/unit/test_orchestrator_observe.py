"""Observe (one read of the cluster into an Observation) and the pure status rows over it."""

from __future__ import annotations

import pathlib

from dragonball.app import spec as app_spec
from dragonball.orchestrator import naming, planning, slotting, status
from dragonball.orchestrator.observe import Observation, Observer, names_in
from dragonball.swarm import Node, ServiceState
from orchestrator_fakes import FakeRegistry, FakeSwarm, image_id_of, task

NOTES = (pathlib.Path(__file__).parents[2] / "examples" / "notes.app.yaml").read_text()
SPEC = app_spec.load(NOTES, "notes.app.yaml")
REGISTRY = "10.0.0.5:5000"
DIGESTS = {"notes/api:0.1.0": "sha256:" + "a" * 64, "notes/web:0.1.0": "sha256:" + "b" * 64}


def test_names_in_a_spec_text_before_its_checks():
    assert names_in(NOTES) == ("notes", ["notes/web:0.1.0", "notes/api:0.1.0",
                                         "notes/store:0.1.0"])
    assert names_in("app: 7\nservices: {a: {image: x}, b: 3}") == ("", ["x"])
    assert names_in("just: [a, list") is None and names_in("- a") is None


def test_observe_reads_nodes_the_apps_services_by_label_and_pins_images():
    swarm = FakeSwarm()
    pinned = {"notes/api:0.1.0": f"{REGISTRY}/notes/api@{DIGESTS['notes/api:0.1.0']}"}
    swarm.add(planning.wanted_spec(SPEC, "api", pinned))
    other = planning.wanted_spec(SPEC, "api", pinned)
    other["Name"], other["Labels"][naming.APP_LABEL] = "blog_api", "blog"
    swarm.add(other)
    seen = Observer(swarm, FakeRegistry(DIGESTS), REGISTRY).observe(
        "notes", ["notes/api:0.1.0", "notes/store:0.1.0", "notes/api:0.1.0"])
    assert [n.hostname for n in seen.nodes] == ["node-a", "node-b"]
    assert list(seen.services) == ["api"] and seen.services["api"].name == "notes_api"
    digest = DIGESTS["notes/api:0.1.0"]
    # store is not in the registry: not pinned; api by image ID, pulled by digest
    assert dict(seen.pinned) == {"notes/api:0.1.0": image_id_of(digest)}
    assert dict(seen.pulls) == pinned
    assert seen.tasks == {}
    assert seen.checks().images == frozenset(["notes/api:0.1.0"])
    assert seen.checks().labels == {"node-a": {}, "node-b": {"zone": "b"}}


def test_observe_with_tasks_reads_each_deployed_services_tasks():
    swarm = FakeSwarm()
    units = slotting.expand(SPEC, (), place_new=False)
    swarm.add(planning.wanted_spec(units.spec, "store-1", {"notes/store:0.1.0": "r/s@sha256:s"},
                                   units.slots["store-1"]))
    seen = Observer(swarm, FakeRegistry({}), REGISTRY).observe("notes", tasks=True)
    assert [t.slot for t in seen.tasks["store-1"]] == [1]   # a slot's, by its slot label


def state(name: str, replicas: int) -> ServiceState:
    return ServiceState(f"notes_{name}", replicas=replicas)


def test_status_rows_leaves_first_with_tasks_meant_to_run():
    nodes = (Node("id-a", "node-a", labels={"dragonball.placement.notes.store-1": "true"}),
             Node("id-b", "node-b"))
    seen = Observation("notes", nodes,
                       {"store-1": state("store-1", 1), "api": state("api", 2),
                        "web": state("web", 0)},
                       tasks={"store-1": (task("notes_store-1", 1, "id-a"),),
                              "api": (task("notes_api", 1, "id-a"),
                                      task("notes_api", 2, "id-b", state="starting"),
                                      task("notes_api", 1, "id-gone", state="shutdown",
                                           desired="shutdown"))})
    rows = status.rows(slotting.expand(SPEC, nodes, place_new=False), seen)
    assert [(r["service"], r["state"], r["desired"], r["healthy"]) for r in rows] == [
        ("store-1", "healthy", 1, 1), ("api", "degraded", 2, 1), ("web", "stopped", 0, 0)]
    assert (rows[0]["of"], rows[0]["slot"], rows[0]["server"], rows[0]["waiting"]) == \
        ("store", 1, "node-a", None)
    assert rows[1]["tasks"] == [{"slot": 1, "server": "node-a", "state": "running"},
                                {"slot": 2, "server": "node-b", "state": "starting"}]
    absent = status.rows(slotting.expand(SPEC, (), place_new=False), Observation("notes"))
    assert absent[0]["state"] == "absent" and absent[0]["server"] == ""


def test_a_slot_whose_server_is_down_waits_for_it_by_name():
    nodes = (Node("id-a", "node-a"),
             Node("id-b", "node-b", ready=False,
                  labels={"dragonball.placement.notes.store-1": "true"}))
    task_left = task("notes_store-1", 1, "id-b", state="pending")
    seen = Observation("notes", nodes, {"store-1": state("store-1", 1)},
                       tasks={"store-1": (task_left,)})
    [store, *_] = status.rows(slotting.expand(SPEC, nodes, place_new=False), seen)
    assert (store["state"], store["server"], store["waiting"]) == ("waiting", "node-b", "node-b")


def test_status_state_names():
    assert [status.state(*a) for a in ((False, 1, 0), (True, 0, 0), (True, 2, 2),
                                       (True, 2, 1), (True, 2, 0))] == [
        "absent", "stopped", "healthy", "degraded", "down"]


class UnreachableRegistry:
    """The registry's server (the first one) is off."""

    def tag_digest(self, repository: str, tag: str):
        from dragonball.registry.client import RegistryUnreachable
        raise RegistryUnreachable("no registry answers at 10.0.0.5:5000", "")


def test_while_the_registry_is_gone_images_are_pinned_by_what_this_server_holds():
    swarm = FakeSwarm()
    held = {"notes/api:0.1.0": "sha256:" + "c" * 64}
    swarm.local_image_id = held.get
    seen = Observer(swarm, UnreachableRegistry(), REGISTRY).observe(
        "notes", ["notes/api:0.1.0", "notes/web:0.2.0"])
    # api started from the image every server loaded from its .bin; web (a later release,
    # not here) is not pinned, so the spec's check names it as missing: nothing starts
    assert dict(seen.pinned) == held and dict(seen.pulls) == {}
    assert seen.checks().images == frozenset(["notes/api:0.1.0"])

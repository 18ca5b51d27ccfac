"""The pure plan of apply, start and stop, as data: each case of tests/unit/data/deploy/ is
an observed cluster (`case.json`: nodes, the app's services as Swarm reports them) and an
app spec (examples/notes.app.yaml, edited as the case says), and `expected.json` is the
Deployment: the plan shown, the node labels to change, the stops, each launch's operation.
No engine: an Observation is plain data (STYLE.md habit 1).

    UPDATE_GOLDEN=1 pytest tests/unit/test_orchestrator_planning.py   # rewrite expected.json
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from dragonball.app import spec as app_spec
from dragonball.app.errors import SlotsUnplaced
from dragonball.orchestrator import naming, planning, slotting
from dragonball.orchestrator.observe import Observation
from dragonball.swarm import Node, ServiceState

HERE = pathlib.Path(__file__).parent
CASES = HERE / "data" / "deploy"
NOTES = (HERE.parents[1] / "examples" / "notes.app.yaml").read_text()
REGISTRY = "10.0.0.5:5000"


def spec_of(case: dict):
    text = NOTES
    for old, new in case.get("edit", []):
        assert old in text, old
        text = text.replace(old, new)
    return app_spec.load(text, "notes.app.yaml")


def pinned(spec) -> dict:
    return {s.image: f"{REGISTRY}/{s.image.split(':')[0]}@sha256:{n * 64}"
            for n, s in zip("abcdef", spec.services.values())}


def service(units, images: dict, name: str, seen: dict) -> ServiceState:
    """The ServiceState of unit `name` as described: made from the wanted Swarm spec unless
    `definition` is "other"; `image`, `replicas`, `needs` as its labels say."""
    spec, slot = units.spec, units.slots.get(name)
    labels = {naming.APP_LABEL: spec.app, naming.SERVICE_LABEL: units.base(name)}
    if slot:
        labels[naming.SLOT_LABEL] = name
    wanted = planning.wanted_spec(spec, name, images, slot) if name in spec.services else None
    same = wanted is not None and seen.get("definition", "as-specified") == "as-specified"
    mine = spec.services.get(name)
    labels[naming.IMAGE_LABEL] = seen.get("image", mine.image if mine else "")
    labels[naming.NEEDS_LABEL] = ",".join(seen.get("needs", mine.needs() if mine else []))
    replicas = seen.get("replicas", mine.replicas if mine else 1)
    return ServiceState(naming.swarm_service(spec.app, name), labels, replicas=replicas,
                        spec_hash=wanted["Labels"][naming.SPEC_LABEL] if same else "0" * 16)


def observation(spec, data: dict) -> Observation:
    images = pinned(spec)
    nodes = tuple(Node(n["id"], n["hostname"], ready=n.get("ready", True),
                       labels=n.get("labels", {})) for n in data["nodes"])
    units = slotting.expand(spec, nodes)
    services = {name: service(units, images, name, seen)
                for name, seen in data["services"].items()}
    return Observation(spec.app, nodes, services, images)


def run(case: dict):
    spec = spec_of(case)
    command, *args = case["command"]
    if command == "stop":
        return planning.stop(spec, *args)
    seen = observation(spec, case["observed"])
    return getattr(planning, command)(spec, seen, *args)


def shown(waves) -> list:
    return [[f"{s.service} {s.action}" + (f": {'; '.join(s.reasons)}" if s.reasons else "")
             for s in wave] for wave in waves]


def as_data(deployment: planning.Deployment) -> dict:
    return {"summary": {a: deployment.shown.count(a) for a in ("start", "change", "keep",
                                                                "stop")},
            "stop_waves": shown(deployment.shown.stop_waves),
            "start_waves": shown(deployment.shown.start_waves),
            "notes": list(deployment.shown.notes),
            "labels": [[c.hostname, c.key, c.value] for c in deployment.labels],
            "stops": [[s.service, list(s.needs)] for s in deployment.stops],
            "remove": deployment.remove,
            "launches": [[s.service, s.op] + (["force"] if s.force else [])
                         for s in deployment.launches]}


@pytest.mark.parametrize("name", sorted(p.name for p in CASES.iterdir()))
def test_plan(name):
    folder = CASES / name
    case = json.loads((folder / "case.json").read_text())
    found = as_data(run(case))
    if os.environ.get("UPDATE_GOLDEN"):
        (folder / "expected.json").write_text(json.dumps(found, indent=1) + "\n")
    assert found == json.loads((folder / "expected.json").read_text()), case["doc"]


def test_a_launch_carries_the_pinned_spec_to_create():
    spec = spec_of({})
    empty = {"nodes": [{"id": "id-a", "hostname": "node-a"}], "services": {}}
    [*_, web] = planning.deploy(spec, observation(spec, empty)).launches
    image = web.spec["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image == f"{REGISTRY}/notes/web@sha256:{'a' * 64}"
    assert web.spec["Labels"][naming.IMAGE_LABEL] == "notes/web:0.1.0"
    assert (web.fresh_only, web.keeps_tasks) == (False, False)


def test_a_slot_with_no_server_to_take_it_refuses_the_plan():
    spec = spec_of({})
    with pytest.raises(SlotsUnplaced) as refused:
        planning.deploy(spec, observation(spec, {"nodes": [
            {"id": "id-a", "hostname": "node-a", "ready": False}], "services": {}}))
    assert "store-1: no ready server fits its placement" in refused.value.message


def test_a_waiting_slot_is_launched_but_not_waited_on_and_its_parameters_are_its_services():
    spec = spec_of({})
    seen = {"nodes": [{"id": "id-a", "hostname": "node-a"},
                      {"id": "id-b", "hostname": "node-b", "ready": False,
                       "labels": {"dragonball.placement.notes.store-1": "true"}}],
            "services": {"store-1": {}, "api": {}, "web": {}}}
    deployment = planning.deploy(spec, observation(spec, seen))
    store = deployment.launches[0]
    assert (store.service, store.waits_for, store.params_of) == ("store-1", "node-b", "store")
    assert deployment.launched() == ["store", "api", "web"]
    assert deployment.labels == ()   # the pin stays where the data is


def test_only_an_update_counts_fresh_tasks_only_a_scale_keeps_them():
    ops = {op: planning.LaunchStep("s", "a_s", (), 1, op) for op in ("create", "update",
                                                                    "scale")}
    assert [ops[o].fresh_only for o in ops] == [False, True, False]
    assert [ops[o].keeps_tasks for o in ops] == [False, False, True]


def test_the_spec_hash_of_a_service_is_stable():
    """Services already deployed carry this hash: a change of how it is computed would
    restart every service of every app at the next apply."""
    spec = spec_of({})
    wanted = planning.wanted_spec(spec, "api", pinned(spec))
    assert wanted["Labels"][naming.SPEC_LABEL] == EXPECTED_API_HASH


EXPECTED_API_HASH = "43334a0e019c1d4c"


def test_a_slot_stays_with_its_data_when_its_placement_no_longer_allows_its_server():
    spec = spec_of({"edit": [["    storage: true",
                              "    storage: true\n    placement: {servers: [node-a]}"]]})
    seen = {"nodes": [{"id": "id-a", "hostname": "node-a"},
                      {"id": "id-b", "hostname": "node-b",
                       "labels": {"dragonball.placement.notes.store-1": "true"}}],
            "services": {"store-1": {}, "api": {}, "web": {}}}
    deployment = planning.deploy(spec, observation(spec, seen))
    assert deployment.labels == ()
    assert "store-1 stays on node-b, which its placement no longer allows: its data is " \
           "there (dragonball move store-1 --to SERVER)" in deployment.shown.notes


def test_a_backend_behind_a_service_drains_before_it_stops_and_the_hash_ignores_it():
    """api is web's backend: its tasks keep serving DRAIN_S once their stop begins (within a
    30 s grace), so web's nginx lets it go first; web (host ports) and the store (data) stop
    at once. How a stop goes is outside the spec hash: no service restarts for it."""
    from dragonball.orchestrator import specs
    spec = spec_of({})
    env = {name: planning.wanted_spec(spec, name, pinned(spec))["TaskTemplate"]
           ["ContainerSpec"]["Env"] for name in ("api", "web", "store")}
    assert f"{specs.DRAIN_ENV}={specs.DRAIN_S}" in env["api"]
    assert f"{specs.GRACE_ENV}=30" in env["api"]
    assert not any(e.startswith(specs.DRAIN_ENV) for e in env["web"] + env["store"])
    api = planning.wanted_spec(spec, "api", pinned(spec))
    bare = json.loads(json.dumps(api))
    bare["TaskTemplate"]["ContainerSpec"]["Env"] = [
        e for e in bare["TaskTemplate"]["ContainerSpec"]["Env"]
        if not e.startswith((specs.DRAIN_ENV, specs.GRACE_ENV))]
    assert specs.spec_hash(bare) == specs.spec_hash(api)

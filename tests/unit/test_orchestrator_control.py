"""Control over fakes of the engine, the agents and the registry, with a real store:
nothing changes on an invalid spec or parameter; parameters reach every running task;
a changed definition plans as "change"; apply rolls out leaves first."""

from __future__ import annotations

import pathlib

import pytest

from orchestrator_fakes import FakeAgents, FakeRegistry, FakeSwarm, image_id_of, task
from dragonball.agent_client import AgentError
from dragonball.app.errors import AppSpecInvalid, UnknownService
from dragonball.errors import DragonBallError
from dragonball.orchestrator import planning
from dragonball.orchestrator.control import Control
from dragonball.orchestrator.images import ImagesMissing
from dragonball.orchestrator.rollout import RolloutFailed
from dragonball.orchestrator.state import AppStore
from dragonball.portal.store import Store
from dragonball.shared.node_labels import ENROLLED_CONSTRAINT

REPO = pathlib.Path(__file__).parents[2]
NOTES = (REPO / "examples" / "notes.app.yaml").read_text()
REGISTRY = "10.0.0.5:5000"
DIGESTS = {f"notes/{m}:0.1.0": f"sha256:{m[0] * 64}" for m in ("web", "api", "store")}


@pytest.fixture
def engine():
    return FakeSwarm()


@pytest.fixture
def agents():
    return FakeAgents()


@pytest.fixture
def registry():
    return FakeRegistry(DIGESTS)


@pytest.fixture
def control(tmp_path, engine, agents, registry):
    store = Store.open(str(tmp_path / "portal" / "portal.db"))
    now = [0.0]  # a clock that moves only when the control sleeps (polls, agent retries)
    made = Control(engine, AppStore(store), agents, registry, REGISTRY, wait_s=5.0,
                   clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    yield made
    store.close()


def spec_file(tmp_path, text: str = NOTES) -> str:
    path = tmp_path / "notes.app.yaml"
    path.write_text(text)
    return str(path)


def assert_nothing_changed(control, engine, agents) -> None:
    assert engine.mutations() == []
    assert agents.calls == []
    assert control.store.apps() == []
    assert control.store.params("notes", "api") == (0, {})
    assert not [e for e in control.store.store.events() if e["kind"].startswith("app.")]


# -- refused before any change -----------------------------------------------------------
def test_an_image_missing_from_the_registry_is_refused_and_nothing_changes(
        tmp_path, control, engine, agents, registry):
    del registry.digests["notes/store:0.1.0"]
    with pytest.raises(AppSpecInvalid) as caught:
        control.apply(spec_file(tmp_path))
    [problem] = caught.value.problems
    assert problem.path == "services.store.image"
    assert "'notes/store:0.1.0' is not in the portal registry" in problem.message
    assert problem.line == NOTES.splitlines().index("    image: notes/store:0.1.0") + 1
    assert_nothing_changed(control, engine, agents)


def test_an_unknown_server_is_refused_and_nothing_changes(tmp_path, control, engine,
                                                          agents):
    text = NOTES.replace("    depends_on: [store]",
                         "    depends_on: [store]\n    placement: {servers: [node-c]}")
    with pytest.raises(AppSpecInvalid) as caught:
        control.apply(spec_file(tmp_path, text))
    [problem] = caught.value.problems
    assert problem.path == "services.api.placement.servers[0]"
    assert "unknown server 'node-c'" in problem.message
    assert "node-a" in problem.hint or "node-b" in problem.hint
    assert_nothing_changed(control, engine, agents)


def test_a_label_no_server_carries_is_refused(tmp_path, control, engine, agents):
    text = NOTES.replace("    depends_on: [store]",
                         "    depends_on: [store]\n    placement: {labels: {zone: c}}")
    with pytest.raises(AppSpecInvalid, match="no server carries the label zone=c"):
        control.apply(spec_file(tmp_path, text))
    assert_nothing_changed(control, engine, agents)


def test_a_dry_run_changes_nothing(tmp_path, control, engine, agents):
    plan = control.apply(spec_file(tmp_path), dry_run=True)
    assert plan.count("start") == 3
    assert_nothing_changed(control, engine, agents)


def test_a_cycle_and_an_unknown_image_are_refused_together(tmp_path, control, engine, agents,
                                                           registry):
    text = NOTES.replace("    storage: true", "    storage: true\n    depends_on: [web]")
    text = text.replace("notes/store:0.1.0", "notes/store:9.9.9")
    with pytest.raises(AppSpecInvalid) as caught:
        control.apply(spec_file(tmp_path, text))
    messages = [p.message for p in caught.value.problems]
    assert any("dependency cycle" in m for m in messages), messages
    assert any("notes/store:9.9.9" in m and "registry" in m for m in messages), messages
    assert_nothing_changed(control, engine, agents)   # the world was read, not changed


def test_text_that_is_not_a_spec_looks_nothing_up(tmp_path, control, engine, registry):
    with pytest.raises(AppSpecInvalid):
        control.apply(spec_file(tmp_path, "just: [a, list"))
    assert engine.calls == [] and registry.calls == []


def test_a_missing_file_is_refused(tmp_path, control, engine, agents):
    with pytest.raises(AppSpecInvalid, match="cannot read it"):
        control.apply(str(tmp_path / "nope.yaml"))
    assert_nothing_changed(control, engine, agents)


# -- apply -------------------------------------------------------------------------------
def test_apply_rolls_out_leaves_first_with_pinned_images(tmp_path, control, engine, agents):
    plan = control.apply(spec_file(tmp_path))
    assert plan.count("start") == 3
    created = [c[1] for c in engine.calls if c[0] == "create_service"]
    assert created == ["notes_store-1", "notes_api", "notes_web"]   # the store: its slot
    assert ("ensure_network", "notes_net") in engine.calls
    image = engine.by_name["notes_api"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image == image_id_of(f"sha256:{'a' * 64}")      # pinned by image ID
    assert engine.by_name["notes_api"]["Labels"]["io.dragonball.image"] == "notes/api:0.1.0"
    # every ready server got every image before the first launch, pulled by digest
    assert sorted(agents.pulls) == sorted(
        (address, f"{REGISTRY}/{image.split(':')[0]}@{digest}", image_id_of(digest))
        for address in ("10.0.0.1", "10.0.0.2") for image, digest in DIGESTS.items())
    # no placement.servers: the only node touched is the store slot's, pinned once
    assert [c[1:] for c in engine.calls if c[0] == "update_node"] == [
        ("id-a", {"dragonball.placement.notes.store-1": "true"}, False)]
    puts = agents.named("put_params")
    assert {(c[1], c[3]) for c in puts} == {(a, s) for a in ("10.0.0.1", "10.0.0.2")
                                            for s in ("web", "api", "store")}
    assert control.store.app("notes")[1] == NOTES
    assert control.store.params("notes", "api")[0] == 1
    # nothing changed since: a second apply keeps everything
    engine.calls.clear()
    again = control.apply(spec_file(tmp_path))
    assert again.count("keep") == 3
    assert not [c for c in engine.calls if c[0] in ("create_service", "update_service",
                                                     "update_node")]


def test_apply_reads_the_spec_observes_and_plans_once(tmp_path, control, engine, registry):
    prepared = control.prepare(spec_file(tmp_path))
    assert len(registry.calls) == 3      # one digest lookup per image
    assert [c for c in engine.calls if c[0] == "services"] == [("services", None)]  # once
    engine.calls.clear()
    registry.calls.clear()
    assert control.execute(prepared) is prepared.plan
    assert registry.calls == []          # executing looks nothing up again to plan
    assert not [c for c in engine.calls if c[0] == "services"]
    assert [c[1] for c in engine.calls if c[0] == "create_service"] == [
        "notes_store-1", "notes_api", "notes_web"]


def test_a_new_default_reaches_kept_tasks_and_a_refusal_is_named(tmp_path, control, engine,
                                                                   agents):
    control.apply(spec_file(tmp_path))
    changed = NOTES.replace("default: Hello from the DragonBall notes API", "default: Hi")
    agents.calls.clear()
    agents.answers["c-notes_api-2"] = {"exit_code": 1, "output": "", "report": {
        "ok": False, "scripts": [{"name": "1_check.sh", "exit_status": 1,
                                  "output": "greeting refused\n"}]}}
    with pytest.raises(DragonBallError, match=r"refused by api\.2 on node-b: 1_check.sh"):
        control.apply(spec_file(tmp_path, changed))
    execs = agents.named("exec")   # the kept api tasks only: the others did not change
    assert {c[2] for c in execs} == {"c-notes_api-1", "c-notes_api-2"}
    assert all(c[3:] == ("config_change", execs[0][4], True) for c in execs)
    assert execs[0][4]["greeting"] == "Hi"
    # not marked delivered: the next apply tries again, and succeeds
    del agents.answers["c-notes_api-2"]
    agents.calls.clear()
    control.apply(spec_file(tmp_path, changed))
    assert len(agents.named("exec")) == 2
    agents.calls.clear()
    control.apply(spec_file(tmp_path, changed))
    assert agents.named("exec") == []


def test_a_failed_task_stops_apply_naming_service_server_and_log(tmp_path, control,
                                                                 engine, agents):
    engine.failing["notes_api"] = "task: non-zero exit (1)"
    agents.logs_of = {"c-notes_api-1": ["api: cannot reach store:6379"],
                      "c-notes_api-2": ["api: cannot reach store:6379"]}
    with pytest.raises(RolloutFailed) as caught:
        control.apply(spec_file(tmp_path))
    e = caught.value
    assert (e.service, e.server) == ("api", "node-a")
    assert e.output == "api: cannot reach store:6379"
    assert e.healthy == ["store-1"]
    assert "notes_web" not in engine.by_name    # nothing launched after the failure


def test_placement_servers_label_only_the_servers_listed(tmp_path, control, engine):
    text = NOTES.replace("    depends_on: [store]",
                         "    depends_on: [store]\n    placement: {servers: [node-b]}")
    control.apply(spec_file(tmp_path, text))
    key = "dragonball.placement.notes.api"
    assert [c[1:] for c in engine.calls if c[0] == "update_node"] == [
        ("id-b", {key: "true"}, False),
        ("id-a", {"dragonball.placement.notes.store-1": "true"}, False)]   # the store's pin
    # moved to node-a: set there, removed from node-b; nothing else touched
    engine.calls.clear()
    control.apply(spec_file(tmp_path, text.replace("servers: [node-b]", "servers: [node-a]")))
    assert sorted(c[1:] for c in engine.calls if c[0] == "update_node") == [
        ("id-a", {key: "true"}, False), ("id-b", {key: None}, False)]


# -- plan --------------------------------------------------------------------------------
def deploy(control, engine, text: str = NOTES) -> None:
    """Put the app's services on the fake swarm as apply would have made them."""
    prepared = control.prepare_text(text, "notes.app.yaml")
    units = planning.placed(prepared.spec, prepared.observation)
    for name in units.spec.services:
        engine.add(planning.wanted_spec(units.spec, name, prepared.observation.pinned,
                                        units.slots.get(name)))
    for change in prepared.deployment.labels:
        engine.update_node(change.node_id, labels={change.key: change.value})


def test_plan_keeps_what_runs_as_specified(control, engine):
    deploy(control, engine)
    plan = control.prepare_text(NOTES, "notes.app.yaml").plan
    assert [s.action for wave in plan.start_waves for s in wave] == ["keep"] * 3


def test_plan_marks_a_changed_definition_as_change(control, engine):
    deploy(control, engine)
    text = NOTES.replace("{cpus: 0.5, memory: 256m}", "{cpus: 0.5, memory: 512m}")
    plan = control.prepare_text(text, "notes.app.yaml").plan
    steps = {s.service: s for wave in plan.start_waves for s in wave}
    assert steps["api"].action == "change"
    assert steps["api"].reasons == ("service definition",)
    assert (steps["web"].action, steps["store-1"].action) == ("keep", "keep")


def test_plan_marks_a_new_digest_under_the_same_tag_as_change(control, engine, registry):
    deploy(control, engine)
    registry.digests["notes/web:0.1.0"] = "sha256:" + "f" * 64
    plan = control.prepare_text(NOTES, "notes.app.yaml").plan
    steps = {s.service: s.action for wave in plan.start_waves for s in wave}
    assert steps == {"store-1": "keep", "api": "keep", "web": "change"}


def test_plan_of_a_new_image_tag_is_a_change_with_its_reason(control, engine, registry):
    deploy(control, engine)
    registry.digests["notes/api:0.2.0"] = "sha256:" + "9" * 64
    text = NOTES.replace("notes/api:0.1.0", "notes/api:0.2.0")
    plan = control.prepare_text(text, "notes.app.yaml").plan
    steps = {s.service: s for wave in plan.start_waves for s in wave}
    assert steps["api"].action == "change"
    assert "image notes/api:0.1.0 -> notes/api:0.2.0" in steps["api"].reasons


# -- parameters --------------------------------------------------------------------------
@pytest.fixture
def applied(tmp_path, control, engine, agents):
    """notes applied and running: api has two running tasks and one still starting."""
    control.store.save_app("notes", spec_file(tmp_path), NOTES)
    deploy(control, engine)
    engine.calls.clear()
    engine.task_lists["notes_api"] = [
        task("notes_api", 1, "id-a", container="c-api-1"),
        task("notes_api", 2, "id-b", container="c-api-2"),
        task("notes_api", 3, "id-b", state="starting"),
        task("notes_api", 1, "id-a", state="shutdown", desired="shutdown")]
    return control


# -- explain, status ---------------------------------------------------------------------
def test_explain_gives_the_server_and_the_log_tail_of_a_failed_task(control, agents):
    agents.logs_of["c-x"] = ["starting", "redis: cannot bind"]
    failed = task("notes_store", 1, "id-b", state="failed", container="c-x")
    assert control.tasks.explain(failed) == ("node-b", "starting\nredis: cannot bind")
    assert agents.named("logs") == [("logs", "10.0.0.2", "c-x", 30)]


def test_explain_when_the_log_cannot_be_read(control, agents):
    def refuse(address, container, tail=200):
        raise AgentError("no such container")
    agents.logs = refuse
    failed = task("notes_store", 1, "id-b", state="failed", container="c-x")
    assert control.tasks.explain(failed) == ("node-b",
                                       "(its log could not be read: no such container)")


def test_status_rows_in_start_order(applied, engine):
    rows = applied.status("notes")
    assert [r["service"] for r in rows] == ["store-1", "api", "web"]
    api = rows[1]
    assert (api["desired"], api["healthy"], api["state"]) == (2, 2, "healthy")
    assert [t["state"] for t in api["tasks"]] == ["running", "running", "starting"]
    engine.remove_service("notes_web")
    assert applied.status("notes")[2]["state"] == "absent"


# -- slots of a service with storage -------------------------------------------------------
TWO_SLOTS = NOTES.replace("    replicas: 1\n    storage: true",
                          "    replicas: 2\n    storage: true")


def test_slots_spread_over_the_servers_and_stay_where_their_data_is(tmp_path, control, engine):
    control.apply(spec_file(tmp_path, TWO_SLOTS))
    labels = {n.hostname: dict(n.labels) for n in engine.nodes()}
    assert labels["node-a"].get("dragonball.placement.notes.store-1") == "true"
    assert labels["node-b"].get("dragonball.placement.notes.store-2") == "true"
    constraint = engine.by_name["notes_store-2"]["TaskTemplate"]["Placement"]["Constraints"]
    assert constraint == [ENROLLED_CONSTRAINT,
                          "node.labels.dragonball.placement.notes.store-2==true"]
    # whatever the spread would say now, a second apply moves nothing
    engine.calls.clear()
    plan = control.apply(spec_file(tmp_path, TWO_SLOTS))
    assert not [c for c in engine.calls if c[0] == "update_node"]
    assert "store-2 stays on node-b (its storage is there)" in plan.notes


def test_one_slot_stops_and_starts_by_its_name_the_service_by_its_own(tmp_path, control,
                                                                      engine):
    control.apply(spec_file(tmp_path, TWO_SLOTS))
    control.store.save_app("notes", "notes.app.yaml", TWO_SLOTS)
    stopped, notes = control.stop("notes", "store-2")
    assert stopped == ["store-2"] and "store-2 stops while still needed by api" in notes
    assert engine.by_name["notes_store-1"]["Mode"]["Replicated"]["Replicas"] == 1
    assert control.start("notes", "store") == ["store-1", "store-2"]
    with pytest.raises(UnknownService, match="store-3"):
        control.stop("notes", "store-3")


def test_parameters_belong_to_the_service_not_to_one_slot(tmp_path, control):
    control.apply(spec_file(tmp_path, TWO_SLOTS))
    with pytest.raises(UnknownService):
        control.get_params("notes", "store-1")
    assert control.get_params("notes", "store")["service"] == "store"


def test_a_server_that_cannot_get_an_image_stops_apply_before_any_change(tmp_path, control,
                                                                          engine, agents):
    agents.pull_fails = {"10.0.0.2": AgentError("the agent at 10.0.0.2:9443 answered HTTP "
                                                "502: the pull failed", status=502)}
    with pytest.raises(ImagesMissing, match="node-b cannot get notes/"):
        control.apply(spec_file(tmp_path))
    assert engine.mutations() == [] and agents.named("put_params") == []
    agents.pull_fails = {}
    control.apply(spec_file(tmp_path))      # fixed: every server gets them, then the launch
    assert {a for a, _, _ in agents.pulls} == {"10.0.0.1", "10.0.0.2"}


def test_a_host_port_another_app_holds_is_a_problem_before_anything_changes(tmp_path,
                                                                              control, engine):
    """Issue 15: a host port clashing with another app was not flagged, even by apply
    --dry-run. The other apps' published ports are observed with where their tasks run."""
    other = {"Name": "blog_web", "Labels": {"io.dragonball.app": "blog",
                                            "io.dragonball.service": "web"},
             "Mode": {"Replicated": {"Replicas": 1}},
             "TaskTemplate": {"ContainerSpec": {"Image": "blog/web:1"}},
             "EndpointSpec": {"Ports": [{"PublishedPort": 8080, "TargetPort": 80,
                                         "Protocol": "tcp", "PublishMode": "host"}]}}
    engine.add(other, tasks=[task("blog_web", 1, "id-a")])
    with pytest.raises(AppSpecInvalid) as refused:
        control.prepare(spec_file(tmp_path))
    assert "port 8080/tcp is published by blog/web on node-a" in str(refused.value.problems)
    assert engine.mutations() == []
    placed = NOTES.replace("    replicas: 1\n    ports:", "    replicas: 1\n    placement: "
                           "{servers: [node-b]}\n    ports:", 1)
    control.prepare(spec_file(tmp_path, placed))   # on another server: no clash

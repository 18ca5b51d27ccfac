"""Shared parameters through the Control over the orchestrator fakes (issue 15: "a secret
shared by two services must be set twice"): declared once in the spec, set once as
`@shared`, written in the folder of every service and job taking it and delivered to each
running task of the services; one refusal by any task of any of them puts the value before
back in all of them, stored and on disk; set before the first apply too; read back with who
takes it; forgotten with the app."""

from __future__ import annotations

import pytest

from orchestrator_fakes import FakeAgents, FakeRegistry, FakeSwarm, task
from dragonball.agent_client import AgentError
from dragonball.app.errors import UnknownService
from dragonball.app.model import SHARED
from dragonball.orchestrator import answers
from dragonball.orchestrator.control import Control
from dragonball.orchestrator.params import ParamsInvalid
from dragonball.orchestrator.state import AppStore
from dragonball.portal.store import Store
from test_orchestrator_control import DIGESTS, NOTES, REGISTRY, deploy, spec_file

#: notes with the store's password declared once: the api and the store take it (the api
#: as store_password), and so does a job; `spare` nobody takes.
SHARED_NOTES = NOTES.replace("app: notes\n", """app: notes
shared:
  store_password: {type: string, default: "", secret: true}
  spare: {type: int, default: 1}
""", 1).replace('      store_password: {type: string, default: "", secret: true}',
                "      store_password: {shared: store_password}").replace(
    '      password: {type: string, default: "", secret: true}',
    "      password: {shared: store_password, type: string}") + """
jobs:
  migrate:
    image: notes/api:0.1.0
    depends_on: [store]
    parameters:
      pw: {shared: store_password}
"""
REFUSE = {"exit_code": 1, "output": "", "report": {"ok": False, "scripts": [
    {"name": "2_auth.sh", "exit_status": 3, "output": "the store refuses this password\n"}]}}


@pytest.fixture
def engine():
    return FakeSwarm()


@pytest.fixture
def agents():
    return FakeAgents()


@pytest.fixture
def control(tmp_path, engine, agents):
    store = Store.open(str(tmp_path / "portal" / "portal.db"))
    now = [0.0]  # a clock that moves only when the control sleeps (polls, agent retries)
    made = Control(engine, AppStore(store), agents, FakeRegistry(DIGESTS), REGISTRY,
                   wait_s=5.0, clock=lambda: now[0],
                   sleep=lambda s: now.__setitem__(0, now[0] + s))
    yield made
    store.close()


@pytest.fixture
def shared_app(tmp_path, control, engine, agents):
    """SHARED_NOTES applied: api has two running tasks, the store's slot one."""
    control.store.save_app("notes", spec_file(tmp_path, SHARED_NOTES), SHARED_NOTES)
    deploy(control, engine, SHARED_NOTES)
    engine.task_lists["notes_api"] = [task("notes_api", 1, "id-a", container="c-api-1"),
                                      task("notes_api", 2, "id-b", container="c-api-2")]
    engine.task_lists["notes_store-1"] = [task("notes_store-1", 1, "id-a",
                                               container="c-store-1")]
    engine.calls.clear()
    return control


def told(calls: list) -> list[tuple[str, object]]:
    """(container, the store's password it was given: `store_password` in the api,
    `password` in the store) of each config_change among `calls`, in order."""
    return [(c[2], c[4].get("store_password", c[4].get("password"))) for c in calls
            if c[0] == "exec"]


def test_a_shared_value_is_set_once_and_reaches_every_taker(shared_app, agents):
    results = shared_app.set_param_values("notes", SHARED, {"store_password": "s3cret"})
    # in start order: the store (which the api needs) takes it before the api uses it
    assert [(r.service, r.task, r.ok) for r in results] == [
        ("store", "store.1", True), ("api", "api.1", True), ("api", "api.2", True)]
    assert told(agents.calls) == [("c-store-1", "s3cret"), ("c-api-1", "s3cret"),
                                  ("c-api-2", "s3cret")]
    written = {(c[3], c[1]): c[5] for c in agents.named("put_params")}
    assert written[("migrate", "10.0.0.1")]["pw"] == "s3cret"   # a job: its folder only
    assert written[("store", "10.0.0.2")]["password"] == "s3cret"
    assert {c[3] for c in agents.named("put_params")} == {"api", "store", "migrate"}
    assert shared_app.store.params("notes", SHARED)[1] == {"store_password": "s3cret"}
    assert shared_app.store.params("notes", "api")[1] == {}   # no value of its own
    [event] = [e for e in shared_app.store.store.events() if e["kind"] == "app.params"]
    assert event["detail"] == {"app": "notes", "service": SHARED,
                               "changed": ["store_password"]}


def test_a_refusal_by_any_taker_restores_the_value_before_everywhere(shared_app, agents):
    """The store took the new password, then an api task refuses it: the api goes back to
    the old one first, then the store; every folder is written again at a newer revision,
    the portal keeps the old value."""
    shared_app.set_param_values("notes", SHARED, {"store_password": "old"})
    revisions = {m: shared_app.store.params("notes", m)[0] for m in ("api", "store")}
    agents.answers["c-api-2"] = REFUSE
    before = len(agents.calls)
    results = shared_app.set_param_values("notes", SHARED, {"store_password": "new"})
    refused = [r for r in results if r.refused]
    assert [(r.task, r.detail) for r in refused] == [
        ("api.2", "2_auth.sh exited 3: the store refuses this password")]
    assert shared_app.store.params("notes", SHARED)[1] == {"store_password": "old"}
    later = agents.calls[before:]
    assert told(later) == [("c-store-1", "new"), ("c-api-1", "new"), ("c-api-2", "new"),
                           ("c-api-1", "old"), ("c-api-2", "old"), ("c-store-1", "old")]
    puts = [c for c in later if c[0] == "put_params"]
    assert {c[3] for c in puts} == {"api", "store", "migrate"}
    for (member, server), call in {(c[3], c[1]): c for c in puts}.items():
        assert "new" not in call[5].values(), member   # on disk: the old value everywhere
        first = next(c for c in puts if (c[3], c[1]) == (member, server))
        assert call[4] > first[4]                       # at a newer revision than the new one
    for member, revision in revisions.items():
        assert shared_app.store.params("notes", member)[0] > revision
    [event] = [e for e in shared_app.store.store.events() if e["kind"] == "app.params_refused"]
    assert event["detail"] == {"app": "notes", "service": SHARED,
                               "changed": ["store_password"], "refused_by": ["api.2"]}
    answer = answers.task_answers(results)
    assert answer["restored"] is True and answer["ok"] is False


def test_a_refusal_by_what_is_needed_tells_no_client(shared_app, agents):
    """The store refuses the new password: the api is never handed it (it would use a
    password the store does not take); the store gets the old one back."""
    agents.answers["c-store-1"] = REFUSE
    results = shared_app.set_param_values("notes", SHARED, {"store_password": "new"})
    assert [(r.task, r.refused) for r in results] == [("store.1", True)]
    assert told(agents.calls) == [("c-store-1", "new"), ("c-store-1", "")]
    assert shared_app.store.params("notes", SHARED)[1] == {}
    written = [c[5]["store_password"] for c in agents.named("put_params") if c[3] == "api"]
    assert written[-1] == "" and shared_app.params.in_force(
        shared_app.spec_of("notes"), "api")["store_password"] == ""


def test_the_value_before_is_what_a_task_starting_later_gets(shared_app, agents):
    shared_app.set_param_values("notes", SHARED, {"store_password": "old"})
    agents.answers["c-api-2"] = REFUSE
    shared_app.set_param_values("notes", SHARED, {"store_password": "new"})
    assert shared_app.params.in_force(shared_app.spec_of("notes"), "store")["password"] == \
        "old"
    found = shared_app.get_params("notes", "api")["parameters"]["store_password"]
    assert (found["value"], found["set"], found["shared"]) == ("old", True, "store_password")


def test_setting_the_same_value_again_reaches_nobody(shared_app, agents):
    shared_app.set_param_values("notes", SHARED, {"store_password": "x"})
    agents.calls.clear()
    assert shared_app.set_param_values("notes", SHARED, {"store_password": "x"}) == []
    assert agents.named("exec") == []


def test_a_task_not_reached_gets_the_value_at_the_next_set(shared_app, agents):
    """A task that could not be asked has not said no: the value stays, and setting it
    again delivers it to the service not yet told (as a service's own `params set` does)."""
    agents.answers["c-store-1"] = AgentError("the agent on 10.0.0.1 did not answer")
    shared_app.set_param_values("notes", SHARED, {"store_password": "x"})
    del agents.answers["c-store-1"]
    agents.calls.clear()
    results = shared_app.set_param_values("notes", SHARED, {"store_password": "x"})
    assert [(r.task, r.ok) for r in results] == [("store.1", True)]   # the api has it


def test_a_service_cannot_set_its_shared_parameter_alone(shared_app, agents):
    with pytest.raises(ParamsInvalid) as caught:
        shared_app.set_param_values("notes", "store", {"password": "x", "port": 1})
    assert caught.value.problems == [
        "store's password is the shared parameter 'store_password': set it once for every "
        "service taking it with: dragonball params set @shared store_password=..."]
    with pytest.raises(ParamsInvalid, match="shared parameter"):
        shared_app.set_params("notes", "api", [], unset=["store_password"])
    assert agents.calls == []


def test_an_unknown_shared_key_is_refused_naming_the_shared_ones(shared_app, agents):
    with pytest.raises(ParamsInvalid, match=r"@shared has no parameter 'greeting' \(it has: "
                                            r"spare, store_password\)"):
        shared_app.set_params("notes", SHARED, ["greeting=x"])
    assert agents.calls == []


def test_get_shared_says_who_takes_each_value(shared_app):
    shared_app.set_param_values("notes", SHARED, {"store_password": "s3cret"})
    found = answers.params(shared_app, "notes", SHARED)
    assert found["service"] == SHARED
    assert found["parameters"] == {
        "store_password": {"value": "********", "default": "", "type": "string",
                           "secret": True, "set": True,
                           "used_by": ["api.store_password", "store.password", "migrate.pw"]},
        "spare": {"value": 1, "default": 1, "type": "int", "secret": False, "set": False,
                  "used_by": []}}


def test_shared_values_kept_before_the_first_apply_are_what_its_tasks_start_with(
        tmp_path, control, agents):
    given = (SHARED_NOTES, "notes.app.yaml")
    assert control.set_param_values("notes", SHARED, {"store_password": "s3cret"},
                                    spec=given) == []
    assert agents.calls == [] and control.store.apps() == []
    with pytest.raises(ParamsInvalid):
        control.set_param_values("notes", "api", {"store_password": "x"}, spec=given)
    control.apply(spec_file(tmp_path, SHARED_NOTES))
    puts = {(c[3], c[1]): c[5] for c in agents.named("put_params")}
    assert puts[("api", "10.0.0.1")]["store_password"] == "s3cret"
    assert puts[("store", "10.0.0.1")]["password"] == "s3cret"
    assert puts[("migrate", "10.0.0.1")]["pw"] == "s3cret"


def test_removing_the_app_forgets_its_shared_values(shared_app):
    shared_app.set_param_values("notes", SHARED, {"store_password": "s3cret"})
    revision = shared_app.store.params("notes", SHARED)[0]
    shared_app.remove_app("notes")
    after, values = shared_app.store.params("notes", SHARED)
    assert values == {} and after > revision


def test_shared_is_a_name_for_parameters_only(shared_app):
    with pytest.raises(UnknownService):
        shared_app.logs("notes", SHARED)
    with pytest.raises(UnknownService):
        answers.known_service(shared_app, "notes", SHARED)
    answers.known_service(shared_app, "notes", SHARED, slots=False, jobs=True)

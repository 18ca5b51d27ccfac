"""Parameters through the Control over the orchestrator fakes: typed values checked before
anything is stored, stored with a growing revision, written on every server, delivered to
every running task with one result each (a refusal, an unreachable task, a server whose
agent fails), read back with defaults. Split from test_orchestrator_control (its fixtures)."""

from __future__ import annotations

import pytest

from orchestrator_fakes import task
from dragonball.agent_client import AgentError
from dragonball.app.errors import UnknownService
from dragonball.orchestrator.control import AppNotApplied, TaskResult
from dragonball.errors import InvalidInput
from dragonball.orchestrator.params import ParamsInvalid
from test_orchestrator_control import (NOTES, agents, applied, control, engine,  # noqa: F401
                                       registry, spec_file)


def test_set_params_with_a_wrong_type_stores_nothing(applied, engine, agents):
    with pytest.raises(ParamsInvalid) as caught:
        applied.set_params("notes", "api", ["greeting=Hi", "store_port=abc"])
    assert "store_port is an int: 'abc' is not a whole number" in caught.value.message
    assert applied.store.params("notes", "api") == (0, {})
    assert agents.calls == []
    assert engine.mutations() == []
    assert not [e for e in applied.store.store.events() if e["kind"] == "app.params"]


def test_set_params_of_an_unknown_service(applied, agents):
    with pytest.raises(UnknownService):
        applied.set_params("notes", "db", ["a=1"])
    assert agents.calls == []


def test_set_params_of_an_app_never_applied(control):
    with pytest.raises(AppNotApplied, match="the portal has no app 'blog'"):
        control.set_params("blog", "api", ["a=1"])


def test_set_params_delivers_the_full_params_in_force_to_each_running_task(applied, agents):
    results = applied.set_params("notes", "api", ["greeting=Hi", "store_port=6380"])
    in_force = {"store_host": "store", "store_port": 6380, "store_password": "",
                "store_sentinels": [], "store_master_name": "store", "store_wait_replicas": 1,
                "store_wait_timeout_ms": 1000, "listen_port": 8080, "greeting": "Hi"}
    execs = agents.named("exec")
    assert [(c[1], c[2]) for c in execs] == [("10.0.0.1", "c-api-1"), ("10.0.0.2", "c-api-2")]
    for _, _, _, action, body, replace in execs:
        assert (action, body, replace) == ("config_change", in_force, True)
    assert results == [TaskResult("api", "api.1", "node-a", True, "ok: 1 script(s) in 0.2 s"),
                       TaskResult("api", "api.2", "node-b", True, "ok: 1 script(s) in 0.2 s")]
    # kept on the portal, written on every server first, at a newer revision
    revision, values = applied.store.params("notes", "api")
    assert values == {"greeting": "Hi", "store_port": 6380}
    puts = agents.named("put_params")
    assert [(c[1], c[3], c[5]) for c in puts] == [("10.0.0.1", "api", in_force),
                                                  ("10.0.0.2", "api", in_force)]
    assert all(c[4] == revision for c in puts)
    assert agents.calls.index(puts[-1]) < agents.calls.index(execs[0])
    [event] = [e for e in applied.store.store.events() if e["kind"] == "app.params"]
    assert "Hi" not in str(event)   # names only: a value may be a secret


def test_revisions_grow_with_each_set(applied, agents):
    applied.set_params("notes", "api", ["greeting=a"])
    first = applied.store.params("notes", "api")[0]
    applied.set_params("notes", "api", [], unset=["greeting"])
    revision, values = applied.store.params("notes", "api")
    assert values == {} and revision > first
    last = agents.named("exec")[-1]
    assert last[4]["greeting"] == "Hello from the DragonBall notes API"   # the default


def test_a_task_that_refuses_or_cannot_be_reached_is_reported(applied, agents):
    agents.answers["c-api-1"] = {"exit_code": 1, "output": "", "report": {
        "ok": False, "scripts": [{"name": "2_reload.sh", "exit_status": 3,
                                  "output": "a\nb\nreload failed\n"}]}}
    agents.answers["c-api-2"] = AgentError("the agent on 10.0.0.2 did not answer")
    results = applied.set_params("notes", "api", ["greeting=Hi"])
    assert [(r.task, r.ok) for r in results] == [("api.1", False), ("api.2", False)]
    assert results[0].detail == "2_reload.sh exited 3: a | b | reload failed"
    assert results[1].detail == "the agent on 10.0.0.2 did not answer"


def test_a_task_on_an_unknown_node_has_no_container_yet(applied, engine, agents):
    engine.task_lists["notes_api"] = [task("notes_api", 1, "id-gone")]
    [result] = applied.set_params("notes", "api", ["greeting=Hi"])
    assert (result.ok, result.detail, result.server) == (False, "no container yet", "id-gone")
    assert agents.named("exec") == []


def test_a_server_whose_agent_fails_stops_set_params_before_delivery(applied, agents):
    agents.put_fails["10.0.0.2"] = AgentError("refused")
    with pytest.raises(AgentError, match="could not be written on 1 "
                                                          "server"):
        applied.set_params("notes", "api", ["greeting=Hi"])
    assert agents.named("exec") == []


def test_get_params_shows_values_defaults_and_what_was_set(applied):
    applied.set_params("notes", "api", ["greeting=Hi"])
    found = applied.get_params("notes", "api")
    assert found["parameters"]["greeting"] == {
        "value": "Hi", "default": "Hello from the DragonBall notes API", "type": "string",
        "secret": False, "set": True}
    assert found["parameters"]["store_password"]["secret"] is True
    assert found["parameters"]["store_port"]["set"] is False


def test_parameters_go_only_where_the_service_may_run(tmp_path, control, agents):
    """A secret is on the servers whose tasks need it: a service placed on node-b has its
    folder written there and taken off node-a; moved, it follows; a service without
    placement may run anywhere, so both servers hold it."""
    text = NOTES.replace("    depends_on: [store]",
                         "    depends_on: [store]\n    placement: {servers: [node-b]}")
    control.apply(spec_file(tmp_path, text))

    def where(kind: str, service: str) -> set:
        return {c[1] for c in agents.named(kind) if c[3] == service}
    assert where("put_params", "api") == {"10.0.0.2"}
    assert where("delete_params", "api") == {"10.0.0.1"}
    assert where("put_params", "store") == {"10.0.0.1", "10.0.0.2"}
    assert where("delete_params", "store") == set()
    agents.calls.clear()
    control.apply(spec_file(tmp_path, text.replace("servers: [node-b]", "servers: [node-a]")))
    assert where("put_params", "api") == {"10.0.0.1"}
    assert where("delete_params", "api") == {"10.0.0.2"}


def test_a_server_that_cannot_take_a_folder_off_does_not_stop_apply(tmp_path, control,
                                                                       agents):
    text = NOTES.replace("    depends_on: [store]",
                         "    depends_on: [store]\n    placement: {servers: [node-a]}")
    control.apply(spec_file(tmp_path, text))
    agents.calls.clear()
    original = agents.delete_params

    def refuse(address, app, service):
        raise AgentError(f"the agent on {address} did not answer")
    agents.delete_params = refuse
    try:
        control.apply(spec_file(tmp_path, text))     # node-b keeps it until next time
    finally:
        agents.delete_params = original
    assert {c[1] for c in agents.named("put_params") if c[3] == "api"} == {"10.0.0.1"}


def test_a_value_a_task_refuses_is_not_kept_anywhere(applied, agents):
    """Issue 15: every task refused a bad value and the command exited 1, but the portal
    kept it and wrote it on every server, so the next task to start crash-looped on it.
    Now the values before come back: stored, written at a newer revision, delivered."""
    applied.set_params("notes", "api", ["greeting=Good"])
    good_revision, _ = applied.store.params("notes", "api")
    agents.answers["c-api-2"] = {"exit_code": 1, "output": "", "report": {
        "ok": False, "scripts": [{"name": "2_reload.sh", "exit_status": 3,
                                  "output": "greeting too rude\n"}]}}
    calls_before = len(agents.calls)
    results = applied.set_params("notes", "api", ["greeting=Bad"])
    assert [(r.task, r.ok, r.refused) for r in results] == [("api.1", True, False),
                                                           ("api.2", False, True)]
    revision, values = applied.store.params("notes", "api")
    assert values == {"greeting": "Good"} and revision > good_revision
    later = agents.calls[calls_before:]
    puts = [c for c in later if c[0] == "put_params"]
    assert [c[5]["greeting"] for c in puts] == ["Bad", "Bad", "Good", "Good"]
    assert puts[-1][4] > puts[0][4]                 # the servers take the newer revision
    execs = [c for c in later if c[0] == "exec"]
    assert [c[4]["greeting"] for c in execs] == ["Bad", "Bad", "Good", "Good"]
    [event] = [e for e in applied.store.store.events() if e["kind"] == "app.params_refused"]
    assert event["detail"] == {"app": "notes", "service": "api", "changed": ["greeting"],
                               "refused_by": ["api.2"]}


def test_an_unreachable_task_is_no_refusal(applied, agents):
    """A task that could not be asked has not said no: the values stay, and it gets them
    when it starts again."""
    agents.answers["c-api-2"] = AgentError("the agent on 10.0.0.2 did not answer")
    results = applied.set_params("notes", "api", ["greeting=Hi"])
    assert [(r.ok, r.refused) for r in results] == [(True, False), (False, False)]
    assert applied.store.params("notes", "api")[1] == {"greeting": "Hi"}


def test_values_kept_before_the_first_apply_are_what_its_tasks_start_with(tmp_path, control,
                                                                           agents):
    """A secret set before the app exists (`--spec`): kept, nothing written or told; the
    first apply writes it on the servers before any task starts."""
    assert control.set_param_values("notes", "api", {"store_password": "s3cret"},
                                    spec=(NOTES, "notes.app.yaml")) == []
    assert agents.calls == [] and control.store.apps() == []
    with pytest.raises(ParamsInvalid):
        control.set_param_values("notes", "api", {"store_port": "abc"},
                                 spec=(NOTES, "notes.app.yaml"))
    with pytest.raises(InvalidInput, match="the spec of app 'notes', not 'wiki'"):
        control.set_param_values("wiki", "api", {"greeting": "x"},
                                 spec=(NOTES, "notes.app.yaml"))
    control.apply(spec_file(tmp_path))
    puts = [c for c in agents.named("put_params") if c[3] == "api"]
    assert puts and all(c[5]["store_password"] == "s3cret" for c in puts)

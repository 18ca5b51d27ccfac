"""Typed JSON values for parameters (the portal's REST API): each type checked as JSON
gives it, every problem listed, nothing changed unless all are right; and Control's
`set_param_values`, `logs` and `notifications` over the orchestrator fakes."""

from __future__ import annotations

import pytest

from dragonball.agent_client import AgentError
from dragonball.app.errors import UnknownService
from dragonball.orchestrator import params
from dragonball.orchestrator.control import AppNotApplied
from dragonball.orchestrator.params import ParamsInvalid
from test_orchestrator_control import (agents, applied, control, engine,  # noqa: F401
                                       registry)
from test_orchestrator_params import SERVICE, p


@pytest.mark.parametrize("kind, value", [
    ("string", "x"), ("string", ""), ("int", 8081), ("int", -1), ("float", 0.25),
    ("bool", True), ("bool", False), ("list", ["a", "b"]), ("list", [])])
def test_check_value_takes_the_right_json_type(kind, value):
    assert params.check_value("k", p(kind), value) == value


def test_a_whole_number_is_a_fine_float():
    value = params.check_value("ratio", p("float"), 2)
    assert value == 2.0 and isinstance(value, float)


@pytest.mark.parametrize("kind, value, message", [
    ("int", "8080", 'k is an int: got "8080"'),
    ("int", 1.5, "k is an int: got 1.5"),
    ("int", True, "k is an int: got true"),
    ("float", "0.5", 'k is a float: got "0.5"'),
    ("float", False, "k is a float: got false"),
    ("bool", "true", 'k is a bool: got "true"'),
    ("bool", 1, "k is a bool: got 1"),
    ("string", 5, "k is a string: got 5"),
    ("string", None, "k is a string: got null"),
    ("list", "a,b", 'k is a list: got "a,b"'),
    ("list", [{"a": 1}], "k is a list of strings, numbers or booleans")])
def test_check_value_refuses_other_types(kind, value, message):
    with pytest.raises(ValueError) as caught:
        params.check_value("k", p(kind), value)
    assert str(caught.value) == message


def test_edit_values_lists_every_problem_and_changes_nothing():
    current = {"greeting": "old"}
    with pytest.raises(ParamsInvalid) as caught:
        params.edit_values("api", SERVICE, current, {"greeting": "new", "port": "80",
                                                     "nope": 1}, unset=["also-nope"])
    assert caught.value.problems == [
        'port is an int: got "80"',
        "api has no parameter 'nope' (it has: debug, greeting, hosts, password, port, ratio)",
        "api has no parameter 'also-nope' (it has: debug, greeting, hosts, password, port, "
        "ratio)"]
    assert current == {"greeting": "old"}


def test_edit_values_sets_and_unsets():
    assert params.edit_values("api", SERVICE, {"greeting": "old", "port": 1},
                              {"debug": True, "ratio": 1}, unset=["port"]) == \
        {"greeting": "old", "debug": True, "ratio": 1.0}


def test_edit_keeps_listing_text_problems():
    with pytest.raises(ParamsInvalid) as caught:
        params.edit("api", SERVICE, {}, ["port", "port=x"])
    assert caught.value.problems == ["'port': give KEY=VALUE",
                                     "port is an int: 'x' is not a whole number"]


# -- Control -------------------------------------------------------------------------------
def test_set_param_values_stores_and_delivers(applied, agents):
    results = applied.set_param_values("notes", "api", {"store_port": 6380, "greeting": "Hi"})
    assert [(r.task, r.ok) for r in results] == [("api.1", True), ("api.2", True)]
    assert applied.store.params("notes", "api")[1] == {"store_port": 6380, "greeting": "Hi"}
    assert agents.named("exec")[0][4]["store_port"] == 6380


def test_set_param_values_of_a_wrong_type_stores_nothing(applied, engine, agents):
    with pytest.raises(ParamsInvalid) as caught:
        applied.set_param_values("notes", "api", {"store_port": "6380", "greeting": "Hi"})
    assert caught.value.problems == ['store_port is an int: got "6380"']
    assert applied.store.params("notes", "api") == (0, {})
    assert agents.calls == [] and engine.mutations() == []


def test_logs_of_each_running_task_and_why_one_cannot_be_read(applied, agents):
    agents.logs_of["c-api-1"] = ["started", "listening on 8080"]
    original = agents.logs

    def logs(address, container, tail=200):
        if container == "c-api-2":
            raise AgentError("the agent on 10.0.0.2 did not answer")
        return original(address, container, tail)
    agents.logs = logs
    assert applied.logs("notes", "api", tail=20) == [
        {"task": "api.1", "server": "node-a", "lines": ["started", "listening on 8080"],
         "error": None},
        {"task": "api.2", "server": "node-b", "lines": [],
         "error": "the agent on 10.0.0.2 did not answer"}]
    assert agents.named("logs") == [("logs", "10.0.0.1", "c-api-1", 20)]


def test_logs_of_an_unknown_service_or_app(applied, control):
    with pytest.raises(UnknownService):
        applied.logs("notes", "db")
    with pytest.raises(AppNotApplied):
        control.logs("blog", "api")


def test_notifications_rows(applied):
    applied.store.record_changes("notes", {}, [("web", {"service": "api", "event": "healthy"})])
    [row] = applied.notifications("notes")
    assert row["to"] == "web" and row["seq"] == 1 and row["delivered"] is None
    assert row["payload"] == {"service": "api", "event": "healthy", "seq": 1, "to": "web"}
    with pytest.raises(AppNotApplied):
        applied.notifications("blog")

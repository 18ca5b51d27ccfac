"""Taking an app away (orchestrator/removing.py, issue 15: an app could only be stopped, and
its services at 0/0, network, volumes, parameter folders and record stayed), over the
orchestrator's fakes."""

from __future__ import annotations

import dataclasses

import pytest

from dragonball.app.errors import AppNotApplied
from dragonball.swarm import SwarmError
from test_orchestrator_control import (NOTES, agents, applied, control, engine,  # noqa: F401
                                       registry, spec_file)


def test_remove_takes_everything_the_applies_made(applied, engine, agents):
    engine.update_node("id-a", labels={"dragonball.placement.notes.store-1": "true",
                                       "dragonball.placement.other.x": "true"})
    agents.held = {"10.0.0.1": ["notes_store-1_data", "other_data"], "10.0.0.2": []}
    agents.busy = {"10.0.0.1": ["notes_store-1_data"]}   # its task still going, once
    applied.set_params("notes", "api", ["greeting=Hi"])
    engine.calls.clear()
    done = applied.remove_app("notes")
    assert done["services"] == ["notes_api", "notes_store-1", "notes_web"]
    assert [c for c in engine.calls if c[0] == "remove_service"] == [
        ("remove_service", n) for n in done["services"]]
    assert ("remove_network", "notes_net") in engine.calls and done["network"]
    assert sorted(done["params"]) == sorted(f"{s}:{n}" for s in ("node-a", "node-b")
                                            for n in ("api", "store", "web"))
    assert done["volumes"] == ["node-a:notes_store-1_data"] and done["kept"] == []
    assert agents.held["10.0.0.1"] == ["other_data"]          # another app's: untouched
    node = engine.node("id-a")
    assert "dragonball.placement.notes.store-1" not in node.labels
    assert node.labels["dragonball.placement.other.x"] == "true"
    assert applied.store.apps() == [] and applied.store.pins("notes") == {}
    assert applied.store.params("notes", "api")[1] == {}      # the secret gone too
    [event] = [e for e in applied.store.store.events() if e["kind"] == "app.removed"]
    assert event["detail"]["volumes"] == 1 and done["problems"] == []
    with pytest.raises(AppNotApplied):
        applied.remove_app("notes")


def test_keep_data_leaves_the_volumes_and_says_where(applied, agents):
    agents.held = {"10.0.0.1": ["notes_store-1_data"], "10.0.0.2": []}
    done = applied.remove_app("notes", keep_data=True)
    assert done["volumes"] == [] and done["kept"] == ["node-a:notes_store-1_data"]
    assert agents.held["10.0.0.1"] == ["notes_store-1_data"]
    assert not agents.named("delete_volume")


def test_what_could_not_go_is_said_and_the_rest_still_goes(applied, engine, agents):
    def busy(name):
        engine.calls.append(("remove_network", name))
        raise SwarmError("network notes_net has active endpoints")
    engine.remove_network = busy
    done = applied.remove_app("notes")
    assert done["network"] is False
    assert any("the network notes_net stays" in p for p in done["problems"])
    assert applied.store.apps() == []      # the record goes: nothing of the app runs


def test_a_server_that_is_down_keeps_its_folders_and_says_so(applied, engine, agents):
    """A power cut on one server during the removal: the rest goes, and the answer names
    what stays on it (its parameter folders and volumes) until it is cleaned by hand."""
    engine._nodes["id-b"] = dataclasses.replace(engine._nodes["id-b"], ready=False)
    agents.held = {"10.0.0.1": ["notes_store-1_data"], "10.0.0.2": ["notes_api_x"]}
    done = applied.remove_app("notes")
    assert any(p.startswith("node-b down") for p in done["problems"]), done["problems"]
    assert not [c for c in agents.calls if c[1] == "10.0.0.2"]      # nothing asked of it
    assert done["volumes"] == ["node-a:notes_store-1_data"]
    assert agents.held["10.0.0.2"] == ["notes_api_x"] and applied.store.apps() == []

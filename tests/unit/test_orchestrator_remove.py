"""Taking an app away (orchestrator/removing.py, issue 15: an app could only be stopped, and
its services at 0/0, network, volumes, parameter folders and record stayed), over the
orchestrator's fakes. Its volumes are kept unless its name is typed again (`purges`)."""

from __future__ import annotations

import dataclasses

import pytest

from dragonball.agent_client import AgentError
from dragonball.app.errors import AppNotApplied
from dragonball.errors import Category
from dragonball.orchestrator.removing import PurgeRefused, purges
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
    done = applied.remove_app("notes", purge_data=True)
    assert done["services"] == ["notes_api", "notes_store-1", "notes_web"]
    assert [c for c in engine.calls if c[0] == "remove_service"] == [
        ("remove_service", n) for n in done["services"]]
    assert ("remove_network", "notes_net") in engine.calls and done["network"]
    assert sorted(done["params"]) == sorted(f"{s}:{n}" for s in ("node-a", "node-b")
                                            for n in ("api", "store", "web"))
    assert done["volumes"] == [{"server": "node-a", "name": "notes_store-1_data"}]
    assert done["kept"] == [] and done["purge_data"] is True
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


def test_the_data_is_kept_by_default_and_each_volume_named_with_its_server(applied, agents):
    agents.held = {"10.0.0.1": ["notes_store-1_data", "other_data"],
                   "10.0.0.2": ["notes_api_cache"]}
    done = applied.remove_app("notes")
    assert done["volumes"] == [] and done["purge_data"] is False
    assert done["kept"] == [{"server": "node-a", "name": "notes_store-1_data"},
                            {"server": "node-b", "name": "notes_api_cache"}]
    assert agents.held["10.0.0.1"] == ["notes_store-1_data", "other_data"]
    assert not agents.named("delete_volume") and applied.store.apps() == []
    [event] = [e for e in applied.store.store.events() if e["kind"] == "app.removed"]
    assert event["detail"]["kept"] == 2 and event["detail"]["purge_data"] is False


def test_a_server_whose_volumes_cannot_be_listed_is_named_when_data_is_kept(
        applied, agents):
    agents.held = {"10.0.0.1": ["notes_store-1_data"], "10.0.0.2": []}
    listed = agents.volumes

    def silent(address, sizes=False):
        if address == "10.0.0.2":
            raise AgentError("cannot reach the agent at 10.0.0.2:9443: refused")
        return listed(address, sizes)
    agents.volumes = silent
    done = applied.remove_app("notes")
    assert done["kept"] == [{"server": "node-a", "name": "notes_store-1_data"}]
    assert any("volumes on node-b could not be listed" in p for p in done["problems"])


@pytest.mark.parametrize("typed, goes", [(None, False), ("notes", True)])
def test_the_data_goes_only_with_the_apps_name_typed_again(typed, goes):
    assert purges("notes", typed) is goes


@pytest.mark.parametrize("typed", ["", "note", "Notes", "notes ", "wiki"])
def test_another_name_is_refused_saying_how_to_type_it(typed):
    with pytest.raises(PurgeRefused) as caught:
        purges("notes", typed)
    assert caught.value.category is Category.INVALID
    assert "nothing was changed" in caught.value.message and repr(typed) in caught.value.message
    assert "--purge-data notes" in caught.value.hint


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
    done = applied.remove_app("notes", purge_data=True)
    assert any(p.startswith("node-b down") for p in done["problems"]), done["problems"]
    assert not [c for c in agents.calls if c[1] == "10.0.0.2"]      # nothing asked of it
    assert done["volumes"] == [{"server": "node-a", "name": "notes_store-1_data"}]
    assert agents.held["10.0.0.2"] == ["notes_api_x"] and applied.store.apps() == []


def test_it_returns_once_no_server_holds_a_copy_of_the_network(applied, agents):
    """Swarm lets the network go once the tasks are shut down; a server keeps its copy until
    the task's container there is removed (a backend's drain: seconds later). The command
    returns once no server lists it, so "the network went" is true on every server."""
    agents.net_copies = {"10.0.0.2": {"notes_net": 3, "other_net": None}}
    done = applied.remove_app("notes")
    assert done["network"] is True and done["problems"] == [], done
    assert agents.named("networks").count(("networks", "10.0.0.2")) == 4
    assert agents.net_copies["10.0.0.2"] == {"other_net": None}    # another app's: its own


def test_a_copy_that_stays_or_a_server_that_cannot_say_is_named(applied, agents):
    agents.net_copies = {"10.0.0.1": {"notes_net": None}}
    agents.down = {"10.0.0.2"}
    done = applied.remove_app("notes")
    assert done["network"] is False
    stays = [p for p in done["problems"] if p.startswith("the network notes_net stays")]
    assert stays == ["the network notes_net stays on node-a: a copy is still there (1 "
                     "container(s) attached)",
                     "the network notes_net stays on node-b: its agent did not say whether "
                     "it holds it: cannot reach the agent at 10.0.0.2:9443: refused"], stays
    assert applied.store.apps() == []      # the rest still went

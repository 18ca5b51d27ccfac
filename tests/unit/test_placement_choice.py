"""Deploy's placement choice (issue 18, DESIGN point 9), pure: defaults from the spec or spread
over the servers present, answers checked on the spot, the answers file, the placed spec."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from dragonball.app import placement_choice as choice
from dragonball.app import spec as app_spec

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEXT = (ROOT / "examples" / "notes.app.yaml").read_text()
NOTES = app_spec.load(TEXT, "notes.app.yaml")


def test_pinned_services_are_spread_and_the_others_run_anywhere():
    chosen = choice.defaults(NOTES, ["s1", "s2", "s3"])
    assert chosen == {"web": ["s1"], "api": ["s1", "s2", "s3"], "store": ["s2"]}


def test_one_server_takes_everything_and_none_leaves_pinned_ones_unplaced():
    assert choice.defaults(NOTES, ["s1"]) == {"web": ["s1"], "api": ["s1"], "store": ["s1"]}
    assert choice.defaults(NOTES, []) == {"web": [], "api": [], "store": []}


def test_the_specs_own_placement_is_the_default_when_its_servers_are_here():
    data = yaml.safe_load(TEXT)
    data["services"]["store"]["placement"] = {"servers": ["s3"]}
    data["services"]["web"]["placement"] = {"servers": ["gone"]}
    spec = app_spec.load(yaml.safe_dump(data), "notes.app.yaml")
    chosen = choice.defaults(spec, ["s1", "s2", "s3"])
    assert chosen["store"] == ["s3"] and chosen["web"] == ["s1"]


def test_a_typed_answer_is_checked_on_the_spot():
    check = choice.validator(["s1", "s2"])
    assert check("s1, s2") is True and check("s2 s1 s2") is True
    assert check("s9") == "s9 is not in the cluster; its servers: s1, s2"
    assert check("s1,s8,s9").startswith("s8, s9 are not in the cluster")
    assert "name at least one server" in check("  ")
    assert choice.parse("s2, s1 s2") == ["s2", "s1"]


def test_an_answers_file_is_read_and_every_problem_listed():
    chosen, when = choice.read_answers({"web": ["s1"], "store": "s2", "when_ready": 3}, NOTES)
    assert chosen == {"web": ["s1"], "store": ["s2"]} and when == 3
    with pytest.raises(choice.PlacementInvalid) as refused:
        choice.read_answers({"db": ["s1"], "web": 5, "api": [], "when_ready": "all"}, NOTES)
    assert len(refused.value.problems) == 4
    assert "db: not a service of app notes" in refused.value.message
    with pytest.raises(choice.PlacementInvalid, match="mapping"):
        choice.read_answers(["web"], NOTES)


def test_answers_naming_servers_not_in_the_cluster_are_refused_with_those_that_are():
    choice.check_servers({"web": ["s1"]}, ["s1", "s2"])
    with pytest.raises(choice.PlacementInvalid, match="store: s7 is not in the cluster; its "
                                                      "servers: s1, s2") as refused:
        choice.check_servers({"web": ["s1"], "store": ["s7"]}, ["s1", "s2"])
    assert refused.value.exit_status == 2 and refused.value.hint


def test_the_placed_spec_keeps_everything_else_and_is_a_valid_spec():
    data = yaml.safe_load(TEXT)
    data["services"]["web"]["placement"] = {"labels": {"zone": "front"}}
    placed = choice.placed(data, {"web": ["s1"], "store": ["s2"]})
    assert placed["services"]["web"]["placement"] == {"labels": {"zone": "front"},
                                                      "servers": ["s1"]}
    assert "placement" not in data["services"]["store"]            # the input is not changed
    spec = app_spec.load(yaml.safe_dump(placed, sort_keys=False), "placed.app.yaml")
    assert spec.services["store"].placement.servers == ["s2"]
    assert choice.summary(spec, {"web": ["s1"]}) == [("web", "1", "s1"), ("api", "2", "any"),
                                                     ("store", "1", "any")]

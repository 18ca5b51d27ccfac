"""The pure core of the application layer: the graph, plans of a subtree, the schema file."""

from __future__ import annotations

import json
import pathlib

import pytest

from dragonball.app import graph
from dragonball.app.errors import AppSpecInvalid, CycleError, UnknownService
from dragonball.app.model import json_schema
from dragonball.app.plan import Running, plan, start_plan, stop_plan
from dragonball.app.spec import load

REPO = pathlib.Path(__file__).parents[2]
DIAMOND = """app: d
services:
  front: {kind: service, image: d/front:1, backends: [shop, blog]}
  shop: {kind: service, image: d/shop:1, backends: [db]}
  blog: {kind: service, image: d/blog:1, backends: [db, cache]}
  db: {kind: backend, image: d/db:1}
  cache: {kind: backend, image: d/cache:1}
"""


def names(waves) -> list:
    return [[step.service for step in wave] for wave in waves]


def test_waves_put_siblings_together_leaves_first():
    assert graph.waves({"a": ["b", "c"], "b": ["d"], "c": [], "d": []}) == \
        [["c", "d"], ["b"], ["a"]]


def test_waves_refuse_a_cycle_with_its_path():
    with pytest.raises(CycleError) as e:
        graph.waves({"a": ["b"], "b": ["c"], "c": ["a"], "x": []})
    assert e.value.path == ["a", "b", "c", "a"]
    assert "a -> b -> c -> a" in str(e.value)


def test_cycles_are_reported_once_whatever_the_entry_point():
    assert graph.find_cycles({"b": ["a"], "a": ["b"], "c": ["a"]}) == [["a", "b", "a"]]


def test_the_schema_file_is_up_to_date():
    written = json.loads((REPO / "docs" / "app-spec.schema.json").read_text())
    assert written == json_schema(), \
        "run: .venv/bin/python -m dragonball.app.model docs/app-spec.schema.json"


def test_the_example_is_valid_and_its_secrets_are_marked():
    spec = load((REPO / "examples" / "notes.app.yaml").read_text(), "notes.app.yaml")
    assert spec.services["store"].parameters["password"].secret
    assert spec.services["store"].storage
    assert spec.services["api"].replicas == 2
    defaults = json.loads((REPO / "examples/api/api/module/defaults.json").read_text())
    assert spec.services["api"].parameter_values() == defaults


def test_load_refuses_with_every_problem():
    with pytest.raises(AppSpecInvalid) as e:
        load("app: x\nservices:\n  a: {kind: service, image: i, backends: [b, c]}\n", "x.yaml")
    assert len(e.value.problems) == 2
    assert "x.yaml:3" in str(e.value)


def test_stop_plan_goes_roots_first_and_keeps_what_others_need():
    spec = load(DIAMOND, "d.yaml")
    stop = stop_plan(spec, "shop")
    assert names(stop.stop_waves) == [["shop"]]
    assert stop.notes == ("db keeps running: still needed by blog",
                          "shop stops while still needed by front")
    assert names(stop_plan(spec, "front").stop_waves) == \
        [["front"], ["blog", "shop"], ["cache", "db"]]


def test_start_plan_starts_a_subtree_leaves_first_and_keeps_what_runs():
    spec = load(DIAMOND, "d.yaml")
    running = {"db": Running("d/db:1", {}, 1)}
    start = start_plan(spec, "blog", running)
    assert names(start.start_waves) == [["cache", "db"], ["blog"]]
    assert [s.action for s in start.start_waves[0]] == ["start", "keep"]


def test_a_subtree_plan_names_an_unknown_service():
    with pytest.raises(UnknownService, match="no service 'shopp'"):
        stop_plan(load(DIAMOND, "d.yaml"), "shopp")


def test_secret_values_never_appear_in_a_plan():
    spec = load("app: s\nservices:\n  db:\n    kind: backend\n    image: s/db:1\n"
                "    parameters:\n      password: {type: string, default: hunter2, "
                "secret: true}\n", "s.yaml")
    changed = plan(spec, {"db": Running("s/db:1", {"password": "old-secret"}, 1)})
    text = json.dumps(changed.to_dict())
    assert "hunter2" not in text and "old-secret" not in text
    assert changed.start_waves[0][0].reasons == ("parameters password",)

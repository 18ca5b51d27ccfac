"""Shared parameters in the app spec (pure): declared once under `shared:`, taken with
`{shared: NAME}`; a valid spec comes back resolved (each taker's entry the declaration it
names), checks find what the golden case `invalid-shared` lists without false alarms from a
broken neighbour, an unused declaration is a note of the plan, the schema says both forms."""

from __future__ import annotations

import pathlib

from dragonball.app.model import (SHARED, Parameter, SharedParameter, SharedParameters,
                                  SharedReference, json_schema)
from dragonball.app.plan import plan
from dragonball.app.spec import check, load

CASE = pathlib.Path(__file__).parent / "data" / "app" / "shared" / "spec.yaml"
SPEC = """app: wiki
shared:
  db_password: {type: string, default: "", secret: true}
services:
  wiki:
    kind: backend
    image: wiki/app:1
    parameters:
      db_password: {shared: db_password}
      site: {type: string, default: Wiki}
  db:
    kind: backend
    image: wiki/db:1
    parameters:
      root_password: {shared: db_password}
"""


def problems_of(text: str) -> list[tuple[int, str, str]]:
    spec, found = check(text, "spec.yaml")
    assert spec is None
    return [(p.line, p.path, p.message) for p in found]


def test_a_valid_spec_comes_back_resolved():
    spec = load(SPEC, "spec.yaml")
    taken = spec.services["db"].parameters["root_password"]
    assert isinstance(taken, SharedParameter) and isinstance(taken, Parameter)
    assert (taken.type, taken.default, taken.secret, taken.shared) == \
        ("string", "", True, "db_password")
    assert type(spec.services["wiki"].parameters["site"]) is Parameter
    assert spec.services["db"].parameter_values() == {"root_password": ""}


def test_takers_are_listed_in_the_spec_order_with_their_own_keys():
    spec = load(CASE.read_text(), "spec.yaml")
    assert spec.takers() == {
        "db_password": [("wiki", "db_password"), ("db", "root_password"),
                        ("install", "db_password")],
        "smtp_password": []}


def test_the_holder_of_shared_is_the_shared_declarations():
    spec = load(SPEC, "spec.yaml")
    holder = spec.holder(SHARED)
    assert isinstance(holder, SharedParameters)
    assert list(holder.parameters) == ["db_password"]
    assert spec.holder("wiki") is spec.services["wiki"]


def test_an_unused_shared_parameter_is_a_note_of_the_plan_not_a_problem():
    spec = load(CASE.read_text(), "spec.yaml")
    assert plan(spec).notes == (
        "shared parameter 'smtp_password' is taken by no service or job: take it with "
        "parameters: {KEY: {shared: smtp_password}}, or remove it from shared:",)
    assert plan(load(SPEC, "spec.yaml")).notes == ()


def test_a_reference_to_a_declaration_with_a_broken_shape_is_not_unknown():
    text = SPEC.replace('secret: true}', 'secret: true, secrt: 1}')
    assert problems_of(text) == [(3, "shared.db_password.secrt", "unknown key 'secrt'")]


def test_references_are_checked_when_a_service_is_broken_elsewhere():
    text = SPEC.replace("    image: wiki/db:1", "    image: wiki/db:1\n    replicas: many") \
        .replace("root_password: {shared: db_password}", "root_password: {shared: db_pw}")
    found = problems_of(text)
    assert [(line, path) for line, path, _ in found] == [
        (14, "services.db.replicas"), (16, "services.db.parameters.root_password.shared")]
    assert found[1][2] == "unknown shared parameter 'db_pw'"


def test_without_any_shared_declaration_the_hint_says_how_to_declare_one():
    text = SPEC.replace('shared:\n  db_password: {type: string, default: "", secret: true}\n',
                        "")
    spec, found = check(text, "spec.yaml")
    assert [p.hint for p in found] == [
        'declare it once at the top of the spec: shared: {db_password: {type: string, '
        'default: ""}}'] * 2


def test_a_parameter_that_is_no_mapping_is_reported_at_its_key():
    text = SPEC.replace("site: {type: string, default: Wiki}", "site: 5")
    assert problems_of(text) == [(10, "services.wiki.parameters.site",
                                  "input should be a valid dictionary or instance of "
                                  "Parameter: got 5")]


def test_the_schema_gives_both_forms_of_a_parameter_and_the_shared_section():
    schema = json_schema()
    service = schema["$defs"]["ServiceSpec"]["properties"]["parameters"]
    assert service["additionalProperties"]["oneOf"] == [
        {"$ref": "#/$defs/Parameter"}, {"$ref": "#/$defs/SharedReference"}]
    assert schema["properties"]["shared"]["additionalProperties"] == \
        {"$ref": "#/$defs/Parameter"}
    assert schema["$defs"]["SharedReference"]["required"] == ["shared"]
    assert "SharedParameter" not in schema["$defs"]    # never read from a spec
    assert SharedReference.model_fields.keys() == {"shared", "type"}

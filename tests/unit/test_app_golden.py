"""App specs as data: each tests/unit/data/app/<case>/ gives its plan or its problems.

A case is ``spec.yaml``, an optional ``observed.json`` (images, servers, labels,
running: docs/app-spec.md) and ``expected.json``: ``{"plan": ...}`` for a valid spec,
``{"problems": [...]}`` (line, path, message, hint) for an invalid one. After a
deliberate change, rewrite the expectations and review the diff:

    DRAGONBALL_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_app_golden.py
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from dragonball.app import observed as observed_file
from dragonball.app.model import Observed
from dragonball.app.plan import plan
from dragonball.app.spec import check

CASES_DIR = pathlib.Path(__file__).parent / "data" / "app"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "spec.yaml").is_file())
UPDATE = os.environ.get("DRAGONBALL_UPDATE_GOLDEN") == "1"
REPO = pathlib.Path(__file__).parents[2]


def run_case(name: str) -> dict:
    case = CASES_DIR / name
    observed, running = Observed(), {}
    if (case / "observed.json").is_file():
        observed, running = observed_file.read(str(case / "observed.json"))
    spec, problems = check((case / "spec.yaml").read_text(), "spec.yaml", observed)
    if problems:
        return {"problems": [p.to_dict() for p in problems]}
    return {"plan": plan(spec, running).to_dict()}


def test_there_are_cases():
    assert {"notes", "tree-20-depth-4", "diamond", "changes", "invalid-cycle",
            "invalid-unknown-backend", "invalid-names", "invalid-world",
            "invalid-fields", "invalid-backend-under-backend", "invalid-alias-bomb",
            "invalid-tags", "invalid-deep", "invalid-nul", "invalid-limits",
            "invalid-host-ports", "shared", "invalid-shared"} <= set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_case_gives_the_expected_result(name):
    found = run_case(name)
    expected_path = CASES_DIR / name / "expected.json"
    if UPDATE:
        expected_path.write_text(json.dumps(found, indent=2) + "\n")
    expected = json.loads(expected_path.read_text())
    assert ("problems" in found) == name.startswith("invalid-"), found
    assert found == expected


@pytest.mark.parametrize("name", [c for c in CASES if c.startswith("invalid-")])
def test_every_problem_has_a_line_and_a_hint(name):
    for problem in run_case(name)["problems"]:
        assert problem["line"] and problem["hint"], problem


def test_the_notes_case_is_the_example():
    assert (CASES_DIR / "notes" / "spec.yaml").read_text() == \
        (REPO / "examples" / "notes.app.yaml").read_text()


def _waves(name: str) -> list:
    return [[s["service"] for s in wave] for wave in run_case(name)["plan"]["start_waves"]]


def test_notes_starts_store_then_api_then_web():
    assert _waves("notes") == [["store"], ["api"], ["web"]]


def test_tree_has_20_services_in_4_waves_leaves_first():
    waves = _waves("tree-20-depth-4")
    assert [len(w) for w in waves] == [10, 6, 3, 1]
    assert waves[-1] == ["web"]


def test_diamond_starts_the_shared_backend_once_before_both():
    assert _waves("diamond") == [["db"], ["blog", "shop"], ["front"]]

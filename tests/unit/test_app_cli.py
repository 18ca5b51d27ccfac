"""`dragonball plan`: waves of the example, JSON, an observed file, exit 2 with every problem."""

from __future__ import annotations

import json
import pathlib

from dragonball.cli import main

REPO = pathlib.Path(__file__).parents[2]
NOTES = str(REPO / "examples" / "notes.app.yaml")
DATA = REPO / "tests" / "unit" / "data" / "app"


def test_plan_prints_the_notes_waves_in_order(capsys):
    assert main(["plan", NOTES]) == 0
    out = capsys.readouterr().out
    assert out.index("wave 1: start store") < out.index("wave 2: start api") \
        < out.index("wave 3: start web")
    assert "3 to start" in out


def test_plan_json_has_the_documented_shape(capsys):
    assert main(["plan", NOTES, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert set(plan) == {"schema", "app", "summary", "stop_waves", "start_waves", "notes"}
    assert [[s["service"] for s in w] for w in plan["start_waves"]] == \
        [["store"], ["api"], ["web"]]


def test_plan_against_an_observed_file(capsys):
    case = DATA / "changes"
    assert main(["plan", str(case / "spec.yaml"), "--observed",
                 str(case / "observed.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["stop"] == 2


def test_an_invalid_spec_exits_2_with_every_problem(capsys):
    assert main(["plan", str(DATA / "invalid-world" / "spec.yaml"), "--observed",
                 str(DATA / "invalid-world" / "observed.json"), "--json"]) == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert len(problems) == 5 and all(p["line"] for p in problems)


def test_an_invalid_spec_as_a_table(capsys):
    assert main(["plan", str(DATA / "invalid-cycle" / "spec.yaml")]) == 2
    assert "a -> b -> c -> a" in capsys.readouterr().out


def test_a_missing_spec_exits_2(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "none.yaml")]) == 2
    assert "cannot read it" in capsys.readouterr().out

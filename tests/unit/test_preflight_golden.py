"""Preflight as data: each captured host in tests/unit/data/hosts/<case>/ gives its expected checks.

A case is ``root/`` (the files probe reads), ``case.json`` (role, paths, portal,
cluster facts and the recorded system answers) and ``expected.json`` (the checks).
After a deliberate change of a rule, rewrite the expectations and review the diff:

    DRAGONBALL_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_preflight_golden.py
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from dragonball.installer.preflight import run
from dragonball.installer.preflight.system import RecordedSystem

HOSTS = pathlib.Path(__file__).parent / "data" / "hosts"
MANIFEST = json.loads((HOSTS / "manifest.json").read_text())
CASES = sorted(p.name for p in HOSTS.iterdir() if (p / "case.json").is_file())
UPDATE = os.environ.get("DRAGONBALL_UPDATE_GOLDEN") == "1"


def load_case(name: str) -> dict:
    return json.loads((HOSTS / name / "case.json").read_text())


def run_case(name: str, root: pathlib.Path | None = None):
    case = load_case(name)
    return run(RecordedSystem(case["system"]), MANIFEST, case["role"], case["paths"],
               root=str(root or HOSTS / name / "root"), portal=case.get("portal"),
               cluster=case.get("cluster"))


def test_there_are_cases():
    assert {"debian12-vm", "container-minimal", "centos7-old", "debian12-docker19",
            "rocky9-selinux-firewalld"} <= set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_case_gives_the_expected_checks(name):
    found = [c.to_dict() for c in run_case(name).checks]
    expected_path = HOSTS / name / "expected.json"
    if UPDATE:
        expected_path.write_text(json.dumps({"checks": found}, indent=2) + "\n")
    expected = json.loads(expected_path.read_text())["checks"]
    assert [c["name"] for c in found] == [c["name"] for c in expected]
    for got, want in zip(found, expected):
        assert got == want, f"{name}: check {want['name']}"


@pytest.mark.parametrize("name", CASES)
def test_every_failure_and_warning_says_how_to_fix_it(name):
    for check in run_case(name).checks:
        if check.status in ("fail", "warn"):
            assert check.hint, f"{name}: {check.name} has no hint"


@pytest.mark.parametrize("name", CASES)
def test_facts_are_json(name):
    facts = run_case(name).facts.to_dict()
    assert json.loads(json.dumps(facts)) == facts

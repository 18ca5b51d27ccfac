"""Jobs in the app spec, pure: start waves through them, stop plans through them (a job never
stops, and keeps nothing running), their run/skip decision shown as given, the schema.
The golden cases `jobs` and `invalid-jobs` (tests/unit/data/app/) hold the spec checks."""

from __future__ import annotations

import io
import pathlib

import pytest
from rich.console import Console

from dragonball.app import plan as plan_mod
from dragonball.app import render
from dragonball.app.errors import UnknownService
from dragonball.app.model import json_schema
from dragonball.app.spec import load

SPEC = load((pathlib.Path(__file__).parent / "data" / "app" / "jobs" / "spec.yaml")
            .read_text(), "spec.yaml")


def waves(plan) -> list:
    return [[s.service for s in wave] for wave in plan.start_waves]


def stops(plan) -> list:
    return [[s.service for s in wave] for wave in plan.stop_waves]


def test_jobs_are_nodes_of_the_start_waves():
    assert waves(plan_mod.plan(SPEC)) == [["cache", "db"], ["install"], ["upgrade"], ["wiki"],
                                          ["web"]]


def test_a_service_start_runs_the_jobs_it_needs_and_what_they_need():
    assert waves(plan_mod.start_plan(SPEC, "wiki")) == [["cache", "db"], ["install"],
                                                        ["upgrade"], ["wiki"]]


def test_a_stop_goes_through_jobs_to_what_they_depend_on_and_stops_no_job():
    plan = plan_mod.stop_plan(SPEC, "web")
    assert stops(plan) == [["web"], ["wiki"], ["cache", "db"]]
    assert plan.notes == ()


def test_what_a_service_needs_through_a_job_keeps_running():
    """search needs db through its reindex job: stopping the web keeps db running."""
    spec = SPEC.model_copy(update={
        "services": {**SPEC.services, "search": SPEC.services["cache"].model_copy(
            update={"depends_on": ["reindex"]})},
        "jobs": {**SPEC.jobs, "reindex": SPEC.jobs["install"]}})
    plan = plan_mod.stop_plan(spec, "web")
    assert stops(plan) == [["web"], ["wiki"], ["cache"]]
    assert plan.notes == ("db keeps running: still needed by search",)


def test_the_services_graph_reaches_through_jobs():
    assert plan_mod.through_jobs(SPEC)["wiki"] == ["db", "cache"]
    assert plan_mod.dependencies(SPEC)["wiki"] == ["db", "cache", "upgrade"]


def test_a_job_is_no_service_to_start_or_stop():
    with pytest.raises(UnknownService):
        plan_mod.stop_plan(SPEC, "install")
    with pytest.raises(UnknownService):
        plan_mod.start_plan(SPEC, "upgrade")


def test_the_decision_on_each_job_is_shown_with_its_reasons():
    plan = plan_mod.plan(SPEC, jobs={"install": ("skip", ("unchanged: not run",)),
                                     "upgrade": ("run", ("image changed",))})
    found = {s.service: (s.kind, s.action, s.reasons) for w in plan.start_waves for s in w}
    assert found["install"] == ("job", "skip", ("unchanged: not run",))
    assert found["upgrade"] == ("job", "run", ("image changed",))
    assert plan.to_dict()["summary"] == {"start": 4, "change": 0, "keep": 0, "stop": 0,
                                         "run": 1, "skip": 1}
    assert plan_mod.Plan.from_dict(plan.to_dict()) == plan


def test_the_printed_plan_says_which_jobs_run_and_why():
    out = io.StringIO()
    plan = plan_mod.plan(SPEC, jobs={"install": ("skip", ("unchanged: not run",))})
    render.print_plan(plan, Console(file=out, width=200))
    text = out.getvalue()
    assert "unchanged: not run" in text and "job" in text
    assert render.summary(plan).startswith("wiki: 4 to start, 0 to change, 0 unchanged, 0 "
                                           "to stop, 1 job(s) to run, 1 skipped")
    assert "job" not in render.summary(plan_mod.plan(SPEC.model_copy(update={"jobs": {}})))


def test_the_schema_has_jobs_named_as_services_are():
    schema = json_schema()
    assert schema["properties"]["jobs"]["propertyNames"] == \
        schema["properties"]["services"]["propertyNames"]
    job = schema["$defs"]["JobSpec"]
    assert job["required"] == ["image"] and job["additionalProperties"] is False
    assert job["properties"]["timeout"]["default"] == 600

"""One-shot jobs through Control over fakes of the engine, the agents and the registry, with
a real store: a job runs after what it depends on and before what depends on it, is run
again only when its image, definition or parameters change, fails an apply as a service
that does not become healthy does (with its log), keeps its log, and goes with its app."""

from __future__ import annotations

import pathlib

import pytest

from orchestrator_fakes import FakeAgents, FakeRegistry, FakeSwarm, image_id_of
from dragonball.orchestrator import jobs as jobs_mod
from dragonball.orchestrator.control import Control
from dragonball.orchestrator.rollout import RolloutFailed
from dragonball.orchestrator.state import AppStore
from dragonball.portal.store import Store

REPO = pathlib.Path(__file__).parents[2]
NOTES = (REPO / "examples" / "notes.app.yaml").read_text()
REGISTRY = "10.0.0.5:5000"
DIGESTS = {f"notes/{m}:0.1.0": f"sha256:{m[0] * 64}" for m in ("web", "api", "store")}
#: notes with a schema job between the store and the api
JOBS = NOTES.replace("    depends_on: [store]", "    depends_on: [store, migrate]") + """
jobs:
  migrate:
    image: notes/api:0.1.0
    command: [/opt/dragon_ball/service/api/module/migrate.sh, --expand-only]
    depends_on: [store]
    timeout: 120
    parameters:
      store_password: {type: string, default: "", secret: true}
"""


@pytest.fixture
def engine():
    return FakeSwarm()


@pytest.fixture
def agents():
    return FakeAgents()


@pytest.fixture
def registry():
    return FakeRegistry(DIGESTS)


@pytest.fixture
def control(tmp_path, engine, agents, registry):
    store = Store.open(str(tmp_path / "portal" / "portal.db"))
    now = [0.0]  # a clock that moves only when the control sleeps (polls, agent retries)
    made = Control(engine, AppStore(store), agents, registry, REGISTRY, wait_s=5.0,
                   clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    yield made
    store.close()


def apply(control, tmp_path, text: str = JOBS):
    path = tmp_path / "notes.app.yaml"
    path.write_text(text)
    return control.apply(str(path))


def steps(plan) -> dict:
    return {s.service: s for wave in plan.start_waves for s in wave}


def made(engine) -> list:
    return [c[1] for c in engine.calls if c[0] == "create_service"]


def events(control, kind: str) -> list:
    return [e for e in control.store.store.events() if e["kind"] == kind]


def test_a_job_runs_after_what_it_depends_on_and_before_what_depends_on_it(
        tmp_path, control, engine, agents):
    progress = []
    control.progress = lambda *event: progress.append(event[:2])
    plan = apply(control, tmp_path)
    assert [[s.service for s in wave] for wave in plan.start_waves] == [
        ["store-1"], ["migrate"], ["api"], ["web"]]
    assert (steps(plan)["migrate"].action, steps(plan)["migrate"].reasons) == (
        "run", ("never run",))
    assert plan.count("run") == 1
    assert made(engine) == ["notes_store-1", "notes_migrate", "notes_api", "notes_web"]
    assert ("migrate", "running") in progress and ("migrate", "done") in progress
    assert progress.index(("migrate", "done")) < progress.index(("api", "starting"))
    job = engine.by_name["notes_migrate"]
    assert job["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    assert job["TaskTemplate"]["ContainerSpec"]["Image"] == image_id_of(f"sha256:{'a' * 64}")
    # its parameters are written where it may run, as a service's are
    assert {c[1] for c in agents.named("put_params") if c[3] == "migrate"} == {
        "10.0.0.1", "10.0.0.2"}
    [run] = control.store.job_runs("notes").values()
    assert run.outcome == "done" and run.parts["parameters"] == 1
    [done] = events(control, "app.job_done")
    assert done["detail"]["job"] == "migrate" and done["detail"]["digest"] == run.digest


def test_an_unchanged_job_is_skipped_and_its_dependents_still_wait_for_its_needs(
        tmp_path, control, engine):
    apply(control, tmp_path)
    engine.calls.clear()
    progress = []
    control.progress = lambda *event: progress.append(event)
    plan = apply(control, tmp_path)
    migrate = steps(plan)["migrate"]
    assert (migrate.action, migrate.reasons) == ("skip", (jobs_mod.SKIPPED,))
    assert (plan.count("skip"), plan.count("run")) == (1, 0)
    assert made(engine) == [] and ("remove_service", "notes_migrate") not in engine.calls
    assert ("migrate", "skipped", jobs_mod.SKIPPED) in progress
    assert len(events(control, "app.job_done")) == 1        # no run, no new record


@pytest.mark.parametrize("change, reason", [
    (lambda text: text.replace("--expand-only]", "--expand-only, --verbose]"),
     "definition changed"),
    (lambda text: text.replace("timeout: 120\n", "timeout: 120\n    resources: {cpus: 1}\n"),
     "definition changed"),
])
def test_a_job_whose_definition_changed_runs_again(tmp_path, control, engine, change, reason):
    apply(control, tmp_path)
    engine.calls.clear()
    plan = apply(control, tmp_path, change(JOBS))
    assert steps(plan)["migrate"].reasons == (reason,)
    # its last run's service goes first: every task the rollout sees is this run's
    calls = [c[:2] for c in engine.calls if c[0] in ("remove_service", "create_service")]
    assert calls == [("remove_service", "notes_migrate"), ("create_service", "notes_migrate")]
    assert steps(apply(control, tmp_path, change(JOBS)))["migrate"].action == "skip"


def test_a_new_image_under_the_same_tag_runs_it_again(tmp_path, control, engine, registry):
    apply(control, tmp_path)
    registry.digests["notes/api:0.1.0"] = "sha256:" + "9" * 64
    plan = apply(control, tmp_path)
    assert steps(plan)["migrate"].reasons == ("image changed",)
    assert steps(plan)["api"].action == "change"


def test_a_dependency_added_to_a_job_does_not_run_it_again(tmp_path, control):
    apply(control, tmp_path)
    text = JOBS.replace("    depends_on: [store]\n    timeout", "    depends_on: [store, web]"
                        "\n    timeout").replace("    depends_on: [store, migrate]",
                                                  "    depends_on: [store]")
    assert steps(apply(control, tmp_path, text))["migrate"].action == "skip"


def test_parameters_set_on_a_job_run_it_again_at_the_next_apply(tmp_path, control, engine):
    apply(control, tmp_path)
    results = control.set_params("notes", "migrate", ["store_password=s3cret"])
    assert results == []            # a job reads its parameters when it starts: no task told
    assert control.get_params("notes", "migrate")["parameters"]["store_password"]["set"]
    plan = apply(control, tmp_path)
    assert steps(plan)["migrate"].reasons == ("parameters changed",)
    assert "s3cret" not in str(control.store.job_runs("notes"))   # a revision, not a value
    assert steps(apply(control, tmp_path))["migrate"].action == "skip"


def test_a_new_default_of_a_job_parameter_runs_it_again(tmp_path, control):
    apply(control, tmp_path)
    text = JOBS + "      batch: {type: int, default: 100}\n"   # the job's, the last lines
    assert steps(apply(control, tmp_path, text))["migrate"].reasons == ("parameters changed",)


def test_a_failed_job_fails_the_apply_as_a_failed_start_with_its_log(
        tmp_path, control, engine, agents):
    engine.failing["notes_migrate"] = "task: non-zero exit (3)"
    agents.logs_of["c-notes_migrate-1"] = ["ALTER TABLE notes ADD tags", "ERROR: locked"]
    with pytest.raises(RolloutFailed) as caught:
        apply(control, tmp_path)
    e = caught.value
    assert (e.service, e.server) == ("migrate", "node-a")
    assert e.reason == "the job failed: task: non-zero exit (3)"
    assert e.output == "ALTER TABLE notes ADD tags\nERROR: locked"
    assert e.healthy == ["store-1"]
    assert e.exit_status == 1 and "ERROR: locked" in e.message
    assert "notes_api" not in engine.by_name and "notes_web" not in engine.by_name
    [failed] = events(control, "app.job_failed")
    assert failed["detail"]["server"] == "node-a"
    assert failed["detail"]["output"].endswith("ERROR: locked")
    assert control.store.job_runs("notes")["migrate"].outcome == "failed"
    # fixed: the next apply runs it again, whatever changed
    del engine.failing["notes_migrate"]
    plan = apply(control, tmp_path)
    assert steps(plan)["migrate"].reasons == ("its last run failed",)
    assert control.store.job_runs("notes")["migrate"].outcome == "done"


def test_a_job_past_its_timeout_is_stopped_and_fails_the_apply(tmp_path, control, engine,
                                                               agents):
    engine.hanging.add("notes_migrate")
    agents.logs_of["c-notes_migrate-1"] = ["waiting for the lock"]
    with pytest.raises(RolloutFailed) as caught:
        apply(control, tmp_path)
    e = caught.value
    assert e.service == "migrate"
    assert e.reason.startswith("the job did not complete within 120 s, and was stopped")
    assert e.output == "waiting for the lock"
    assert ("remove_service", "notes_migrate") in engine.calls
    assert "notes_api" not in engine.by_name


def test_a_later_failure_keeps_the_record_of_a_job_that_succeeded(tmp_path, control,
                                                                  engine):
    engine.failing["notes_api"] = "task: non-zero exit (1)"
    with pytest.raises(RolloutFailed):
        apply(control, tmp_path)
    assert control.store.job_runs("notes")["migrate"].outcome == "done"
    del engine.failing["notes_api"]
    assert steps(apply(control, tmp_path))["migrate"].action == "skip"


def test_the_logs_of_a_job_are_its_last_runs(tmp_path, control, agents):
    agents.logs_of["c-notes_migrate-1"] = ["migrated 3 tables"]
    apply(control, tmp_path)
    [entry] = control.logs("notes", "migrate", tail=20)
    assert entry["lines"] == ["migrated 3 tables"] and entry["state"] == "complete"
    assert ("logs", "10.0.0.1", "c-notes_migrate-1", 20) in agents.calls


def test_a_job_gone_from_the_spec_has_its_service_removed(tmp_path, control, engine):
    apply(control, tmp_path)
    plan = apply(control, tmp_path, NOTES)
    assert "job migrate is no longer in the spec: its last run's service is removed" \
        in plan.notes
    assert "notes_migrate" not in engine.by_name


def test_remove_takes_the_jobs_and_their_parameters_and_forgets_their_runs(
        tmp_path, control, engine, agents):
    apply(control, tmp_path)
    done = control.remove_app("notes")
    assert "notes_migrate" in done["services"]
    assert ("delete_params", "10.0.0.1", "notes", "migrate") in agents.calls
    assert control.store.job_runs("notes") == {}


def test_a_dry_run_shows_the_job_and_runs_nothing(tmp_path, control, engine):
    path = tmp_path / "notes.app.yaml"
    path.write_text(JOBS)
    plan = control.apply(str(path), dry_run=True)
    assert steps(plan)["migrate"].action == "run"
    assert engine.mutations() == [] and control.store.job_runs("notes") == {}


def test_starting_a_service_runs_the_job_it_needs_only_when_due(tmp_path, control, engine):
    apply(control, tmp_path)
    engine.calls.clear()
    assert control.start("notes", "api") == ["store-1", "migrate", "api"]
    assert "notes_migrate" not in made(engine)


def test_a_jobs_secret_may_be_set_before_the_first_apply(tmp_path, control, agents):
    control.set_param_values("notes", "migrate", {"store_password": "s3cret"},
                             spec=(JOBS, "notes.app.yaml"))
    apply(control, tmp_path)
    written = [c for c in agents.named("put_params") if c[3] == "migrate"]
    assert written and all(c[5] == {"store_password": "s3cret"} for c in written)
    assert steps(apply(control, tmp_path))["migrate"].action == "skip"


def test_services_lists_the_services_only(tmp_path, control):
    apply(control, tmp_path)
    assert [row["service"] for row in control.status("notes")] == ["store-1", "api", "web"]


def test_a_jobs_placement_servers_are_labelled_and_hold_its_parameters(tmp_path, control,
                                                                       engine, agents):
    text = JOBS.replace("    timeout: 120\n", "    timeout: 120\n    placement: {servers: "
                        "[node-b]}\n")
    apply(control, tmp_path, text)
    assert ("update_node", "id-b", {"dragonball.placement.notes.migrate": "true"}, False) \
        in engine.calls
    constraints = engine.by_name["notes_migrate"]["TaskTemplate"]["Placement"]["Constraints"]
    assert "node.labels.dragonball.placement.notes.migrate==true" in constraints
    assert {c[1] for c in agents.named("put_params") if c[3] == "migrate"} == {"10.0.0.2"}

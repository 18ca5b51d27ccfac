"""One-shot jobs, pure: the Swarm spec of a job, the parts of what a run ran, whether an apply
runs it again, and the verdict over its task (orchestrator.jobs, rollout.judge_job), plus
the rollout of a job among services with plain launches."""

from __future__ import annotations

import pytest

from orchestrator_fakes import NOW, task
from dragonball.app.model import JobSpec
from dragonball.orchestrator import jobs, naming, specs
from dragonball.orchestrator.rollout import Launch, Rollout, RolloutFailed, judge_job
from dragonball.shared.node_labels import ENROLLED_CONSTRAINT

JOB = JobSpec.model_validate({
    "image": "wiki/app:1.39.0", "command": ["/opt/dragon_ball/service/app/module/install.sh"],
    "depends_on": ["db"], "placement": {"labels": {"zone": "a"}},
    "resources": {"memory": "256m"}})


def spec_of(job: JobSpec = JOB, image: str = "sha256:" + "1" * 64) -> dict:
    return jobs.job_spec("wiki", "install", job, image)


def test_a_job_is_a_replicated_job_run_once_without_restart_health_or_update_config():
    spec = spec_of()
    assert spec["Name"] == "wiki_install"
    assert spec["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    assert "UpdateConfig" not in spec
    task_spec = spec["TaskTemplate"]
    assert task_spec["RestartPolicy"] == {"Condition": "none"}
    container = task_spec["ContainerSpec"]
    assert container["Healthcheck"] == {"Test": ["NONE"]}   # not the image's run.sh status
    assert container["Command"] == ["/opt/dragon_ball/service/app/module/install.sh"]
    assert container["Labels"][naming.KIND_LABEL] == naming.JOB_KIND
    assert spec["Labels"][naming.APP_LABEL] == "wiki"
    assert "DRAGONBALL_PARAMS_FILE=/run/dragonball-params/params.json" in container["Env"]
    assert container["Mounts"] == [{"Type": "bind", "ReadOnly": True,
                                    "Source": "/var/lib/dragonball/params/wiki/install",
                                    "Target": naming.PARAMS_MOUNT}]
    assert task_spec["Placement"]["Constraints"] == [ENROLLED_CONSTRAINT,
                                                     "node.labels.zone==a"]
    assert task_spec["Resources"] == {"Limits": {"MemoryBytes": 256 << 20}}
    assert task_spec["Networks"] == [{"Target": "wiki_net"}]


def test_without_a_command_the_image_runs_as_it_is():
    spec = spec_of(JOB.model_copy(update={"command": None}))
    assert "Command" not in spec["TaskTemplate"]["ContainerSpec"]


def test_the_definition_leaves_out_the_image_and_what_it_depends_on():
    base = spec_of()["Labels"][naming.SPEC_LABEL]
    assert spec_of(image="sha256:" + "2" * 64)["Labels"][naming.SPEC_LABEL] == base
    assert spec_of(JOB.model_copy(update={"depends_on": []}))["Labels"][
        naming.SPEC_LABEL] == base
    assert spec_of(JOB.model_copy(update={"command": ["true"]}))["Labels"][
        naming.SPEC_LABEL] != base


def test_the_limits_of_a_service_are_as_before():
    assert specs.limits(JOB.resources) == {"MemoryBytes": 256 << 20}
    assert specs.limits(JOB.resources.model_copy(update={"memory": None})) == {}


WANTED = {"image": "sha256:1", "definition": "d1", "parameters": 3}


@pytest.mark.parametrize("last, decided", [
    (None, ("run", ("never run",))),
    (jobs.JobRun(WANTED, "failed"), ("run", ("its last run failed",))),
    (jobs.JobRun(WANTED, "done"), ("skip", (jobs.SKIPPED,))),
    (jobs.JobRun(dict(WANTED, image="sha256:0"), "done"), ("run", ("image changed",))),
    (jobs.JobRun(dict(WANTED, definition="d0", parameters=2), "done"),
     ("run", ("definition changed", "parameters changed"))),
])
def test_a_job_runs_again_only_when_something_changed_or_it_failed(last, decided):
    assert jobs.decide(WANTED, last) == decided


def test_parameters_written_anew_are_a_change():
    assert jobs.decide(dict(WANTED, parameters=None), jobs.JobRun(
        dict(WANTED, parameters=None), "done")) == ("run", ("parameters changed",))


def test_the_revision_a_run_gets_is_known_only_when_nothing_is_written_anew():
    assert jobs.settled_revision(4, {"a": 1}, {"a": 1}) == 4
    assert jobs.settled_revision(4, {"a": 1}, {"a": 2}) is None   # set since, or a default
    assert jobs.settled_revision(4, None, {}) is None              # never written
    assert jobs.settled_revision(0, {}, {}) is None                # the first write


def test_a_digest_names_the_parts_whatever_their_order():
    assert jobs.digest(WANTED) == jobs.digest(dict(reversed(list(WANTED.items()))))
    assert jobs.JobRun(WANTED, "done").digest == jobs.digest(WANTED)


def job_task(state: str, error: str = ""):
    return task("wiki_install", 1, "id-a", state, "complete", error=error)


@pytest.mark.parametrize("states, verdict", [
    (["complete"], "healthy"),
    (["failed"], "failed"),
    (["rejected"], "failed"),
    (["orphaned"], "failed"),
    (["shutdown"], "failed"),
    (["running"], "pending"),
    (["pending"], "pending"),
    ([], "pending"),
])
def test_the_verdict_over_a_jobs_task(states, verdict):
    assert judge_job([job_task(s) for s in states]).state == verdict


def test_a_failed_task_says_its_error_and_is_the_one_explained():
    failed = job_task("failed", "task: non-zero exit (2)")
    found = judge_job([failed])
    assert (found.detail, found.task) == ("task: non-zero exit (2)", failed)


class Cluster:
    """A job's task reaches `states[name]` when launched, a service's is running; a clock
    that moves when the rollout sleeps."""

    def __init__(self, states: dict) -> None:
        self.states, self.lists, self.removed, self.t = states, {}, [], 0.0

    def launcher(self, name: str):
        job = name in self.states
        return lambda: self.lists.__setitem__(name, [task(
            name, 1, "id-a", self.states.get(name, "running"),
            "complete" if job else "running")])

    def tasks(self, name: str):
        return self.lists.get(name, [])

    def service(self, name: str):
        return None

    def remove_service(self, name: str) -> None:
        self.removed.append(name)

    def now(self):
        return NOW

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def rollout(cluster: Cluster, progress: list) -> Rollout:
    return Rollout(cluster, lambda *e: progress.append(e[:2]),
                   lambda t: ("node-a", f"log of {t.id}"), wait_s=30, poll_s=1,
                   clock=lambda: cluster.t, sleep=cluster.sleep)


def test_a_job_is_waited_for_to_complete_then_its_dependents_start():
    cluster, progress, ended = Cluster({"install": "complete"}), [], []
    launches = [Launch("db", "db", (), 1, cluster.launcher("db")),
                Launch("install", "install", ("db",), 1, cluster.launcher("install"),
                       timeout=60, ended=lambda *a: ended.append(a[:2])),
                Launch("app", "app", ("install",), 1, cluster.launcher("app"))]
    assert rollout(cluster, progress).start(launches) == ["db", "install", "app"]
    assert ended == [("done", "completed in 0 s")]
    assert progress.index(("install", "done")) < progress.index(("app", "starting"))


def test_a_skipped_job_is_done_at_once_once_its_needs_are():
    cluster, progress = Cluster({"install": "complete"}), []
    launches = [Launch("db", "db", (), 1, cluster.launcher("db")),
                Launch("install", "install", ("db",), 0, lambda: pytest.fail("ran"),
                       skip="unchanged: not run")]
    assert rollout(cluster, progress).start(launches) == ["db", "install"]
    assert progress.index(("db", "healthy")) < progress.index(("install", "skipped"))


def test_a_job_past_its_timeout_is_removed_and_fails_with_its_log():
    cluster, ended = Cluster({"install": "running"}), []
    launches = [Launch("install", "install", (), 1, cluster.launcher("install"),
                       timeout=5, ended=lambda *a: ended.append(a))]
    with pytest.raises(RolloutFailed) as caught:
        rollout(cluster, []).start(launches)
    assert caught.value.reason.startswith("the job did not complete within 5 s")
    assert caught.value.output == "log of install.1.running"
    assert cluster.removed == ["install"]
    assert ended[0][0] == "failed" and ended[0][2] == "node-a"

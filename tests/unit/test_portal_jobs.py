"""The portal's job registry: a job's life, one app-changing job per app, the last 100 kept,
errors (ours and foreign) ending the job with a message."""

from __future__ import annotations

import threading

import pytest

from dragonball.errors import DragonBallError
from dragonball.portal.jobs import AppBusy, Jobs


def test_a_job_runs_reports_progress_and_ends_with_its_result():
    jobs = Jobs(clock=lambda: 100.0)

    def work(job):
        job.progress("api", "starting", "")
        job.progress("api", "healthy", "2/2 running")
        return {"start": ["api"]}
    job = jobs.start("start", "notes", work, service="api")
    done = jobs.wait(job.id).to_dict()
    assert done["state"] == "done" and done["result"] == {"start": ["api"]}
    assert [(e["service"], e["state"], e["detail"]) for e in done["events"]] == [
        ("api", "starting", ""), ("api", "healthy", "2/2 running")]
    assert done["created"] == done["finished"] == 100.0 and done["error"] is None
    assert jobs.running("notes") is None and jobs.latest("notes", "api").id == job.id


def test_a_second_job_on_a_busy_app_is_refused_another_app_is_not():
    jobs, gate = Jobs(), threading.Event()
    first = jobs.start("start", "notes", lambda job: gate.wait(5), service="web")
    with pytest.raises(AppBusy) as caught:
        jobs.start("stop", "notes", lambda job: None)
    assert caught.value.job is first
    assert caught.value.message == ("app 'notes' is busy: job %s (start web) is still "
                                    "running" % first.id)
    with pytest.raises(AppBusy):
        with jobs.hold("params", "notes"):
            pass
    other = jobs.start("start", "blog", lambda job: None)
    assert jobs.wait(other.id).state == "done"
    gate.set()
    assert jobs.wait(first.id).state == "done"
    assert jobs.start("stop", "notes", lambda job: None) is not None


def test_our_error_fails_the_job_with_its_hint_and_extra_result():
    jobs = Jobs()

    def work(job):
        raise DragonBallError("store on node-a: no space", "free some")
    job = jobs.wait(jobs.start("start", "notes", work, failure=lambda e: {"why": "disk"}).id)
    assert (job.state, job.error, job.hint, job.result) == ("failed", "store on node-a: no space",
                                                            "free some", {"why": "disk"})
    assert jobs.running("notes") is None


def test_a_foreign_error_fails_the_job_too(caplog):
    jobs = Jobs()
    job = jobs.wait(jobs.start("apply", "notes", lambda job: 1 / 0).id)
    assert job.state == "failed" and job.error == "unexpected error: ZeroDivisionError: " \
                                                  "division by zero"
    assert "see the portal's log" in job.hint and "ZeroDivisionError" in caplog.text
    assert jobs.running("notes") is None


def test_hold_records_work_done_in_the_callers_thread():
    jobs = Jobs()
    with jobs.hold("params", "notes", "api") as job:
        job.result = {"ok": True}
    assert (job.state, job.result) == ("done", {"ok": True})
    with pytest.raises(DragonBallError):
        with jobs.hold("params", "notes", "api") as failed:
            raise DragonBallError("refused", "fix it")
    assert (failed.state, failed.error, failed.hint) == ("failed", "refused", "fix it")
    assert jobs.running("notes") is None


def test_only_the_last_jobs_are_kept_but_never_a_running_one():
    jobs, gate = Jobs(keep=3), threading.Event()
    running = jobs.start("start", "a0", lambda job: gate.wait(5))
    ids = [jobs.wait(jobs.start("start", f"a{i}", lambda job: i).id).id for i in range(1, 6)]
    assert jobs.get(running.id) is running          # kept while it runs
    gate.set()
    jobs.wait(running.id)
    last = jobs.wait(jobs.start("start", "a9", lambda job: None).id)
    assert jobs.get(running.id) is None
    assert [jobs.get(i) is not None for i in ids] == [False, False, False, True, True]
    assert jobs.get(last.id) is last

"""Long operations of the portal (start, stop, restart, apply) as jobs in a background thread.

A request starts a job and answers at once with its id (202); the caller (the CLI, a page
through htmx) polls the job: its state, the progress events the orchestrator reports as it
goes (service, state, detail, seconds since the job began), and at the end its result or
its error with a hint. The registry is in memory: the last `KEEP` jobs, gone when the portal
restarts (what was done stays in the audit log and on the cluster).

One app-changing job at a time per app: a second one while the first runs is refused
(`AppBusy`, 409 in the API) rather than queued, so two rollouts never interleave on one
app's services.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
import uuid
from typing import Callable

from dragonball.errors import (Category, Conflict, DragonBallError, NotFound, PortalError,
                               category_of)
from dragonball.shared import app_lock

log = logging.getLogger(__name__)

KEEP = 100
RUNNING, DONE, FAILED = "running", "done", "failed"


class AppBusy(PortalError, Conflict):
    """Another job is changing this app now."""

    def __init__(self, app: str, job: Job) -> None:
        super().__init__(f"app {app!r} is busy: job {job.id} ({job.kind}"
                         f"{' ' + job.service if job.service else ''}) is still running",
                         f"wait for it to end (GET /api/v1/jobs/{job.id}), then try again")
        self.job = job

    def to_dict(self) -> dict:
        return super().to_dict() | {"job": self.job.id}


class JobUnknown(PortalError, NotFound):
    """No job has this id (the portal keeps the last ones, and none across a restart)."""


@dataclasses.dataclass
class Job:
    """One operation: what (kind, app, service), how far (events), how it ended."""

    id: str
    kind: str
    app: str
    service: str = ""
    state: str = RUNNING
    events: list = dataclasses.field(default_factory=list)
    result: object = None
    error: str | None = None
    hint: str = ""
    category: str | None = None  # of the error (dragonball.errors.Category): its exit status
    created: float = 0.0
    finished: float | None = None
    began: float = dataclasses.field(default_factory=time.monotonic, repr=False)
    done: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)

    def progress(self, service: str, state: str, detail: str) -> None:
        """The orchestrator's progress callback (Control.progress)."""
        self.events.append({"service": service, "state": state, "detail": detail,
                            "t": round(time.monotonic() - self.began, 2)})

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "app": self.app, "service": self.service,
                "state": self.state, "events": list(self.events), "result": self.result,
                "error": self.error, "hint": self.hint, "category": self.category,
                "created": self.created,
                "finished": self.finished}


class Jobs:
    """The portal's job registry. `work(job)` runs in a thread of its own and returns the
    result; a DragonBallError it raises is the job's error (`failure(e)` may add a result
    to it, e.g. what a failed rollout left running)."""

    def __init__(self, keep: int = KEEP, clock: Callable[[], float] = time.time,
                 lock_dir: str | None = None) -> None:
        """`lock_dir`: also hold each app's lock there while its job runs (shared.app_lock:
        the commands run on the portal as root take it too); None: this registry only."""
        self.keep, self.clock, self.lock_dir = keep, clock, lock_dir
        self._held: dict[str, object] = {}   # job id -> its app lock
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._busy: dict[str, Job] = {}   # app -> the job changing it
        self._lock = threading.Lock()

    def start(self, kind: str, app: str, work: Callable[[Job], object], service: str = "",
              failure: Callable[[DragonBallError], object] | None = None) -> Job:
        """Start `work` as a job changing `app`; AppBusy when another one does."""
        job = self._claim(kind, app, service)
        threading.Thread(target=self._run, args=(job, work, failure), daemon=True,
                         name=f"job-{job.id}").start()
        return job

    def hold(self, kind: str, app: str, service: str = "") -> _Hold:
        """A context manager holding `app` for work done in the caller's thread (parameters):
        AppBusy when a job changes it; the record is kept like a job's."""
        return _Hold(self, self._claim(kind, app, service))

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def running(self, app: str) -> Job | None:
        with self._lock:
            return self._busy.get(app)

    def latest(self, app: str, service: str | None = None) -> Job | None:
        """The newest job of `app` (and of `service`, when given)."""
        with self._lock:
            for job in reversed(self._jobs.values()):
                if job.app == app and (service is None or job.service == service):
                    return job
        return None

    def wait(self, job_id: str, timeout: float = 10.0) -> Job | None:
        job = self.get(job_id)
        if job is not None:
            job.done.wait(timeout)
        return job

    def _claim(self, kind: str, app: str, service: str) -> Job:
        with self._lock:
            if app in self._busy:
                raise AppBusy(app, self._busy[app])
            job = Job(uuid.uuid4().hex[:16], kind, app, service, created=self.clock())
            if self.lock_dir:   # AppLocked (409) when a command on the portal holds it
                self._held[job.id] = app_lock.acquire(
                    app, f"the portal's job {job.id} ({kind})", self.lock_dir)
            self._busy[app] = job
            self._jobs[job.id] = job
            while len(self._jobs) > self.keep:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].state == RUNNING:
                    break  # never forget a running job; the registry shrinks later
                del self._jobs[oldest]
            return job

    def _run(self, job: Job, work, failure) -> None:
        try:
            result = work(job)
        except DragonBallError as e:
            self._end(job, FAILED, failure(e) if failure else None, e.message, e.hint,
                      e.category)
            log.warning("job %s (%s %s %s) failed: %s", job.id, job.kind, job.app,
                        job.service, e.message.splitlines()[0])
        except Exception as e:  # a job thread must always end its job
            log.exception("job %s (%s %s) failed unexpectedly", job.id, job.kind, job.app)
            self._end(job, FAILED, None, f"unexpected error: {type(e).__name__}: {e}",
                      "see the portal's log (journalctl -u dragonball-portal)",
                      Category.INTERNAL)
        else:
            self._end(job, DONE, result, None, "")

    def _end(self, job: Job, state: str, result, error: str | None, hint: str,
             category: Category | None = None) -> None:
        with self._lock:
            job.result, job.error, job.hint = result, error, hint
            job.category = category.value if category else None
            job.finished, job.state = self.clock(), state
            if self._busy.get(job.app) is job:
                del self._busy[job.app]
            held = self._held.pop(job.id, None)
            if held is not None:
                held.release()
        job.done.set()


class _Hold:
    def __init__(self, jobs: Jobs, job: Job) -> None:
        self.jobs, self.job = jobs, job

    def __enter__(self) -> Job:
        return self.job

    def __exit__(self, kind, error, tb) -> None:
        if error is None:
            self.jobs._end(self.job, DONE, self.job.result, None, "")
        else:
            message = getattr(error, "message", None) or str(error)
            self.jobs._end(self.job, FAILED, self.job.result, message,
                           getattr(error, "hint", ""), category_of(error))

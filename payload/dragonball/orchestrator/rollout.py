"""Starting and stopping services in dependency order, each gated on its tasks' health.

The plan (dragonball.app.plan) prints waves; the rollout here is eager: a service starts as
soon as everything it needs is healthy, so a slow branch never holds back a sibling
branch, and the whole start takes the tree's critical path (bench/app_start.py measures
it). Siblings start in parallel. Swarm reports a task `running` only once its health
check (the module's status action) passed, so "healthy" is Swarm's own word.

A one-shot job (orchestrator.jobs) is a launch like a service's, whose "healthy" is *done*:
its task complete (it exited 0). It fails as a service that does not become healthy fails
(`RolloutFailed`, with its server and the last lines of its log) when its task failed or
was rejected, or when its own `timeout` passed (its Swarm service is then removed, which
stops the task). A job skipped (its last run already ran this definition) counts as done
at once, once what it depends on is. Each job's end is told to its launch's `ended`.

`judge`, `judge_job` and `stopped` are pure (tests feed them lists of
`dragonball.swarm.Task`); `Rollout` drives the Swarm adapter (dragonball.swarm.Swarm, or a
fake in unit tests) and a clock.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Callable

from dragonball.errors import AppError, Failed
from dragonball.swarm import Task

POLL_S = 0.5
WAIT_S = 300.0
#: Task states of a task that is on its way up or up: not stopped yet.
ACTIVE = frozenset({"new", "pending", "assigned", "accepted", "preparing", "ready",
                    "starting", "running"})
FAILED = frozenset({"failed", "rejected"})
#: A job's task that ended without completing: its server left the Swarm.
JOB_FAILED = FAILED | {"orphaned"}


class RolloutFailed(AppError, Failed):
    """A service did not become healthy (or stop): what, where, and the action's output."""

    def __init__(self, service: str, reason: str, server: str = "", output: str = "",
                 healthy: list | None = None) -> None:
        self.service, self.reason, self.server, self.output = service, reason, server, output
        self.healthy = list(healthy or [])
        where = f" on {server}" if server else ""
        text = f"{service}{where}: {reason}"
        if output:
            text += "\n" + "\n".join(f"    {line}" for line in output.rstrip().splitlines())
        kept = (f"; left running: {', '.join(self.healthy)}" if self.healthy
                else "")
        super().__init__(text, "fix the cause, then run the same command again: what is "
                         f"healthy is kept{kept}")

    def details(self) -> dict:
        """Where it failed, the action's output, what stays healthy: a failed job's result
        in the API, and part of the error's JSON (`to_dict`) for the CLI."""
        return {"service": self.service, "server": self.server, "output": self.output,
                "healthy": self.healthy}

    def to_dict(self) -> dict:
        return super().to_dict() | self.details()


@dataclasses.dataclass(frozen=True)
class Verdict:
    state: str            # "healthy", "pending", "failed"
    detail: str = ""
    task: Task | None = None


def judge(tasks: list[Task], desired: int, since: datetime.datetime | None,
          fresh_only: bool, updating: str | None = None,
          update_started: datetime.datetime | None = None) -> Verdict:
    """Whether a service is healthy now (pure).

    `since`: when this rollout touched it (failures before are history); `fresh_only`: only
    tasks made since count (its definition changed, or a restart); `updating`: the
    service's UpdateStatus.State, if any, and `update_started` when that update began. An
    update begun since and completed says every task runs the new definition, fresh or not:
    a definition put back after a failed update (a rollback) keeps the tasks that never
    left it, and Swarm replaces only the others.
    """
    def after(moment: datetime.datetime | None) -> bool:
        return since is None or (moment is not None and moment >= since)

    failed = [t for t in tasks if t.state in FAILED and after(t.timestamp)]
    if failed:
        return Verdict("failed", failed[0].error or failed[0].message or "failed", failed[0])
    if updating == "paused":
        return Verdict("failed", "the update was paused after a task failed")
    wanted = [t for t in tasks if t.desired_state == "running"]
    completed_since = updating == "completed" and update_started is not None and \
        since is not None and update_started >= since
    if fresh_only and since is not None and not completed_since:
        wanted = [t for t in wanted if after(t.created)]
    running = [t for t in wanted if t.state == "running"]
    if len(running) >= desired and updating in (None, "completed", "rollback_completed"):
        return Verdict("healthy", f"{len(running)}/{desired} running")
    states = sorted({t.state for t in wanted} - {"running"})
    more = f" ({', '.join(states)})" if states else ""
    return Verdict("pending", f"{len(running)}/{desired} healthy{more}")


def judge_job(tasks: list[Task]) -> Verdict:
    """Whether a one-shot job's run is over (pure): "healthy" once its task is complete,
    "failed" when it failed, was rejected or lost its server, or ended otherwise (shut
    down) without completing; else "pending". Every task of the job's service is this
    run's: each run is a new service (orchestrator.jobs)."""
    done = [t for t in tasks if t.state == "complete"]
    if done:
        return Verdict("healthy", "complete", done[0])
    failed = [t for t in tasks if t.state in JOB_FAILED]
    if failed:
        return Verdict("failed", failed[0].error or failed[0].message or failed[0].state,
                       failed[0])
    if tasks and not any(t.state in ACTIVE for t in tasks):
        return Verdict("failed", f"its task ended {tasks[0].state} without completing",
                       tasks[0])
    states = sorted({t.state for t in tasks})
    return Verdict("pending", ", ".join(states) if states else "no task yet",
                   _newest(tasks))


def _newest(tasks: list[Task]) -> Task | None:
    floor = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    return max(tasks, key=lambda t: t.created or floor, default=None)


def stopped(tasks: list[Task]) -> bool:
    """No task of the service is up or on its way up (pure)."""
    return not any(t.state in ACTIVE for t in tasks)


@dataclasses.dataclass
class Launch:
    """One service to bring up: `act()` asks the Swarm (create, update, scale, nothing)."""

    name: str
    swarm_name: str
    needs: tuple
    desired: int
    act: Callable[[], None]
    fresh_only: bool = False    # only tasks made by this launch count (new definition)
    keeps_tasks: bool = False   # its running tasks stay (same definition: a scale, or nothing)
    waits_for: str = ""         # a slot pinned to this server, down: launched, not waited on
    timeout: float = 0.0        # a one-shot job: the seconds it may run (0: a service)
    skip: str = ""              # a job not run: why (done at once, once its needs are)
    #: a job's end: ended(outcome "done" or "failed", detail, server, output)
    ended: Callable[[str, str, str, str], None] | None = None

    @property
    def job(self) -> bool:
        return self.timeout > 0 or bool(self.skip)


class Rollout:
    """Runs launches in dependency order with health gates; reports through `progress`."""

    def __init__(self, swarm, progress: Callable[[str, str, str], None] | None = None,
                 explain: Callable[[Task], tuple[str, str]] | None = None,
                 wait_s: float = WAIT_S, poll_s: float = POLL_S,
                 clock=time.monotonic, sleep=time.sleep) -> None:
        """`progress(service, state, detail)`; `explain(task)` -> (server, action output)
        of a failed task (the portal asks the agent on its server for the log tail)."""
        self.swarm, self.wait_s, self.poll_s = swarm, wait_s, poll_s
        self.progress = progress or (lambda *a: None)
        self.explain = explain or (lambda task: ("", ""))
        self.clock, self.sleep = clock, sleep
        self.healthy: list[str] = []
        self.timings: dict = {}   # name -> (started, healthy) in clock seconds

    def start(self, launches: list[Launch]) -> list[str]:
        """Bring every launch up, each after what it needs; return the names in the order
        they became healthy. RolloutFailed stops it: nothing more is launched."""
        todo = {launch.name: launch for launch in launches}
        for name, launch in sorted(todo.items()):
            if launch.waits_for:   # Swarm holds it until its server is back; its data is there
                del todo[name]
                launch.act()
                self.progress(name, "waiting", f"for {launch.waits_for}, which is down "
                              "(its storage is there)")
        inside = set(todo)
        inflight: dict = {}   # name -> (launch, since, deadline)
        while todo or inflight:
            for name in sorted(todo):
                if not all(n in self.healthy or n not in inside for n in todo[name].needs):
                    continue
                launch = todo.pop(name)
                if launch.skip:
                    self.healthy.append(name)
                    self.progress(name, "skipped", launch.skip)
                else:
                    inflight[name] = self._act(launch)
            for name in sorted(inflight):
                if self._healthy(*inflight[name]):
                    del inflight[name]
            if todo or inflight:
                self.sleep(self.poll_s)
        return list(self.healthy)

    def _act(self, launch: Launch) -> tuple:
        """Launch it now: (launch, since, deadline) of its wait for health."""
        since = self.swarm.now()
        launch.act()
        self.timings[launch.name] = [self.clock(), None]
        self.progress(launch.name, "running" if launch.job else "starting",
                      f"one-shot job, {launch.timeout:.0f} s at most" if launch.job else "")
        return launch, since, self.clock() + (launch.timeout if launch.job else self.wait_s)

    def _healthy(self, launch: Launch, since, deadline: float) -> bool:
        """Whether it is healthy now; RolloutFailed when it failed or its time is up."""
        if launch.job:
            return self._done(launch, deadline)
        service = self.swarm.service(launch.swarm_name)
        verdict = judge(self.swarm.tasks(launch.swarm_name), launch.desired, since,
                        launch.fresh_only, service.update_state if service else None,
                        service.update_started if service else None)
        if verdict.state == "healthy":
            self.healthy.append(launch.name)
            self.timings[launch.name][1] = self.clock()
            self.progress(launch.name, "healthy", verdict.detail)
            return True
        if verdict.state == "failed":
            server, output = self.explain(verdict.task) if verdict.task else ("", "")
            self.progress(launch.name, "failed", verdict.detail)
            raise RolloutFailed(launch.name, verdict.detail, server, output, self.healthy)
        if self.clock() >= deadline:
            self.progress(launch.name, "failed", "timed out: " + verdict.detail)
            raise RolloutFailed(launch.name, f"not healthy within {self.wait_s:.0f} s: "
                                f"{verdict.detail}", healthy=self.healthy)
        return False

    def _done(self, launch: Launch, deadline: float) -> bool:
        """Whether a job's run is over and succeeded; RolloutFailed when it failed or its
        timeout passed (then its service is removed: the task stops)."""
        verdict = judge_job(self.swarm.tasks(launch.swarm_name))
        if verdict.state == "healthy":
            seconds = self.clock() - self.timings[launch.name][0]
            self.healthy.append(launch.name)
            self.timings[launch.name][1] = self.clock()
            self._ended(launch, "done", f"completed in {seconds:.0f} s", "", "")
            self.progress(launch.name, "done", f"completed in {seconds:.0f} s")
            return True
        if verdict.state == "pending" and self.clock() < deadline:
            return False
        server, output = self.explain(verdict.task) if verdict.task else ("", "")
        if verdict.state == "failed":
            reason = f"the job failed: {verdict.detail}"
        else:
            self.swarm.remove_service(launch.swarm_name)
            reason = (f"the job did not complete within {launch.timeout:.0f} s, and was "
                      f"stopped ({verdict.detail})")
        self._ended(launch, "failed", reason, server, output)
        self.progress(launch.name, "failed", reason)
        raise RolloutFailed(launch.name, reason, server, output, self.healthy)

    @staticmethod
    def _ended(launch: Launch, outcome: str, detail: str, server: str, output: str) -> None:
        if launch.ended is not None:
            launch.ended(outcome, detail, server, output)

    def stop(self, services: dict, remove: bool = False) -> list[str]:
        """Scale each to 0 once every service that needs it (among `services`) has stopped:
        roots first. `services`: name -> (swarm name, needs). `remove`: then delete it."""
        users = {name: {n for n, (_, needs) in services.items() if name in needs}
                 for name in services}
        todo, inflight, done = set(services), {}, []
        while todo or inflight:
            for name in sorted(todo):
                if users[name] <= set(done):
                    self.swarm.scale(services[name][0], 0)
                    todo.discard(name)
                    inflight[name] = self.clock() + self.wait_s
                    self.progress(name, "stopping", "")
            for name in sorted(inflight):
                swarm_name = services[name][0]
                if stopped(self.swarm.tasks(swarm_name)):
                    del inflight[name]
                    if remove:
                        self.swarm.remove_service(swarm_name)
                    done.append(name)
                    self.progress(name, "removed" if remove else "stopped", "")
                elif self.clock() >= inflight[name]:
                    raise RolloutFailed(name, f"still running after {self.wait_s:.0f} s")
            if todo or inflight:
                self.sleep(self.poll_s)
        return done

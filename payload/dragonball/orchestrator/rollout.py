"""Starting and stopping services in dependency order, each gated on its tasks' health.

The plan (dragonball.app.plan) prints waves; the rollout here is eager: a service starts as
soon as everything it needs is healthy, so a slow branch never holds back a sibling
branch, and the whole start takes the tree's critical path (bench/app_start.py measures
it). Siblings start in parallel. Swarm reports a task `running` only once its health
check (the module's status action) passed, so "healthy" is Swarm's own word.

`judge` and `stopped` are pure (tests feed them lists of `dragonball.swarm.Task`); `Rollout`
drives the Swarm adapter (dragonball.swarm.Swarm, or a fake in unit tests) and a clock.
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
          fresh_only: bool, updating: str | None = None) -> Verdict:
    """Whether a service is healthy now (pure).

    `since`: when this rollout touched it (failures before are history); `fresh_only`: only
    tasks made since count (its definition changed, or a restart); `updating`: the
    service's UpdateStatus.State, if any.
    """
    def after(moment: datetime.datetime | None) -> bool:
        return since is None or (moment is not None and moment >= since)

    failed = [t for t in tasks if t.state in FAILED and after(t.timestamp)]
    if failed:
        return Verdict("failed", failed[0].error or failed[0].message or "failed", failed[0])
    if updating == "paused":
        return Verdict("failed", "the update was paused after a task failed")
    wanted = [t for t in tasks if t.desired_state == "running"]
    if fresh_only and since is not None:
        wanted = [t for t in wanted if after(t.created)]
    running = [t for t in wanted if t.state == "running"]
    if len(running) >= desired and updating in (None, "completed", "rollback_completed"):
        return Verdict("healthy", f"{len(running)}/{desired} running")
    states = sorted({t.state for t in wanted} - {"running"})
    more = f" ({', '.join(states)})" if states else ""
    return Verdict("pending", f"{len(running)}/{desired} healthy{more}")


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
                if all(n in self.healthy or n not in inside for n in todo[name].needs):
                    inflight[name] = self._act(todo.pop(name))
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
        self.progress(launch.name, "starting", "")
        return launch, since, self.clock() + self.wait_s

    def _healthy(self, launch: Launch, since, deadline: float) -> bool:
        """Whether it is healthy now; RolloutFailed when it failed or its time is up."""
        service = self.swarm.service(launch.swarm_name)
        verdict = judge(self.swarm.tasks(launch.swarm_name), launch.desired, since,
                        launch.fresh_only, service.update_state if service else None)
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

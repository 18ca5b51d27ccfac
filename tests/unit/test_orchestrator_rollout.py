"""The rollout: `judge` and `stopped` over hand-made Swarm tasks (dragonball.swarm.Task),
then `Rollout` driving an in-memory swarm on a fake clock (eager start after needs are
healthy, failure, timeout, stop roots first)."""

from __future__ import annotations

import datetime

import pytest

from dragonball.orchestrator.rollout import Launch, Rollout, RolloutFailed, judge, stopped
from dragonball.swarm import ServiceState, Task, parse_time

T0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)


def iso(seconds: float) -> str:
    return (T0 + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f") + \
        "123Z"  # nanoseconds, as the engine writes them


def task(state: str, at: float = 10.0, created: float | None = None,
         desired: str = "running", err: str = "", node: str = "n1") -> Task:
    return Task(f"t-{state}-{at}", 1, node, state, desired, error=err, container_id="c1",
                timestamp=parse_time(iso(at)),
                created=parse_time(iso(at if created is None else created)))


# -- judge -----------------------------------------------------------------------------
def test_enough_running_tasks_are_healthy():
    verdict = judge([task("running"), task("running", 11)], 2, parse_time(iso(5)), False)
    assert verdict.state == "healthy"
    assert verdict.detail == "2/2 running"


def test_starting_tasks_are_pending_with_their_states():
    verdict = judge([task("running"), task("starting", 11)], 2, parse_time(iso(5)), False)
    assert verdict.state == "pending"
    assert verdict.detail == "1/2 healthy (starting)"


def test_a_recent_failure_fails_with_its_error():
    tasks = [task("running"), task("failed", 12, err="task: non-zero exit (1)")]
    verdict = judge(tasks, 1, parse_time(iso(5)), False)
    assert verdict.state == "failed"
    assert verdict.detail == "task: non-zero exit (1)"
    assert verdict.task is tasks[1]


def test_a_rejected_task_fails_too():
    verdict = judge([task("rejected", 12, err="no suitable node")], 1, parse_time(iso(5)),
                    False)
    assert (verdict.state, verdict.detail) == ("failed", "no suitable node")


def test_failures_before_since_are_history():
    tasks = [task("failed", 2, desired="shutdown", err="old"), task("running", 12)]
    assert judge(tasks, 1, parse_time(iso(5)), False).state == "healthy"
    # without `since`, every failure counts
    assert judge(tasks, 1, None, False).state == "failed"


def test_tasks_not_meant_to_run_do_not_count():
    tasks = [task("running", desired="shutdown")]
    assert judge(tasks, 1, parse_time(iso(5)), False).state == "pending"


def test_fresh_only_ignores_tasks_made_before_since():
    old = task("running", at=12, created=1)   # still running, from before this rollout
    since = parse_time(iso(5))
    assert judge([old], 1, since, fresh_only=False).state == "healthy"
    assert judge([old], 1, since, fresh_only=True).state == "pending"
    assert judge([old, task("running", 13, created=6)], 1, since, True).state == "healthy"


def test_a_definition_put_back_after_a_failed_update_keeps_the_tasks_that_never_left_it():
    """A rollback re-applies the definition before a failed update: Swarm replaces only the
    failed task, so two of three running tasks are older than the rollback; the update it
    began since, completed, says they all run the definition asked for."""
    since = parse_time(iso(5))
    tasks = [task("running", 12, created=1), task("running", 12, created=2),
             task("running", 14, created=7)]
    assert judge(tasks, 3, since, True, "updating", parse_time(iso(6))).state == "pending"
    assert judge(tasks, 3, since, True, "completed", parse_time(iso(6))).state == "healthy"
    # a completed update from before this rollout says nothing of it
    assert judge(tasks, 3, since, True, "completed", parse_time(iso(3))).state == "pending"
    assert judge(tasks, 3, since, True, "completed", None).state == "pending"


def test_a_paused_update_has_failed():
    verdict = judge([task("running")], 1, parse_time(iso(5)), False, updating="paused")
    assert verdict.state == "failed"
    assert "paused" in verdict.detail


@pytest.mark.parametrize("updating, state", [
    ("updating", "pending"), ("completed", "healthy"), ("rollback_completed", "healthy"),
    (None, "healthy")])
def test_an_update_in_progress_is_not_healthy_yet(updating, state):
    assert judge([task("running")], 1, parse_time(iso(5)), False, updating).state == state


def test_zero_desired_is_healthy_at_once():
    assert judge([], 0, None, False).state == "healthy"


def test_stopped():
    assert stopped([])
    assert stopped([task("shutdown", desired="shutdown"), task("failed", desired="shutdown"),
                    task("complete", desired="shutdown")])
    for state in ("running", "starting", "pending", "preparing", "new", "assigned"):
        assert not stopped([task("shutdown"), task(state)])


# -- Rollout over an in-memory swarm ---------------------------------------------------
class Clock:
    """Time moves only when the rollout sleeps."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class Swarm:
    """Services become healthy `ready[name]` seconds after they were launched, fail when
    in `fail`, and stop `stop_after` seconds after being scaled to 0."""

    def __init__(self, clock: Clock, ready: dict | None = None, fail: dict | None = None,
                 stop_after: float = 1.0) -> None:
        self.clock, self.ready, self.fail = clock, ready or {}, fail or {}
        self.stop_after = stop_after
        self.launched: dict = {}    # swarm name -> launch time
        self.scaled: dict = {}      # swarm name -> time scaled to 0
        self.log: list = []         # ("act"|"scale"|"remove", name, time)

    # what the rollout asks
    def now(self):
        return parse_time(iso(self.clock.t))

    def service(self, name: str) -> ServiceState | None:
        return ServiceState(name) if name in self.launched else None

    def tasks(self, name: str) -> list[Task]:
        if name in self.scaled:
            gone = self.clock.t - self.scaled[name] >= self.stop_after
            return [task("shutdown" if gone else "running", self.clock.t,
                         desired="shutdown")]
        if name not in self.launched:
            return []
        began = self.launched[name]
        if name in self.fail:
            return [task("failed", self.clock.t, created=began, err=self.fail[name],
                         node="node-b")]
        up = self.clock.t - began >= self.ready.get(name, 0.0)
        return [task("running" if up else "starting", self.clock.t, created=began)]

    def scale(self, name: str, replicas: int) -> None:
        self.log.append(("scale", name, self.clock.t))
        self.scaled[name] = self.clock.t

    def remove_service(self, name: str) -> None:
        self.log.append(("remove", name, self.clock.t))

    # what the launches do
    def launcher(self, name: str):
        def act():
            self.log.append(("act", name, self.clock.t))
            self.launched[name] = self.clock.t
        return act


def launches(swarm: Swarm, graph: dict) -> list[Launch]:
    return [Launch(name, name, tuple(needs), 1, swarm.launcher(name))
            for name, needs in graph.items()]


def rollout(swarm: Swarm, events: list | None = None, **kwargs) -> Rollout:
    progress = (lambda s, state, d: events.append((state, s))) if events is not None else None
    return Rollout(swarm, progress, clock=swarm.clock, sleep=swarm.clock.sleep,
                   poll_s=0.5, **kwargs)


DIAMOND = {"front": ["shop", "blog"], "shop": ["db"], "blog": ["db", "cache"], "db": [],
           "cache": []}
DEEP = {"a": ["b", "e"], "b": ["c"], "c": ["d", "f"], "d": [], "e": ["g"], "f": [], "g": []}


def acted(swarm: Swarm) -> dict:
    return {name: t for kind, name, t in swarm.log if kind == "act"}


def assert_needs_first(graph: dict, events: list) -> None:
    """Each service is launched only after every service it needs reported healthy."""
    healthy = set()
    for state, name in events:
        if state == "starting":
            assert set(graph[name]) <= healthy, f"{name} started before {graph[name]}"
        elif state == "healthy":
            healthy.add(name)
    assert healthy == set(graph)


@pytest.mark.parametrize("graph", [DIAMOND, DEEP], ids=["diamond", "depth-4"])
def test_each_service_starts_after_all_it_needs_is_healthy(graph):
    clock, events = Clock(), []
    ready = {name: 1.0 + len(name) for name in graph}
    swarm = Swarm(clock, ready)
    done = rollout(swarm, events).start(launches(swarm, graph))
    assert sorted(done) == sorted(graph)
    assert_needs_first(graph, events)
    assert [name for kind, name, _ in swarm.log] == [n for s, n in events if s == "starting"]


def test_siblings_start_in_the_same_round():
    clock = Clock()
    swarm = Swarm(clock, {"db": 2.0, "cache": 1.0, "shop": 1.0, "blog": 1.0, "front": 1.0})
    rollout(swarm).start(launches(swarm, DIAMOND))
    times = acted(swarm)
    assert times["db"] == times["cache"] == 0.0
    # db is seen healthy at 2.0; what needs it is launched on the next round
    assert times["shop"] == times["blog"] == 2.5
    assert times["front"] == 4.0


def test_a_slow_branch_does_not_delay_an_independent_sibling():
    # root needs left and right; left waits for a slow leaf, right for a fast one
    graph = {"root": ["left", "right"], "left": ["slow"], "right": ["fast"], "slow": [],
             "fast": []}
    clock = Clock()
    swarm = Swarm(clock, {"slow": 10.0, "fast": 1.0, "left": 1.0, "right": 1.0, "root": 1.0})
    r = rollout(swarm)
    r.start(launches(swarm, graph))
    order = [name for kind, name, _ in swarm.log]
    times = acted(swarm)
    assert times["right"] == 1.5          # not held back until "slow" is healthy (10.0)
    assert order.index("right") < order.index("left")
    assert times["left"] == 10.5 and times["root"] == 12.0
    assert r.timings["right"] == [1.5, 2.5]
    # the whole start takes the critical path: slow, left, root (a poll each)
    assert clock.t == 13.0


def test_a_failed_task_names_service_server_and_output_and_stops_launching():
    clock, events, explained = Clock(), [], []
    swarm = Swarm(clock, {"db": 1.0, "shop": 5.0}, fail={"cache": "task: non-zero exit (3)"})

    def explain(t):
        explained.append(t)
        return "node-b", "redis: cannot bind\nexit 3"
    r = rollout(swarm, events, explain=explain)
    with pytest.raises(RolloutFailed) as caught:
        r.start(launches(swarm, DIAMOND))
    e = caught.value
    assert (e.service, e.server) == ("cache", "node-b")
    assert e.output == "redis: cannot bind\nexit 3"
    assert "cache on node-b: task: non-zero exit (3)" in e.message
    assert "    redis: cannot bind" in e.message and "    exit 3" in e.message
    assert explained[0].node_id == "node-b"
    assert ("failed", "cache") in events
    # what needs cache (and what needs that) was never launched
    assert set(acted(swarm)) == {"db", "cache"}


def test_a_failure_reports_what_is_left_healthy():
    clock = Clock()
    swarm = Swarm(clock, {"db": 0.0, "cache": 3.0, "shop": 0.0},
                  fail={"blog": "boom"})
    with pytest.raises(RolloutFailed) as caught:
        rollout(swarm).start(launches(swarm, DIAMOND))
    assert caught.value.service == "blog"
    assert set(caught.value.healthy) == {"db", "cache", "shop"}
    assert "front" not in acted(swarm)
    assert "left running" in caught.value.hint


def test_a_service_never_healthy_times_out():
    clock, events = Clock(), []
    swarm = Swarm(clock, {"db": 1.0, "cache": 1000.0})
    with pytest.raises(RolloutFailed) as caught:
        rollout(swarm, events, wait_s=5.0).start(launches(swarm, DIAMOND))
    assert caught.value.service == "cache"
    assert "not healthy within 5 s" in caught.value.reason
    assert "0/1 healthy (starting)" in caught.value.reason
    assert 5.0 <= clock.t <= 6.0
    assert "blog" not in acted(swarm) and "front" not in acted(swarm)
    assert ("failed", "cache") in events


def test_needs_outside_the_launches_count_as_met():
    clock = Clock()
    swarm = Swarm(clock)
    done = rollout(swarm).start([Launch("shop", "shop", ("db",), 1, swarm.launcher("shop"))])
    assert done == ["shop"]


def test_stop_scales_roots_first_and_removes_when_asked():
    clock, events = Clock(), []
    swarm = Swarm(clock, stop_after=1.0)
    services = {name: (f"x_{name}", tuple(needs)) for name, needs in DIAMOND.items()}
    done = rollout(swarm, events).stop(services, remove=True)
    scaled = {name: t for kind, name, t in swarm.log if kind == "scale"}
    removed = [name for kind, name, _ in swarm.log if kind == "remove"]
    assert scaled["x_front"] < scaled["x_shop"] == scaled["x_blog"] < scaled["x_db"]
    assert scaled["x_cache"] == scaled["x_db"]    # each once what needs it has stopped
    assert done[0] == "front" and done[-1] == "db"
    assert sorted(removed) == sorted(f"x_{n}" for n in DIAMOND)
    assert all(state in ("stopping", "removed") for state, _ in events)


def test_stop_without_remove_keeps_the_services():
    clock, events = Clock(), []
    swarm = Swarm(clock)
    services = {"web": ("x_web", ("api",)), "api": ("x_api", ())}
    assert rollout(swarm, events).stop(services) == ["web", "api"]
    assert [kind for kind, *_ in swarm.log] == ["scale", "scale"]
    assert ("stopped", "api") in events


def test_a_service_that_does_not_stop_times_out():
    clock = Clock()
    swarm = Swarm(clock, stop_after=100.0)
    with pytest.raises(RolloutFailed) as caught:
        rollout(swarm, wait_s=3.0).stop({"web": ("x_web", ())})
    assert caught.value.service == "web"
    assert "still running after 3 s" in caught.value.reason


def test_a_slot_waiting_for_its_server_is_launched_and_not_waited_on():
    clock, events = Clock(), []
    swarm = Swarm(clock, {"store-1": 1.0, "api": 1.0}, fail={})
    graph = {"store-1": [], "store-2": [], "api": ["store-1", "store-2"]}
    steps = [Launch(name, name, tuple(needs), 1, swarm.launcher(name),
                    waits_for="s2" if name == "store-2" else "")
             for name, needs in graph.items()]
    swarm.ready["store-2"] = 10**6   # its server is down: never healthy here
    done = rollout(swarm, events).start(steps)
    assert done == ["store-1", "api"]
    assert ("waiting", "store-2") in events and "store-2" in acted(swarm)
    assert acted(swarm)["api"] < 10   # the others did not wait for it

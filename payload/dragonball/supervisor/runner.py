"""Run the scripts of one event: one by one, ASCII order, each with a timeout.

Each script runs in a new session (its own process group), so a timeout can
kill everything it started, while processes it leaves behind on success (the
real server, a watch dog) keep running. Output is read from a pipe by a thread
that outlives the script: what background processes print later still reaches
the container log.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import threading
import time

from dragonball.module import Module
from dragonball.supervisor.report import TAIL_BYTES, EventReport, ScriptResult

log = logging.getLogger(__name__)
KILL_GRACE_S = 2.0
POLL_S = 0.05


class OutputTail:
    """The last `limit` bytes of a stream, kept line by line; thread-safe."""

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self._lines: collections.deque = collections.deque()
        self._size = 0
        self._limit = limit
        self._lock = threading.Lock()

    def add(self, line: bytes) -> None:
        with self._lock:
            self._lines.append(line)
            self._size += len(line)
            while self._size > self._limit and len(self._lines) > 1:
                self._size -= len(self._lines.popleft())

    def text(self) -> str:
        with self._lock:
            data = b"".join(self._lines)[-self._limit:]
        return data.decode("utf-8", errors="replace")


def _pump(stream, tail: OutputTail, sink) -> None:
    for line in iter(stream.readline, b""):
        tail.add(line)
        if sink:
            sink(line)
    stream.close()


def kill_group(proc: subprocess.Popen, grace: float = KILL_GRACE_S) -> None:
    """SIGTERM the process group of `proc`, SIGKILL it `grace` seconds later."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        if sig == signal.SIGTERM and not _group_alive(proc.pid):
            break
    proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class ActionRunner:
    """Runs a module's events. `sink(event, script, line)` receives every output line."""

    def __init__(self, module: Module, sink=None, interrupt: threading.Event | None = None):
        self.module = module
        self.sink = sink
        self.interrupt = interrupt or threading.Event()

    def run_event(self, event: str, env: dict, deadline: float | None = None,
                  phase: str = "unknown", as_event: str | None = None) -> EventReport:
        """Run every script of `event` until one fails; `deadline` is a monotonic time.

        `as_event` runs the scripts of the `event` folder under another event name
        (DRAGONBALL_EVENT, the report, the log tags): notify runs config_change's scripts.
        """
        name = as_event or event
        report = EventReport(self.module.name, name, phase=phase, folder=event)
        began = time.monotonic()
        env = dict(env, DRAGONBALL_EVENT=name)
        for script in self.module.scripts[event]:
            timeout = self.module.timeouts.for_script(event, script)
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
            result = self.run_script(event, script, env, timeout, tag=name)
            report.scripts.append(result)
            if not result.ok:
                break
        report.duration_s = time.monotonic() - began
        return report

    def run_script(self, event: str, script: str, env: dict, timeout: float,
                   tag: str | None = None) -> ScriptResult:
        """Run one script with `timeout` seconds; kill its process group on expiry.

        Its output lines reach the sink as (`tag` or `event`, script, line).
        """
        if timeout <= 0:
            return ScriptResult(script, None, timed_out=True,
                                error="was not run: the time for this event was used up")
        path = self.module.script_path(event, script)
        began = time.monotonic()
        try:
            proc = subprocess.Popen([path], cwd=self.module.root, env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            return ScriptResult(script, None, error=f"could not be started: {e.strerror}")
        tail = OutputTail()
        sink = (lambda line: self.sink(tag or event, script, line)) if self.sink else None
        reader = threading.Thread(target=_pump, args=(proc.stdout, tail, sink),
                                  name=f"output-{event}-{script}", daemon=True)
        reader.start()
        timed_out = self._wait(proc, began + timeout)
        if timed_out or (self.interrupt.is_set() and proc.returncode is None):
            kill_group(proc)
        # background children may keep the pipe open: take the tail, leave the reader
        reader.join(timeout=0.2)
        return ScriptResult(script, proc.returncode, timed_out,
                            time.monotonic() - began, tail.text())

    def _wait(self, proc: subprocess.Popen, deadline: float) -> bool:
        """Wait for `proc`; True when the deadline passed first. Stops early on interrupt."""
        while True:
            try:
                proc.wait(timeout=max(0.0, min(POLL_S, deadline - time.monotonic())))
                return False
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    return True
                if self.interrupt.is_set():
                    return False

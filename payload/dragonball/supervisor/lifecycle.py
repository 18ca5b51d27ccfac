"""The life of a module container: start, wait, stop; and the events run on demand.

`Supervisor.run` is the container's main process (behind tini): it runs the
start scripts, keeps their background processes adopted and reaped, and on
SIGTERM runs the stop scripts within the grace period, then ends what is left.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from dragonball.module import Module
from dragonball.supervisor import procs, storage_lock
from dragonball.supervisor.notification import NotifyReport, SeqRecord
from dragonball.supervisor.params import LIVE_FILE, merge, open_store, to_env, write_private
from dragonball.supervisor.report import EventReport
from dragonball.supervisor.runner import KILL_GRACE_S, ActionRunner
from dragonball.supervisor.runtime import Runtime

log = logging.getLogger(__name__)
DEFAULT_STOP_GRACE_S = 10.0


class Supervisor:
    """Drives one valid module in its runtime."""

    def __init__(self, runtime: Runtime, module: Module) -> None:
        self.runtime = runtime
        self.module = module
        self.params = open_store(module.path("storage"), runtime.run_dir, runtime.environ)
        self.stop_requested = threading.Event()
        self.stop_at = 0.0
        self._out_lock = threading.Lock()

    # -- the container's life --------------------------------------------------
    def run(self) -> int:
        """Start, wait for SIGTERM, stop. The exit code of the container."""
        for folder in ("log", "storage"):
            os.makedirs(self.module.path(folder), exist_ok=True)
        if not procs.become_subreaper():
            log.warning("could not become a subreaper: daemonized processes may escape stop")
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.runtime.set_phase("starting")
        # held until the process ends: no second container of this slot on its data
        self._storage_fd = storage_lock.hold(self.module.path("storage"), self.stop_requested)
        if self._storage_fd is None:   # stopped while another container held the data
            self.runtime.set_phase("stopped")
            return 0
        runner = ActionRunner(self.module, sink=self._forward, interrupt=self.stop_requested)
        report = runner.run_event("start", self._env(self.params.at_start()), phase="starting")
        self._record(report)
        if self.stop_requested.is_set():
            return self._stop()
        if not report.ok:
            self.runtime.set_phase("failed")
            procs.end_descendants(KILL_GRACE_S)
            return 1
        self.runtime.set_phase("running")
        log.info("%s is running", self.module.name)
        while not self.stop_requested.wait(1.0):
            procs.reap(busy=set())
        return self._stop()

    def _on_signal(self, signum: int, _frame) -> None:
        if not self.stop_requested.is_set():
            self.stop_at = time.monotonic()
            self.stop_requested.set()

    def _stop(self) -> int:
        self.runtime.set_phase("stopping")
        log.info("%s: stop requested", self.module.name)
        grace = float(self.runtime.environ.get("DRAGONBALL_STOP_GRACE") or DEFAULT_STOP_GRACE_S)
        deadline = self.stop_at + max(grace - KILL_GRACE_S, 0.5)
        self._drain(deadline)
        runner = ActionRunner(self.module, sink=self._forward)
        report = runner.run_event("stop", self._env_in_force(),
                                  deadline=deadline, phase="stopping")
        self._record(report)
        ended = procs.end_descendants(KILL_GRACE_S)
        if ended:
            log.info("ended %d process(es) left by start scripts", len(ended))
        self.runtime.set_phase("stopped")
        return 0 if report.ok else 1

    def _drain(self, deadline: float) -> None:
        """A backend behind a Service keeps serving DRAGONBALL_DRAIN_S seconds once its stop
        begins (Swarm took it out of the names first), so the Service in front re-reads its
        backends and sends it nothing more before the stop scripts close it; half of what is
        left of the grace at most, so the stop scripts keep their time."""
        try:
            drain = float(self.runtime.environ.get("DRAGONBALL_DRAIN_S") or 0)
        except ValueError:
            drain = 0.0
        drain = min(drain, max(deadline - time.monotonic(), 0) / 2)
        if drain > 0:
            log.info("%s: serving %.0f s more while the Services in front let it go",
                     self.module.name, drain)
            time.sleep(drain)

    def _forward(self, event: str, script: str, line: bytes) -> None:
        """Copy a script's output line to the container log, tagged with its origin."""
        with self._out_lock:
            sys.stdout.buffer.write(f"[{event}/{script}] ".encode() + line)
            sys.stdout.buffer.flush()

    # -- events on demand (docker exec) ------------------------------------------
    def status(self) -> EventReport:
        """Healthy when every status script exits 0 and start has finished."""
        report = self._on_demand("status")
        report.require_running = True
        if not report.ok:
            log.warning("%s", report.summary())
        return report

    def info(self) -> EventReport:
        return self._on_demand("info")

    def config_change(self, change: dict, replace: bool = False) -> EventReport:
        """Run config_change with the merged parameters; persist them on success."""
        with self.params.locked():
            old = self.params.in_force()
            new = merge(old, change, replace)
            env = self._env(new, "params.new.json")
            env["DRAGONBALL_OLD_PARAMS_FILE"] = self._write_params(old, "params.old.json")
            report = self._run_logged("config_change", env)
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            if report.ok:
                self.params.save(new)
                self._write_params(new, LIVE_FILE)
            log.info("%s; changed keys: %s; %s", report.summary(), ", ".join(changed) or "none",
                     "persisted" if report.ok else "NOT persisted, old parameters kept")
        self._record(report, quiet_ok=True)
        return report

    def notify(self, note: dict) -> NotifyReport:
        """Run config_change scripts for a (valid) notification, parameters unchanged.

        A `seq` at or below the last one handled here is acknowledged without running
        anything; the seq is recorded only when the scripts succeeded, so the portal's
        retry of a failed notification runs them again.
        """
        seqs = SeqRecord(self.runtime.run_dir)
        with self.params.locked():
            last = seqs.last()
            if note["seq"] <= last:
                report = NotifyReport(self.module.name, "notify", phase=self.runtime.phase(),
                                      folder="config_change", seq=note["seq"],
                                      duplicate=True, last_seq=last)
                log.info("%s", report.summary())
                return report
            params = self.params.in_force()
            env = self._env(params, "params.new.json")
            env["DRAGONBALL_OLD_PARAMS_FILE"] = self._write_params(params, "params.old.json")
            env["DRAGONBALL_NOTIFICATION_FILE"] = self._write_params(note, "notification.json")
            report = NotifyReport(**vars(self._run_logged("config_change", env, "notify")),
                                  seq=note["seq"])
            if report.ok:
                seqs.record(note["seq"])
            log.info("%s; %s %s; %s", report.summary(), note["service"], note["event"],
                     "recorded" if report.ok else "NOT recorded, the portal will retry it")
        self._record(report, quiet_ok=True)
        return report

    def _run_logged(self, event: str, env: dict, as_event: str | None = None) -> EventReport:
        """Run `event` from a `docker exec`, copying its output to the container log."""
        log_out = self.runtime.supervisor_output()
        phase = self.runtime.phase()
        if log_out is None:
            return ActionRunner(self.module).run_event(event, env, phase=phase, as_event=as_event)
        with log_out:
            sink = (lambda ev, script, line:
                    log_out.write(f"[{ev}/{script}] ".encode() + line))
            return ActionRunner(self.module, sink=sink).run_event(
                event, env, phase=phase, as_event=as_event)

    def _on_demand(self, event: str) -> EventReport:
        env = self._env_in_force()
        return ActionRunner(self.module).run_event(event, env, phase=self.runtime.phase())

    # -- helpers -------------------------------------------------------------------
    def _env(self, params: dict, name: str = LIVE_FILE) -> dict:
        path = self._write_params(params, name)
        return self.runtime.script_env(self.module, path, to_env(params))

    def _env_in_force(self) -> dict:
        """The environment of an event that changes no parameters (status, info, stop)."""
        params = self.params.in_force()
        path = self.params.current_file()
        if path is None:
            return self._env(params)
        return self.runtime.script_env(self.module, path, to_env(params))

    def _write_params(self, params: dict, name: str) -> str:
        path = os.path.join(self.runtime.run_dir, name)
        write_private(path, params)
        return path

    def _record(self, report: EventReport, quiet_ok: bool = False) -> None:
        if not report.ok:
            log.error("%s", report.render())
        elif not quiet_ok:
            log.info("%s", report.summary())

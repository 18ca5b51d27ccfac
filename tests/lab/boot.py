"""Waiting for a server's systemd to finish booting, and saying why when it does not."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .docker_cli import Docker
from .errors import LabError

log = logging.getLogger(__name__)

BOOTED = ("running", "degraded")
BROKEN = ("maintenance", "stopping")
POLL_S = 0.2
# One `is-system-running --wait` call waits at most this long, so a container that
# dies meanwhile is noticed.
CALL_S = 15


class BootWatch:
    """Asks a server's systemd how its boot goes (`systemctl is-system-running`)."""

    def __init__(self, docker: Docker, container: Callable[[str], str]) -> None:
        self.docker = docker
        self.container = container

    def state(self, container: str, wait: bool = False, timeout: float = CALL_S) -> str:
        """systemd's state ('running', 'starting', ...) or what stood in the way."""
        argv = ["exec", container, "systemctl", "is-system-running", *(["--wait"] if wait else [])]
        try:
            outcome = self.docker(*argv, check=False, timeout=timeout)
        except LabError:  # the call itself timed out: still booting
            return "starting"
        text = (outcome.stdout.strip() or outcome.stderr.strip()).splitlines()
        state = text[-1] if text else "unknown"
        log.debug("%s: systemd %s", container, state)
        return state

    def wait(self, server: str, timeout: float) -> list[str]:
        """Wait until `server` has booted; return its failed units (empty when running)."""
        container, deadline = self.container(server), time.monotonic() + timeout
        state = "not asked yet"
        while (left := deadline - time.monotonic()) > 0:
            state = self.state(container, wait=True, timeout=min(CALL_S, max(left, 1)))
            if state in BOOTED:
                return self.failed_units(container) if state == "degraded" else []
            if state in BROKEN:
                raise self._stuck(server, f"systemd is in state {state!r}")
            if "running" in state or "No such container" in state:  # the exec was refused
                self._require_running(server)
            time.sleep(POLL_S)
        raise self._stuck(server, f"systemd did not finish booting within {timeout:.0f} s "
                                  f"(last state: {state!r})")

    def failed_units(self, container: str) -> list[str]:
        outcome = self.docker("exec", container, "systemctl", "--failed", "--no-legend",
                              "--plain", check=False)
        return [line.split()[0] for line in outcome.stdout.splitlines() if line.split()]

    def _require_running(self, server: str) -> None:
        container = self.container(server)
        info = self.docker.inspect("container", container)
        if info is None:
            raise LabError(f"server {server} ({container}) disappeared while booting",
                           "did another process take the lab down?")
        if not info["State"]["Running"]:
            raise self._stuck(server, f"its container exited with status "
                                      f"{info['State']['ExitCode']} while booting")

    def _stuck(self, server: str, what: str) -> LabError:
        container = self.container(server)
        logs = self.docker("logs", "--tail", "15", container, check=False)
        tail = (logs.stdout + logs.stderr).strip().splitlines()[-15:]
        detail = "".join(f"\n  | {line}" for line in tail) or "\n  | (no output)"
        jobs = self._waiting_jobs(container)
        detail += f"\n  waiting jobs: {', '.join(jobs)}" if jobs else ""
        hint = (f"look inside: docker exec -it {container} systemctl list-jobs; "
                f"its whole console: docker logs {container}")
        if any("Too many open files" in line for line in tail):
            hint = ("systemd ran out of inotify instances: raise fs.inotify.max_user_instances "
                    "(docs/lab.md, 'Pitfalls')")
        return LabError(f"server {server} ({container}) did not boot: {what}; "
                        f"its console:{detail}", hint)

    def _waiting_jobs(self, container: str) -> list[str]:
        """Units systemd still has jobs for (`systemctl list-jobs`: id, unit, type, state)."""
        listing = self.docker("exec", container, "systemctl", "list-jobs", "--no-legend",
                              "--plain", check=False, timeout=10)
        return [line.split()[1] for line in listing.stdout.splitlines() if len(line.split()) > 1]

"""Faults to inject into a lab (tests/lab): power loss, a lost server, a killed engine, a
network partition between servers, a full data disk. The chaos bench (bench/chaos.py) and
the e2e tests (tests/e2e/test_lab_faults.py) use them; docs/lab.md, "Faults", says what
each does and how it is undone.

Each fault is an object with `do()` and `undo()`, and a context manager that undoes on exit,
even when the body raised:

    with power_loss(lab, ["s1", "s2", "s3"]) as fault:    # docker kill each
        ...                                                 # the servers are off
    fault.timings   # {"effect_s": ..., "restore_s": ..., "boot_s": {...}}: all booted again

    lost = lose_server(lab, "s2").do(); ...; lost.undo()   # or bring_back(lab, "s2")
    with kill_dockerd(lab, "s2") as fault: ...             # kill -9; systemd restarts it
    fault.timings["restarted_s"]                           # how long systemd took
    with partition(lab, "s3"): ...                         # s3 cut off from s1, s2 (both ways)
    with fill_disk(lab, "s2", "/var/lib/docker/volumes/v/_data"): ...   # ENOSPC there

`do()` checks that the fault took effect (a killed server is not running, a cut server
cannot reach its peers, a full disk refuses a write) and raises `FaultError` when not;
`undo()` checks that everything is back. Undo runs each recorded step even when one fails,
and is safe to call twice. `FaultUnavailable` says a fault cannot run on this machine
(e.g. no loop devices) and why. Times are `time.monotonic()` values, the clock the load
generator's ledger (tests/ledger.py) uses, so the two line up.

Only the lab's containers are touched, through the docker client: firewall rules are
added inside the servers' own network namespaces (never the host's), and a full disk is a
small loop-mounted file system of one server's own, never the host's disk (MACHINE.md).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Sequence

from . import fault_plan as fp
from .errors import LabError

log = logging.getLogger(__name__)

POLL_S = 0.2


class FaultError(LabError):
    """A fault did not take effect, or could not be undone completely."""


class FaultUnavailable(FaultError):
    """This fault cannot run here (the message says what is missing)."""


class Fault:
    """A fault on a lab: `do()`, `undo()`, and a context manager around them.

    Subclasses implement `_do()` (recording what to undo on `self.undo_steps` as they go,
    so a half-done fault is still undone) and `_verify_undone()`.
    """

    name = "fault"

    def __init__(self, lab, servers: Sequence[str]) -> None:
        self.lab = lab
        self.servers = [_server(s) for s in servers]
        self.undo_steps = fp.UndoStack()
        self.began: float | None = None      # do() started
        self.effective: float | None = None  # do() saw the fault in effect
        self.undo_began: float | None = None
        self.restored: float | None = None   # undo() saw everything back
        self.timings: dict = {}
        self.done = False

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(self.servers)})"

    def do(self):
        if self.done:
            raise FaultError(f"{self!r} is in effect already", "undo() it first")
        self.began = time.monotonic()
        self.done = True
        try:
            self._do()
        except BaseException:
            self.undo(quiet=True)
            raise
        self.effective = time.monotonic()
        self.timings["effect_s"] = round(self.effective - self.began, 3)
        log.info("%r in effect after %.2f s", self, self.timings["effect_s"])
        return self

    def undo(self, quiet: bool = False) -> None:
        """Restore everything `do()` changed; raise `FaultError` when something stays."""
        if not self.done:
            return
        self.undo_began = time.monotonic()
        failures = self.undo_steps.run()
        problem = None
        try:
            if not failures:
                self._verify_undone()
        except FaultError as e:
            problem = e
        self.done = False
        self.restored = time.monotonic()
        self.timings["restore_s"] = round(self.restored - self.undo_began, 3)
        if failures and not quiet:
            text = "; ".join(f"{d}: {e}" for d, e in failures)
            raise FaultError(f"undoing {self!r} left something behind: {text}",
                             "look at the servers named; tearing the lab down removes it all")
        if problem and not quiet:
            raise problem
        log.info("%r undone in %.2f s", self, self.timings["restore_s"])

    def __enter__(self):
        return self.do()

    def __exit__(self, *exc) -> None:
        # Undo even when the body failed; do not hide the body's own error behind ours.
        self.undo(quiet=exc[0] is not None)

    def _do(self) -> None:
        raise NotImplementedError

    def _verify_undone(self) -> None:
        pass


# --- power ------------------------------------------------------------------------------

class PowerLoss(Fault):
    """Power cut (`docker kill`: SIGKILL to everything in the server) of `servers`; undo
    powers them on and waits until each has booted (`timings["boot_s"]`)."""

    name = "power_loss"

    def _do(self) -> None:
        for server in self.servers:
            if not running(self.lab, server):
                raise FaultError(f"{server} is not running: cannot cut its power",
                                 "start it first (lab.start)")
        self.undo_steps.push(f"power on {', '.join(self.servers)}", self._power_on)
        _parallel(self.lab.kill, self.servers)
        still = [s for s in self.servers if running(self.lab, s)]
        if still:
            raise FaultError(f"{', '.join(still)} still running after docker kill")

    def _power_on(self) -> None:
        began = time.monotonic()
        boot = {}

        def start(server: str) -> None:
            if not running(self.lab, server):
                self.lab.start(server)   # waits until booted
            boot[server] = round(time.monotonic() - began, 3)
        _parallel(start, self.servers)
        self.timings["boot_s"] = boot

    def _verify_undone(self) -> None:
        down = [s for s in self.servers if not running(self.lab, s)]
        if down:
            raise FaultError(f"{', '.join(down)} did not come back after the power cut")


def power_loss(lab, servers: Sequence[str] | None = None) -> PowerLoss:
    """A power cut of `servers` (default: every server of the lab)."""
    return PowerLoss(lab, servers or lab.servers)


def lose_server(lab, server: str) -> PowerLoss:
    """One server lost (a power cut); `.undo()` or `bring_back(lab, server)` returns it."""
    fault = PowerLoss(lab, [server])
    fault.name = "lose_server"
    return fault


def bring_back(lab, server: str) -> float:
    """Power `server` on (if it is off) and wait until it has booted; the seconds it took."""
    began = time.monotonic()
    if not running(lab, server):
        lab.start(server)
    return time.monotonic() - began


# --- a killed service (dockerd) -------------------------------------------------------------

class KillService(Fault):
    """`kill -9` of a systemd service's main process inside one server: the engine crashing.
    Nothing is undone by hand: undo waits until systemd has restarted it (a new main PID,
    active) and, for the engine, until `docker info` answers; `timings["restarted_s"]` and
    `["ready_s"]` count from the kill. When systemd does not restart it within `timeout`,
    undo restarts it (`systemctl restart`) and raises, so the server is never left without."""

    name = "kill_service"

    def __init__(self, lab, server: str, unit: str, ready: Sequence[str] | None = None,
                 timeout: float = 90) -> None:
        super().__init__(lab, [server])
        self.unit = fp.unit_name(unit)
        self.ready = list(ready) if ready else None
        self.timeout = timeout
        self.pid = 0
        self.killed_at: float | None = None

    def __repr__(self) -> str:
        return f"{self.name}({self.servers[0]}, {self.unit})"

    def _show(self) -> dict:
        out = self.lab.exec(self.servers[0], ["systemctl", "show", "-p", "MainPID", "-p",
                                              "ActiveState", "-p", "NRestarts", self.unit])
        return fp.parse_show(out.stdout)

    def _do(self) -> None:
        server = self.servers[0]
        state = self._show()
        self.pid = int(state.get("MainPID") or 0)
        if state.get("ActiveState") != "active" or self.pid <= 0:
            raise FaultError(f"{self.unit} is not running on {server} "
                             f"({state.get('ActiveState', '?')}, pid {self.pid})",
                             f"is it installed there? systemctl status {self.unit}")
        self.timings["restarts_before"] = int(state.get("NRestarts") or 0)
        self.undo_steps.push(f"wait for systemd to restart {self.unit} on {server}",
                             self._wait_restarted)
        self.lab.exec(server, ["kill", "-9", str(self.pid)], check=True)
        self.killed_at = time.monotonic()
        if not _wait(lambda: not self.lab.exec(server, ["test", "-d", f"/proc/{self.pid}"]).ok,
                     10):
            raise FaultError(f"pid {self.pid} ({self.unit}) on {server} survived kill -9")

    def _wait_restarted(self) -> None:
        server, since = self.servers[0], self.killed_at or time.monotonic()

        def restarted() -> bool:
            state = self._show()
            pid = int(state.get("MainPID") or 0)
            return state.get("ActiveState") == "active" and pid > 0 and pid != self.pid
        if not _wait(restarted, self.timeout, since):
            self.lab.exec(server, ["systemctl", "restart", self.unit], timeout=120)
            raise FaultError(f"systemd did not restart {self.unit} on {server} within "
                             f"{self.timeout:.0f} s of the kill; restarted it by hand",
                             f"look at its unit's Restart= setting: systemctl cat {self.unit}")
        self.timings["restarted_s"] = round(time.monotonic() - since, 3)
        self.timings["restarts_after"] = int(self._show().get("NRestarts") or 0)
        if self.ready:
            if not _wait(lambda: self.lab.exec(server, self.ready, timeout=20).ok,
                         self.timeout, since):
                raise FaultError(f"{self.unit} on {server} restarted but "
                                 f"{' '.join(self.ready)} fails {self.timeout:.0f} s later")
            self.timings["ready_s"] = round(time.monotonic() - since, 3)


def kill_service(lab, server: str, unit: str, ready: Sequence[str] | None = None,
                 timeout: float = 90) -> KillService:
    return KillService(lab, server, unit, ready, timeout)


def kill_dockerd(lab, server: str, timeout: float = 90) -> KillService:
    """The engine (docker.service's dockerd) killed with -9 on `server`."""
    fault = KillService(lab, server, "docker.service", ["docker", "info"], timeout)
    fault.name = "kill_dockerd"
    return fault


# --- partition ----------------------------------------------------------------------------

class Partition(Fault):
    """`server` cut off from `others` (default: every other server of the lab) by iptables
    DROP rules inside the servers, both directions, in a chain of our own (fault_plan.CHAIN).
    `probe_port`: do() and undo() prove the cut and its end with TCP connects between the
    servers (a refused connection counts as reached); None checks the rules only."""

    name = "partition"

    def __init__(self, lab, server: str, others: Sequence[str] | None = None,
                 probe_port: int | None = 22) -> None:
        server = _server(server)
        others = [_server(o) for o in (others or [s for s in lab.servers if s != server])]
        if server in others or not others:
            raise FaultError(f"a partition cuts {server} off from other servers, not from "
                             f"{', '.join(others) or 'none'}")
        super().__init__(lab, [server, *others])
        self.server, self.others = server, others
        self.probe_port = probe_port

    def __repr__(self) -> str:
        return f"partition({self.server} | {', '.join(self.others)})"

    def _rules(self) -> dict[str, list[str]]:
        """Per server, the addresses it must drop."""
        cut = {self.server: [self.lab.ip(o) for o in self.others]}
        cut.update({o: [self.lab.ip(self.server)] for o in self.others})
        return cut

    def _do(self) -> None:
        for server, peers in self._rules().items():
            if not running(self.lab, server):
                raise FaultError(f"{server} is not running: cannot add its firewall rules")
            self.undo_steps.push(f"remove {fp.CHAIN} on {server}",
                                 lambda s=server: self._remove(s))
            self.lab.exec(server, ["sh", "-c", fp.partition_undo()])  # a leftover chain
            for argv in fp.partition_do(peers):
                self.lab.exec(server, argv, check=True)
            for argv in fp.partition_check():
                self.lab.exec(server, argv, check=True)
        if self.probe_port is not None:
            reached = [pair for pair, ok in self.reachability().items() if ok]
            if reached:
                raise FaultError(f"the partition did not cut {', '.join(map(str, reached))}",
                                 "is another rule accepting their packets first?")

    def _remove(self, server: str) -> None:
        if not running(self.lab, server):  # a server that lost power lost its rules too
            return
        self.lab.exec(server, ["sh", "-c", fp.partition_undo()], check=True)

    def _verify_undone(self) -> None:
        if self.probe_port is None:
            return
        cut = [pair for pair, ok in self.reachability(wait=10).items() if not ok]
        if cut:
            raise FaultError(f"still cut off after the undo: {', '.join(map(str, cut))}")

    def reachability(self, wait: float = 0) -> dict[tuple[str, str], bool]:
        """(from, to) -> whether `from` reaches `to` on probe_port, both ways for each pair
        (probed at once); with `wait`, probes a pair again until it gets through or `wait`
        seconds have passed (a moment for neighbour tables after the rules go)."""
        pairs = [(self.server, o) for o in self.others] + [(o, self.server) for o in self.others]

        def probe(pair: tuple[str, str]) -> bool:
            deadline = time.monotonic() + wait
            while True:
                source, target = pair
                out = self.lab.exec(source, fp.tcp_probe(self.lab.ip(target),
                                                         self.probe_port or 22), timeout=30)
                reached = fp.probe_reached(out.returncode, out.stderr)
                if reached or time.monotonic() >= deadline:
                    return reached
                time.sleep(POLL_S)
        with concurrent.futures.ThreadPoolExecutor(len(pairs)) as pool:
            return dict(zip(pairs, pool.map(probe, pairs)))


def partition(lab, server: str, others: Sequence[str] | None = None,
              probe_port: int | None = 22) -> Partition:
    return Partition(lab, server, others, probe_port)


# --- a full disk ------------------------------------------------------------------------------

def _server(server) -> str:
    return f"s{server}" if isinstance(server, int) else str(server)


def running(lab, server: str) -> bool:
    """Whether `server`'s container runs (powered on)."""
    info = lab.docker.inspect("container", lab.container(server)) or {}
    return bool(info.get("State", {}).get("Running"))


def _parallel(step, servers: Sequence[str]) -> None:
    with concurrent.futures.ThreadPoolExecutor(max(1, min(8, len(servers)))) as pool:
        for future in [pool.submit(step, s) for s in servers]:
            future.result()


def _wait(predicate, timeout: float, since: float | None = None) -> bool:
    deadline = (since or time.monotonic()) + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)

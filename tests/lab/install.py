"""Installing DragonBall on a lab's servers from the real .bin: what the e2e tests
(tests/e2e/test_install_cluster.py) and the bench (bench/install_cluster.py) share.

    cluster = LabCluster(lab, "dist/DragonBall-0.1.0.bin")
    cluster.copy_bin()                                   # to /root on every server
    cluster.install("s1", cluster.portal_answers("s1"))  # the portal
    code = cluster.enroll()                              # `dragonball enroll --json` on s1
    cluster.install("s2", cluster.device_answers("s2", code))
    cluster.journal("s2")                                # the install journal, parsed

Answers files go to /root (0600): /tmp is a tmpfs that `docker cp` cannot reach and
the runtime is unpacked under /root too (`--target /root`), as docs/lab.md says.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import shlex
import time

import yaml

from .docker_cli import Outcome
from .errors import LabError

TARGET = "/root"
JOURNAL = "/var/lib/dragonball/install-journal.json"
ADMIN_PASSWORD = "Lab portal passphrase 7"
#: Where the portal's install leaves the runtime (docs/enrollment.md), first match wins.
RUNTIMES = ("/usr/local/bin/dragonball", "/opt/dragonball/runtime/dragonball")
#: What a bare server looks like before an install: these must not exist.
INSTALLED_PATHS = ("/var/lib/dragonball", "/opt/dragonball", "/etc/dragonball",
                   "/var/log/dragonball", "/usr/bin/docker", "/usr/local/bin/docker",
                   "/etc/systemd/system/docker.service", "/etc/systemd/system/containerd.service",
                   "/etc/docker")


@dataclasses.dataclass(frozen=True)
class Run:
    """One install run on a server: its outcome and its wall time."""

    server: str
    outcome: Outcome
    started: float   # time.time(): the servers share this machine's clock
    seconds: float

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    @property
    def output(self) -> str:
        return self.outcome.stdout + self.outcome.stderr


class LabCluster:
    """A lab whose servers get DragonBall from one .bin; s1 is the portal."""

    def __init__(self, lab, bin_path: str | os.PathLike, portal: str = "s1") -> None:
        self.lab, self.local_bin, self.portal = lab, os.fspath(bin_path), portal
        self.bin = f"{TARGET}/{os.path.basename(self.local_bin)}"
        self._runtime: str | None = None

    # --- getting the .bin there ---------------------------------------------------------

    def copy_bin(self, servers=None) -> None:
        servers = list(servers or self.lab.servers)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda s: self.lab.copy_in(s, self.local_bin, TARGET), servers))

    # --- answers --------------------------------------------------------------------------

    def portal_answers(self, server: str, **extra) -> dict:
        return {"role": "portal", "address": self.lab.ip(server),
                "admin_password": ADMIN_PASSWORD, **self.allow(), **extra}

    def device_answers(self, server: str, enrollment: dict, **extra) -> dict:
        """A device's answers from what `enroll()` returned."""
        return {"role": "device", "address": self.lab.ip(server),
                "portal": enrollment["portal"], "ca_fingerprint": enrollment["ca_fingerprint"],
                "enrollment_code": enrollment["code"], **self.allow(), **extra}

    def allow(self) -> dict:
        """The tests call the servers' agents (9443) and registry (5000) from this machine:
        its address on the lab bridge is the administrator's source (docs/security.md)."""
        return {"firewall_allow": [f"{self.lab.host_ip}/32"]}

    def write_answers(self, server: str, answers: dict, path: str = f"{TARGET}/a.yaml") -> str:
        text = yaml.safe_dump(answers, sort_keys=False)
        self.lab.exec(server, ["sh", "-c", f"umask 077; cat >{shlex.quote(path)}"], stdin=text,
                      check=True)
        return path

    # --- running --------------------------------------------------------------------------

    def install_argv(self, answers_path: str | None = None, *extra: str) -> list[str]:
        argv = [self.bin, "--target", TARGET, "install"]
        if answers_path:
            argv += ["--answers", answers_path, "--yes"]
        return argv + list(extra)

    def install(self, server: str, answers: dict | None = None, timeout: float = 900,
                answers_path: str = f"{TARGET}/a.yaml") -> Run:
        """Run install with `answers` (written to `answers_path`); never raises on failure."""
        if answers is not None:
            self.write_answers(server, answers, answers_path)
        started, began = time.time(), time.monotonic()
        outcome = self.lab.exec(server, self.install_argv(answers_path), timeout=timeout)
        return Run(server, outcome, started, time.monotonic() - began)

    def install_many(self, answers: dict, timeout: float = 900) -> dict:
        """Install `answers[server]` on each server at once; {server: Run}."""
        with concurrent.futures.ThreadPoolExecutor(len(answers) or 1) as pool:
            futures = {s: pool.submit(self.install, s, a, timeout) for s, a in answers.items()}
            return {s: f.result() for s, f in futures.items()}

    def install_cluster(self, timeout: float = 900) -> dict:
        """The .bin copied to every server, the portal installed, then every other server
        as a device at once, each with its own code: {server: Run}. Raises `LabError`
        naming the first server whose install failed, with its output's tail."""
        self.copy_bin()
        runs = {self.portal: self.install(self.portal, self.portal_answers(self.portal),
                                          timeout)}
        if runs[self.portal].ok:
            devices = [s for s in self.lab.servers if s != self.portal]
            codes = {s: self.enroll() for s in devices}
            runs.update(self.install_many({s: self.device_answers(s, codes[s])
                                           for s in devices}, timeout))
        failed = [s for s, run in runs.items() if not run.ok]
        if failed:
            raise LabError(f"the install failed on {', '.join(failed)}:\n"
                           f"{runs[failed[0]].output[-3000:]}",
                           "read the output; the journal is in " + JOURNAL)
        return runs

    def login(self, server: str | None = None) -> None:
        """`dragonball login` to the portal on `server` (default the portal), as root there,
        so that the API commands (`dragonball status`) work on it."""
        server = server or self.portal
        self.lab.exec(server, [self.runtime(), "login", "--portal",
                               f"{self.lab.ip(self.portal)}:8443", "--ca",
                               "/etc/dragonball/ca.crt", "--password-stdin"],
                      stdin=ADMIN_PASSWORD + "\n", check=True, timeout=60)

    def runtime(self) -> str:
        """The `dragonball` program the portal's install left on the portal."""
        if self._runtime is None:
            for path in RUNTIMES:
                if self.lab.exec(self.portal, ["test", "-x", path]).ok:
                    self._runtime = path
                    break
            else:
                raise LabError(f"no dragonball runtime on {self.portal} in {', '.join(RUNTIMES)}",
                               "did the portal's install finish?")
        return self._runtime

    def dragonball(self, *args: str, server: str | None = None, check: bool = True,
                   timeout: float = 120) -> Outcome:
        """Run the installed `dragonball` on the portal (or `server`)."""
        return self.lab.exec(server or self.portal, [self.runtime(), *args], check=check,
                             timeout=timeout)

    def enroll(self, ttl: str = "1h") -> dict:
        """A new one-time code from the portal: {code, ca_fingerprint, portal, ...}."""
        out = self.dragonball("enroll", "--json", "--ttl", ttl).stdout
        return json.loads(out)

    def docker(self, server: str, *args: str, check: bool = True, timeout: float = 120) -> Outcome:
        return self.lab.exec(server, ["docker", *args], check=check, timeout=timeout)

    # --- what is on a server ----------------------------------------------------------------

    def journal(self, server: str) -> dict | None:
        outcome = self.lab.exec(server, ["cat", JOURNAL])
        return json.loads(outcome.stdout) if outcome.ok else None

    def snapshot(self, server: str) -> dict:
        """What install may change: every entry under /etc (path, type, size, mode, mtime)
        and whether the folders and programs an install leaves exist."""
        listing = self.lab.exec(server, ["find", "/etc", "-xdev", "-printf",
                                         "%p %y %s %m %T@\\n"], check=True).stdout
        present = self.lab.exec(server, ["sh", "-c", " ".join(
            f"test -e {p} && echo {p};" for p in INSTALLED_PATHS)]).stdout.split()
        return {"etc": sorted(listing.splitlines()), "present": present}

    def settled_snapshot(self, server: str, within: float = 90, pause: float = 5) -> dict:
        """`snapshot` once two in a row, `pause` apart, agree: the services a join started
        (the portal's standby, its etcd member) may still write their files for a while
        on a loaded machine, and that is not what an install again would change. A
        manager's standby (it looks every 10 s) has written its portal's settings first."""
        deadline = time.monotonic() + within
        manager = self.docker(server, "info", "-f", "{{.Swarm.ControlAvailable}}",
                              check=False).stdout.strip() == "true"
        while manager and time.monotonic() < deadline and not self.lab.exec(
                server, ["test", "-e", "/etc/dragonball/portal/portal.yaml"]).ok:
            time.sleep(2)
        before = self.snapshot(server)
        while time.monotonic() < deadline:
            time.sleep(pause)
            now = self.snapshot(server)
            if now == before:
                return now
            before = now
        return before


def step_times(journal: dict) -> dict:
    """{step id: (started, finished)} of a journal's finished steps (time.time() values)."""
    return {k: (v["started"], v["finished"]) for k, v in (journal or {}).get("steps", {}).items()
            if v.get("finished")}

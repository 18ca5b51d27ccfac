"""A server tree for the installer's tests (tests/unit/test_install_*.py).

`FakeServer` is a root folder (etc/, proc/sys/, sys/fs/selinux/) plus a runner that
plays the few programs the appliers run (sysctl, modprobe, setenforce, iptables,
firewall-cmd, systemctl, docker) against that tree and records every argv.
The `server` fixture is imported by the test modules that use it.
"""

from __future__ import annotations

import os
import pathlib

import pytest

from dragonball.installer import osprep, plan
from dragonball.installer.host import Completed, Host
from dragonball.installer.journal import Journal
from test_install_osprep import load

PROGRAMS = ("sysctl", "modprobe", "setenforce", "iptables", "firewall-cmd", "systemctl",
            "docker", "dockerd")
SYSCTL_NOW = {"net/ipv4/ip_forward": "0", "fs/file-max": "9223372036854775807",
              "fs/inotify/max_user_instances": "128", "fs/inotify/max_user_watches": "8192"}


class FakeServer:
    """A server's tree under `root` and the programs the installer runs, played."""

    def __init__(self, root: pathlib.Path, programs=PROGRAMS, bridge: bool = False) -> None:
        self.root = root
        self.calls: list[list[str]] = []
        self.iptables: list[list[str]] = []
        self.firewalld: set[tuple[str, bool]] = set()
        self.units: dict[str, dict] = {}
        self.engine_up = False
        self.breaks: dict[str, Exception] = {}  # program -> raised when it runs
        self.on_call = lambda argv: None
        for folder in ("usr/sbin", "usr/bin"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for name in programs:
            path = root / "usr/sbin" / name
            path.write_text("#!/bin/sh\n")
            path.chmod(0o755)
        for key, value in SYSCTL_NOW.items():
            self.write(f"proc/sys/{key}", value + "\n")
        if bridge:
            self.load_bridge()
        (root / "etc").mkdir(exist_ok=True)

    def host(self) -> Host:
        return Host(str(self.root), runner=self, environ={"LD_LIBRARY_PATH": "/tmp/_MEI1",
                                                           "LD_LIBRARY_PATH_ORIG": "/opt/lib"})

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def read(self, rel: str) -> str | None:
        path = self.root / rel
        return path.read_text() if path.exists() else None

    def sysctl(self, key: str) -> str | None:
        text = self.read("proc/sys/" + key.replace(".", "/"))
        return text.strip() if text is not None else None

    def load_bridge(self) -> None:
        for key in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
            self.write(f"proc/sys/net/bridge/{key}", "0\n")

    def programs_run(self) -> list[str]:
        return [os.path.basename(argv[0]) for argv in self.calls]

    # --- the runner ----------------------------------------------------------------------

    def __call__(self, argv, env, timeout, stdin) -> Completed:
        assert all(isinstance(a, str) for a in argv), argv  # an argv list, never a shell
        assert "_MEI" not in env.get("LD_LIBRARY_PATH", ""), "the frozen runtime's libraries"
        self.calls.append(list(argv))
        self.on_call(list(argv))
        name = os.path.basename(argv[0])
        if name in self.breaks:
            raise self.breaks[name]
        code, out, err = getattr(self, "_" + name.replace("-", "_"))(list(argv[1:]), env)
        return Completed(tuple(argv), code, out, err)

    def _sysctl(self, args, env):
        if args[:2] == ["-e", "-p"]:
            for line in self.read(args[2].lstrip("/")).splitlines():
                if "=" in line and not line.startswith("#"):
                    key, value = (s.strip() for s in line.split("=", 1))
                    rel = "proc/sys/" + key.replace(".", "/")
                    if (self.root / rel).parent.is_dir():
                        self.write(rel, value + "\n")
            return 0, "", ""
        return 1, "", f"unexpected sysctl {args}"

    def _modprobe(self, args, env):
        self.load_bridge()
        return 0, "", ""

    def _setenforce(self, args, env):
        self.write("sys/fs/selinux/enforce", args[0])
        return 0, "", ""

    def _iptables(self, args, env):
        assert args[0] == "-w"
        op, rest = args[1], args[2:]
        if op == "-C":
            return (0 if rest in self.iptables else 1), "", ""
        if op == "-I":
            self.iptables.insert(0, [rest[0], *rest[2:]])
            return 0, "", ""
        if op == "-D":
            self.iptables.remove(rest)
            return 0, "", ""
        return 2, "", "bad"

    def _firewall_cmd(self, args, env):
        permanent = "--permanent" in args
        op, _, port = [a for a in args if a != "--permanent"][0].partition("=")
        key = (port, permanent)
        if op == "--query-port":
            return (0 if key in self.firewalld else 1), "", ""
        (self.firewalld.add if op == "--add-port" else self.firewalld.discard)(key)
        return 0, "success", ""

    def _systemctl(self, args, env):
        if args == ["daemon-reload"]:
            self.reloads = getattr(self, "reloads", 0) + 1
            return 0, "", ""
        if args[0] in ("enable", "disable", "start", "stop") and len(args) > 2:
            for unit in args[1:]:  # several units at once, as systemctl takes them
                self._systemctl([args[0], unit], env)
            return 0, "", ""
        op, unit = args[0], args[1]
        state = self.units.setdefault(unit, {"active": False, "enabled": "enabled"})
        if op == "cat":
            return (0 if (self.root / "etc/systemd/system" / unit).is_file() else 1, "", "")
        if op == "is-active":
            return (0 if state["active"] else 3), "active" if state["active"] else "inactive", ""
        if op == "is-enabled":
            return 0, state["enabled"], ""
        if op == "start":
            state["active"] = self.engine_up = True
        elif op == "stop":
            state["active"] = False
            self.engine_up = self.engine_up and unit != "docker.service"
        elif op in ("enable", "disable"):
            state["enabled"] = op + "d"
        return 0, "", ""

    def _docker(self, args, env):
        if args[0] == "info":
            return (0, "20.10.24+dfsg1\n", "") if self.engine_up else \
                (1, "", "Cannot connect to the Docker daemon")
        return 0, "", ""


@pytest.fixture
def server(tmp_path):
    return FakeServer(tmp_path / "root")


def context(server: FakeServer, tmp_path, case="bare-lab-server", role=None, answers=None):
    case_role, facts = load(case)
    journal = Journal.load(str(tmp_path / "data"))
    journal.begin("digest")
    answers = answers or type("A", (), {"role": role or case_role,
                                        "data_dir": str(server.root / "var/lib/dragonball")})()
    return plan.InstallContext(answers=answers, facts=facts, journal=journal,
                               host=server.host())


def os_steps(ctx) -> list:
    return [plan.prep_step(ctx, p) for p in osprep.os_preps(ctx.facts)] + \
        [plan.prep_step(ctx, osprep.firewall_prep(ctx.facts, ctx.role))]


def snapshot(root: pathlib.Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}

"""The few host facts no file holds, asked of the running system: the preflight adapter.

Each method returns plain data (what a captured host records in host.json) and
changes nothing: sockets are bound and closed at once, `docker` is asked for its
version only. Subprocesses get the environment the frozen runtime was started
with (`child_environment`), not its bundled libraries.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import subprocess
import time

from dragonball.installer.preflight import parse
from dragonball.shared import ports
from dragonball.shared.childenv import SEARCH_PATH, child_environment

log = logging.getLogger(__name__)

DOCKER_TIMEOUT_S = 10
PORTAL_TIMEOUT_S = 3


class LiveSystem:
    """This host, asked directly (the counterpart of a recorded host.json)."""

    def __init__(self, environ: dict | None = None) -> None:
        self._env = child_environment(os.environ if environ is None else environ)

    def uname(self) -> dict:
        u = os.uname()
        return {"machine": u.machine, "release": u.release}

    def euid(self) -> int:
        return os.geteuid()

    def glibc(self) -> str | None:
        """The server's glibc, from its own `getconf` (the frozen runtime carries a C library
        of its own, so this process's confstr would name that one); None without it."""
        program = find_program("getconf")
        if program is None:
            return None
        code, out, _ = _run([program, "GNU_LIBC_VERSION"], self._env)
        return parse.glibc_version(out.strip()) if code == 0 else None

    def now(self) -> float:
        return time.time()

    def disk(self, path: str) -> dict | None:
        """Free and total bytes of the file system that holds `path` (or would: it may not exist)."""
        existing = _existing_ancestor(path)
        try:
            st, dev = os.statvfs(existing), os.stat(existing).st_dev
        except OSError as e:
            log.debug("statvfs %s: %s", existing, e)
            return None
        return {"path": existing, "free": st.f_bavail * st.f_frsize,
                "total": st.f_blocks * st.f_frsize, "device": dev}

    def ports(self, wanted) -> dict:
        return {str(p): port_state(p.number, p.protocol) for p in wanted}

    def docker(self) -> dict:
        return docker_facts(self._env)

    def portal(self, address: str) -> dict:
        """The first of the portals ("a[,b...]") that answers on its ports, else the first's
        facts: the join needs one of them."""
        found = [portal_facts(a) for a in address.split(",")[:1]]
        for other in address.split(",")[1:]:
            if all(v == "open" for v in found[-1]["ports"].values()):
                break
            found.append(portal_facts(other))
        return next((f for f in found if all(v == "open" for v in f["ports"].values())),
                    found[0])


def _existing_ancestor(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path) and path != "/":
        path = os.path.dirname(path)
    return path


def port_state(number: int, protocol: str) -> str:
    """"free" when a socket can bind `number` on every address, else "in use" or the error."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            sock = socket.socket(family, kind)
        except OSError:
            continue  # no IPv6 on this host: nothing can listen there either
        try:
            if protocol == "tcp":  # a port in TIME_WAIT is free to listen on
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address, number))
        except OSError as e:
            return "in use" if e.errno == errno.EADDRINUSE else f"cannot bind: {e.strerror}"
        finally:
            sock.close()
    return "free"


def find_program(name: str) -> str | None:
    for folder in SEARCH_PATH:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which(name)


def _run(argv: list, env: dict) -> tuple[int, str, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env,
                              timeout=DOCKER_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, "", str(e)
    return done.returncode, done.stdout, done.stderr


def docker_facts(env: dict) -> dict:
    """The Docker engine on this host: its client, server (when it answers) and dockerd versions."""
    facts = {"binary": find_program("docker"), "client": None, "server": None,
             "dockerd": None, "swarm": None, "error": None}
    dockerd = find_program("dockerd")
    if dockerd:
        facts["dockerd"] = parse.dockerd_version(_run([dockerd, "--version"], env)[1])
    if not facts["binary"]:
        return facts
    facts["podman"] = is_podman(facts["binary"])
    if facts["podman"]:
        return facts   # its "docker version" is Podman's: no Docker engine to speak of
    code, out, err = _run([facts["binary"], "version", "--format", "{{json .}}"], env)
    facts.update(parse.docker_version(out))
    if facts["server"]:
        code, out, err = _run([facts["binary"], "info", "--format",
                               "{{.Swarm.LocalNodeState}}"], env)
        facts["swarm"] = out.strip() or None
    elif err.strip():
        facts["error"] = err.strip().splitlines()[-1]
    return facts


def is_podman(binary: str) -> bool:
    """Whether the `docker` command is Podman's (podman-docker: a script that runs podman,
    or a link to it), by the file itself: nothing is run."""
    try:
        if os.path.basename(os.path.realpath(binary)) == "podman":
            return True
        with open(binary, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"#!") and b"podman" in head


def portal_facts(address: str) -> dict:
    """Whether the portal at `address` ("host" or "host:port") accepts TCP connections.

    Its web port (8443 unless `address` names one) and Swarm's management port are tried.
    """
    host, port = parse.address(address, ports.PORTAL)
    targets = (port, ports.SWARM_MANAGEMENT)
    return {"address": address, "ports": {f"{p}/tcp": _connect(host, p) for p in targets}}


def _connect(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=PORTAL_TIMEOUT_S):
            return "open"
    except OSError as e:
        return e.strerror or str(e)


class RecordedSystem:
    """Answers recorded from a host (a captured case's "system" in case.json), replayed.

    The shape is LiveSystem's answers: {"uname", "euid", "glibc", "now", "disk": {path:
    ...}, "ports": {"2377/tcp": ...}, "docker", "portal": {address: ...}}.
    """

    def __init__(self, answers: dict) -> None:
        self._a = answers

    def uname(self) -> dict:
        return self._a["uname"]

    def euid(self) -> int:
        return self._a["euid"]

    def glibc(self) -> str | None:
        return self._a.get("glibc")

    def now(self) -> float | None:
        return self._a.get("now")

    def disk(self, path: str) -> dict | None:
        return self._a.get("disk", {}).get(path)

    def ports(self, wanted) -> dict:
        recorded = self._a.get("ports", {})
        return {str(p): recorded.get(str(p), "not recorded") for p in wanted}

    def docker(self) -> dict:
        return self._a["docker"]

    def portal(self, address: str) -> dict:
        return self._a["portal"][address]

"""The engine steps (adapter): the bundled .debs installed offline, configured, started.

    engine.unpack    the .bin's engine section streamed to <data_dir>/engine/, each .deb's
                     SHA-256 checked against packages.json (nothing extracted twice)
    engine.packages  dpkg -i of every missing or older package in one call, noninteractive,
                     with a policy-rc.d that keeps services from starting meanwhile;
                     no apt, no network
    engine.config    /etc/docker/daemon.json: log rotation, default ulimits (merged)
    engine.start     systemctl enable + start where systemd is PID 1, else dockerd in its
                     own session with a pid file under /run/dragonball; then `docker info`

A compatible engine already running is used as it is (one step, nothing recorded);
one installed but stopped is only started.

The .debs' copying and checking (on the section's stream) is `engine/unpack.py`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time

from dragonball.errors import InstallerError
from dragonball.installer import osprep
from dragonball.installer.engine import rules
from dragonball.installer.apply import missing_dirs, undo_file, write_file
from dragonball.installer.engine.unpack import PACKAGES_JSON, unpack_debs
from dragonball.installer.processes import pid_alive, terminate
from dragonball.installer.steps import Step
from dragonball.installer.undo import undoer
from dragonball.shared import paths

log = logging.getLogger(__name__)

POLICY_RC_D = "/usr/sbin/policy-rc.d"
POLICY_SCRIPT = ("#!/bin/sh\n# DragonBall: no service starts while the engine's packages "
                 "install (removed right after)\nexit 101\n")
RUN_DIR = "/run/dragonball"
DOCKERD_PIDFILE = f"{RUN_DIR}/dockerd.pid"
DOCKERD_LOG = f"{paths.LOG_DIR}/dockerd.log"
SERVICE = "docker.service"
#: Folders the engine's packages or its first start create, and files the engine (not
#: dpkg) writes in them: reset removes them when they were not there before install.
ENGINE_FOLDERS = ("/etc/docker", "/etc/cni", "/etc/cni/net.d")
ENGINE_WRITES = ("/etc/docker/key.json",)  # dockerd 20.10's identity; containerd makes cni
INSTALL_STEPS = ("engine.unpack", "engine.packages", "engine.config")
DPKG_TIMEOUT_S = 900
DPKG_LOCK_WAIT_S = 300
ENGINE_WAIT_S = 90


def engine_steps(ctx) -> list[Step]:
    started = any(step in ctx.journal.steps for step in INSTALL_STEPS)
    path = rules.engine_path(ctx.facts, started)
    docker = ctx.facts.docker or {}
    if path == rules.USE:
        return [Step("engine.use", f"use the running Docker engine {docker.get('server')}",
                     lambda: wait_engine(ctx.host) and {})]
    start = Step("engine.start", "start the Docker engine", lambda: start_engine(ctx))
    if path == rules.START:
        return [start]
    return [Step("engine.unpack", "unpack the engine's packages", lambda: unpack(ctx)),
            Step("engine.packages", "install the engine's packages (dpkg, offline)",
                 lambda: install_packages(ctx)),
            Step("engine.config", "configure the engine (daemon.json)", lambda: configure(ctx)),
            start]


def engine_dir(ctx) -> str:
    return os.path.join(ctx.data_dir, "engine")


# --- engine.unpack ---------------------------------------------------------------------------

def unpack(ctx) -> dict:
    undo = ctx.undo("engine.unpack")
    folder = engine_dir(ctx)
    if not ctx.host.exists(folder):
        undo.note("dir", {"kind": "tree", "path": folder})
    ctx.host.make_dirs(folder, mode=0o700)
    with ctx.engine_tar() as stream:
        written = unpack_debs(stream, ctx.host.path(folder), ctx.progress.update)
    log.info("engine packages in %s: %d written, the others already there", folder, written)
    return undo.entries()


# --- engine.packages -------------------------------------------------------------------------

def dpkg_state(host, names: list) -> dict:
    done = host.run(["dpkg-query", "-W", "-f", rules.DPKG_QUERY_FORMAT, *names], check=False)
    return rules.parse_dpkg_query(done.out)  # exit 1 lists the unknown names on stderr


def install_packages(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("engine.packages")
    folder = engine_dir(ctx)
    listing = host.read_text(os.path.join(folder, PACKAGES_JSON))
    if listing is None:
        raise InstallerError(f"{folder}/{PACKAGES_JSON} is missing",
                             "run install again: the unpack step writes it")
    bundled = json.loads(listing)["packages"]
    state = dpkg_state(host, [p["name"] for p in bundled])
    undo.note("packages", {
        "kind": "packages",
        "absent_before": [p for p in ENGINE_FOLDERS if not host.exists(p)],
        "docker_group": has_group(host, "docker"),  # docker.io's postinst adds it
        "installed": [p["name"] for p in bundled if rules.is_absent(state.get(p["name"]))],
        "upgraded": {p["name"]: state[p["name"]][0] for p in bundled
                     if not rules.is_absent(state.get(p["name"]))
                     and rules.compare_versions(state[p["name"]][0], p["version"]) < 0}})
    wanted = rules.packages_to_install(bundled, state)
    if wanted:
        ctx.progress.update(f"dpkg is installing {len(wanted)} packages: "
                            + ", ".join(p["name"] for p in wanted))
        with policy_rc_d(host, undo):
            run_dpkg(host, [os.path.join(folder, p["filename"]) for p in wanted])
    missing = rules.packages_to_install(bundled, dpkg_state(host, [p["name"] for p in bundled]))
    if missing:
        raise InstallerError("dpkg finished but these packages are not installed: "
                             + ", ".join(p["name"] for p in missing),
                             "see /var/log/dragonball/install.log for dpkg's output")
    return undo.entries()


class policy_rc_d:
    """/usr/sbin/policy-rc.d saying no (101) to every service start, then as it was."""

    def __init__(self, host, undo) -> None:
        self.host, self.undo = host, undo

    def __enter__(self):
        if self.host.read_text(POLICY_RC_D) == POLICY_SCRIPT:  # ours, left by a killed run
            self.undo.note(f"file:{POLICY_RC_D}", {"kind": "file", "path": POLICY_RC_D,
                                                   "before": None, "mode": None,
                                                   "created_dirs": []})
        write_file(self.host, self.undo, POLICY_RC_D, POLICY_SCRIPT, 0o755)
        return self

    def __exit__(self, *exc) -> None:
        undo_file(self.host, self.undo.get(f"file:{POLICY_RC_D}"))
        self.undo.forget(f"file:{POLICY_RC_D}")


def run_dpkg(host, debs: list) -> None:
    """dpkg -i of every .deb in one call; waits while another dpkg holds its lock."""
    argv = ["dpkg", "--force-confdef", "--force-confold", "-i", *debs]
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    deadline = time.monotonic() + DPKG_LOCK_WAIT_S
    while True:
        done = host.run(argv, check=False, timeout=DPKG_TIMEOUT_S, env=env)
        if done.ok:
            return
        if "lock" in done.err and time.monotonic() < deadline:
            log.info("dpkg is locked by another process: waiting (%s)", done.err.strip())
            time.sleep(2)
            continue
        raise InstallerError(done.describe(), "see /var/log/dragonball/install.log for dpkg's "
                             "output; 'dpkg --audit' lists packages left half-installed")


# --- engine.config ------------------------------------------------------------------------------

def configure(ctx) -> dict:
    undo = ctx.undo("engine.config")
    existing = ctx.host.read_text(rules.DAEMON_JSON)
    noted = undo.get(f"file:{rules.DAEMON_JSON}")
    # On a re-run the file may be ours already: merge into what was there first.
    original = noted["before"] if noted else existing
    config = rules.daemon_config(rules.parse_daemon_json(original),
                                  osprep.nofile_limit(ctx.facts))
    write_file(ctx.host, undo, rules.DAEMON_JSON, rules.render_daemon_json(config), 0o644)
    return undo.entries()


# --- engine.start ---------------------------------------------------------------------------------

def uses_systemd(ctx) -> bool:
    return bool((ctx.facts.init or {}).get("systemd")) and ctx.host.which("systemctl") is not None


def start_engine(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("engine.start")
    if uses_systemd(ctx) and host.run(["systemctl", "cat", SERVICE], check=False).ok:
        active = host.run(["systemctl", "is-active", SERVICE], check=False).out.strip()
        enabled = host.run(["systemctl", "is-enabled", SERVICE], check=False).out.strip()
        undo.note("service", {"kind": "service", "unit": SERVICE, "was_active": active == "active",
                              "was_enabled": enabled})
        if enabled != "enabled":
            host.run(["systemctl", "enable", SERVICE])
        ctx.progress.update("systemctl start docker")
        host.run(["systemctl", "start", SERVICE], timeout=ENGINE_WAIT_S,
                 hint="see why: journalctl -u docker --no-pager | tail -50")
    else:
        start_dockerd(ctx, undo)
    ctx.progress.update("waiting for the engine to answer")
    wait_engine(host)
    return undo.entries()


def start_dockerd(ctx, undo) -> None:
    """Without systemd: dockerd in a session of its own, its pid in /run/dragonball.

    Nothing starts it again after a reboot: docs/installer.md says how to.
    """
    host = ctx.host
    if pid_alive(host, DOCKERD_PIDFILE):
        return
    dockerd = host.which("dockerd")
    if dockerd is None:
        raise InstallerError("dockerd is not installed", "run install again")
    undo.note("dockerd", {"kind": "dockerd", "pidfile": DOCKERD_PIDFILE,
                          "created_dirs": missing_dirs(host, RUN_DIR)})
    host.make_dirs(RUN_DIR, mode=0o755)
    host.make_dirs(os.path.dirname(DOCKERD_LOG), mode=0o755)
    ctx.progress.update("starting dockerd (no systemd here)")
    with open(host.path(DOCKERD_LOG), "ab") as out:
        subprocess.Popen([host.path(dockerd), "--pidfile", host.path(DOCKERD_PIDFILE)],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         env=host.env, start_new_session=True, close_fds=True)


def wait_engine(host, timeout: float | None = None) -> str:
    """The engine's version once `docker info` answers; InstallerError after `timeout`."""
    timeout = ENGINE_WAIT_S if timeout is None else timeout
    deadline = time.monotonic() + timeout
    last = None
    while True:
        done = host.run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False,
                        timeout=30)
        if done.ok and done.out.strip():
            return done.out.strip()
        last = done
        if time.monotonic() >= deadline:
            raise InstallerError(f"the Docker engine does not answer after {timeout:.0f} s "
                                 f"({last.describe()})",
                                 f"see why: journalctl -u docker, or {DOCKERD_LOG}")
        time.sleep(0.5)


# --- undo ---------------------------------------------------------------------------------------

@undoer("tree")
def undo_tree(host, entry: dict) -> None:
    """A folder install created (the unpacked .debs): removed with what it holds."""
    shutil.rmtree(host.path(entry["path"]), ignore_errors=True)


@undoer("service")
def undo_service(host, entry: dict) -> None:
    if host.which("systemctl") is None:
        return
    if not host.run(["systemctl", "cat", entry["unit"]], check=False).ok:
        return  # its package is gone
    if not entry.get("was_active"):
        host.run(["systemctl", "stop", entry["unit"], "docker.socket"], check=False,
                 timeout=ENGINE_WAIT_S)
    if entry.get("was_enabled") not in ("enabled", "static", "alias"):
        host.run(["systemctl", "disable", entry["unit"]], check=False)


@undoer("dockerd")
def undo_dockerd(host, entry: dict) -> None:
    """The dockerd install started stopped (SIGTERM, as its service would), its folder gone."""
    pid = terminate(host, entry["pidfile"], 30)
    if pid is not None:
        raise InstallerError(f"dockerd (pid {pid}) did not stop within 30 s",
                             f"stop it yourself: kill {pid}; then run reset again")
    host.remove(entry["pidfile"])
    host.remove_empty_dirs(entry.get("created_dirs") or [])


@undoer("packages")
def undo_packages(host, entry: dict) -> None:
    """The packages install added, purged; the engine's data root is kept.

    Debian's docker.io copies a script into /var/lib/docker on remove that its purge
    then runs to delete the data root: we remove first, drop that script, then purge,
    so images and volumes survive a reset (rm -rf /var/lib/docker removes them).
    """
    # Installed, half-installed, or only config files left: all purged ("n": gone).
    names = [n for n, s in dpkg_state(host, entry["installed"]).items() if s[1][1:2] != "n"]
    if not names:
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    host.run(["dpkg", "--remove", *names], timeout=DPKG_TIMEOUT_S, env=env,
             hint="see /var/log/dragonball/reset.log for dpkg's output")
    host.remove("/var/lib/docker/nuke-graph-directory.sh")
    host.run(["dpkg", "--purge", *names], timeout=DPKG_TIMEOUT_S, env=env,
             hint="see /var/log/dragonball/reset.log for dpkg's output")
    absent = entry.get("absent_before", [])
    for path in ENGINE_WRITES:  # in folders the engine made: written by it, not by dpkg
        if any(path.startswith(folder + "/") for folder in absent):
            host.remove(path)
    host.remove_empty_dirs(absent)
    if entry.get("docker_group") is False and has_group(host, "docker"):
        host.run(["groupdel", "docker"], check=False)


def has_group(host, name: str) -> bool:
    return any(line.split(":", 1)[0] == name
               for line in (host.read_text("/etc/group") or "").splitlines())

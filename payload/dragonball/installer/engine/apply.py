"""The engine steps (adapter): the bundled engine's private tree installed as files, offline.

    engine.files   the .bin's engine section unpacked into /opt/dragonball/engine (bin/, lib/:
                   the engine with its own libraries and loader, builder/engine_tree.py),
                   each file's SHA-256 checked (nothing written twice); no dpkg, no apt, no
                   rpm: the same files on any x86_64 Linux
                   and /usr/local/bin/docker, its client
    engine.units   (systemd) containerd.service and docker.service in /etc/systemd/system
                   running the tree's programs
    engine.config  /etc/docker/daemon.json: log rotation, default ulimits (merged)
    engine.start   systemctl enable + start where systemd is PID 1, else dockerd (which then
                   runs its own containerd) in its own session with a pid file under
                   /run/dragonball; then `docker info`

A compatible engine already running is used as it is (one step, nothing recorded);
one installed but stopped is only started. `reset` removes exactly the tree, the units and
the link (the engine's data root, /var/lib/docker, stays: images and volumes survive).

The tree's copying and checking (on the section's stream) is `engine/unpack.py`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time

from dragonball.errors import InstallerError
from dragonball.installer import osprep
from dragonball.installer.engine import rules
from dragonball.installer.apply import missing_dirs, write_file
from dragonball.installer.engine.unpack import unpack_tree
from dragonball.installer.processes import pid_alive, terminate
from dragonball.installer.steps import Step
from dragonball.installer.undo import undoer
from dragonball.shared import paths

log = logging.getLogger(__name__)

RUN_DIR = "/run/dragonball"
DOCKERD_PIDFILE = f"{RUN_DIR}/dockerd.pid"
DOCKERD_LOG = f"{paths.LOG_DIR}/dockerd.log"
SERVICE = "docker.service"
UNITS = ("containerd.service", SERVICE)
UNIT_DIR = "/etc/systemd/system"
CLIENT_LINK = "/usr/local/bin/docker"
#: Folders the engine's first start creates, and files the engine writes in them: reset
#: removes them when they were not there before install.
ENGINE_FOLDERS = ("/etc/docker", "/etc/cni", "/etc/cni/net.d")
ENGINE_WRITES = ("/etc/docker/key.json",)  # dockerd 20.10's identity; containerd makes cni
INSTALL_STEPS = ("engine.files", "engine.units", "engine.config")
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
    steps = [Step("engine.files", f"install the engine's files ({paths.ENGINE_DIR})",
                  lambda: unpack(ctx))]
    if uses_systemd(ctx):
        steps.append(Step("engine.units", "write the engine's systemd units",
                          lambda: write_units(ctx)))
    return [*steps, Step("engine.config", "configure the engine (daemon.json)",
                         lambda: configure(ctx)), start]


# --- engine.files ----------------------------------------------------------------------------

def unpack(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("engine.files")
    folder = paths.ENGINE_DIR
    if not host.exists(folder):
        undo.note("tree", {"kind": "tree", "path": folder,
                           "created_dirs": missing_dirs(host, os.path.dirname(folder)),
                           "absent_before": [p for p in ENGINE_FOLDERS if not host.exists(p)]})
    host.make_dirs(folder, mode=0o755)
    started = time.monotonic()
    written = unpack_tree(ctx.engine_tar, host.path(folder), ctx.progress.update)
    log.info("engine tree in %s: %d files written in %.2f s, the others already there",
             folder, written, time.monotonic() - started)
    link_client(ctx, undo)
    return undo.entries()


def link_client(ctx, undo) -> None:
    """/usr/local/bin/docker -> the tree's client, for the people on the server (the
    installer itself finds it in the tree: childenv.SEARCH_PATH). One already there stays."""
    host = ctx.host
    link, target = host.path(CLIENT_LINK), f"{paths.ENGINE_BIN}/docker"
    if not os.path.lexists(link):
        undo.note("link", {"kind": "link", "path": CLIENT_LINK, "target": target,
                           "created_dirs": missing_dirs(host, os.path.dirname(CLIENT_LINK))})
        host.make_dirs(os.path.dirname(CLIENT_LINK))
        os.symlink(target, link)
    elif not (os.path.islink(link) and os.readlink(link) == target):
        ctx.progress.warn(f"{CLIENT_LINK} is another docker client: kept; DragonBall's is "
                          f"{target}")


# --- engine.units ----------------------------------------------------------------------------

def unit_texts(engine_dir: str = paths.ENGINE_DIR) -> dict[str, str]:
    """path -> content of the engine's two systemd units (pure; upstream's, with the tree's
    programs, and PATH naming the tree first so that dockerd finds docker-proxy and
    docker-init, containerd its shim, the shim runc; the tree's iptables last)."""
    bin_dir = f"{engine_dir}/bin"
    path = (f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:"
            f"{engine_dir}/fallback")
    common = ("Delegate=yes\nKillMode=process\nLimitNOFILE=infinity\nLimitNPROC=infinity\n"
              "LimitCORE=infinity\nTasksMax=infinity\n")
    return {
        f"{UNIT_DIR}/containerd.service": (
            "# DragonBall's engine (/opt/dragonball/engine): reset removes this file\n"
            "[Unit]\nDescription=containerd, of DragonBall's engine\n"
            "After=network.target local-fs.target\n\n"
            f"[Service]\nEnvironment=PATH={path}\nExecStart={bin_dir}/containerd\n"
            "Type=notify\nRestart=always\nRestartSec=5\nOOMScoreAdjust=-999\n"
            f"{common}\n[Install]\nWantedBy=multi-user.target\n"),
        f"{UNIT_DIR}/{SERVICE}": (
            "# DragonBall's engine (/opt/dragonball/engine): reset removes this file\n"
            "[Unit]\nDescription=Docker engine, of DragonBall's engine\n"
            "After=network-online.target firewalld.service containerd.service\n"
            "Wants=network-online.target\nRequires=containerd.service\n\n"
            f"[Service]\nType=notify\nEnvironment=PATH={path}\n"
            f"ExecStart={bin_dir}/dockerd -H unix:///var/run/docker.sock "
            "--containerd=/run/containerd/containerd.sock\n"
            "ExecReload=/bin/kill -s HUP $MAINPID\nTimeoutStartSec=0\nRestart=always\n"
            "RestartSec=2\nStartLimitBurst=3\nStartLimitInterval=60s\nOOMScoreAdjust=-500\n"
            f"{common}\n[Install]\nWantedBy=multi-user.target\n"),
    }


def write_units(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("engine.units")
    undo.note("reload", {"kind": "systemd_reload"})   # undone last: after the files went
    for path, text in unit_texts().items():
        write_file(host, undo, path, text, 0o644)
    host.run(["systemctl", "daemon-reload"], timeout=60)
    return undo.entries()


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
        undo.note("service", {"kind": "service", "unit": SERVICE, "units": list(UNITS),
                              "was_active": active == "active", "was_enabled": enabled})
        if enabled != "enabled":
            host.run(["systemctl", "enable", *UNITS])
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
    """The engine's tree install created: removed with what it holds; then the folders its
    first start made (/etc/docker, /etc/cni) when they were not there before."""
    shutil.rmtree(host.path(entry["path"]), ignore_errors=True)
    host.remove_empty_dirs(entry.get("created_dirs") or [])
    absent = entry.get("absent_before", [])
    for path in ENGINE_WRITES:  # in folders the engine made: written by it
        if any(path.startswith(folder + "/") for folder in absent):
            host.remove(path)
    host.remove_empty_dirs(absent)


@undoer("systemd_reload")
def undo_reload(host, entry: dict) -> None:
    """systemd forgets the units reset removed."""
    if host.which("systemctl") is not None:
        host.run(["systemctl", "daemon-reload"], check=False, timeout=60)


@undoer("service")
def undo_service(host, entry: dict) -> None:
    if host.which("systemctl") is None:
        return
    if not host.run(["systemctl", "cat", entry["unit"]], check=False).ok:
        return  # its package is gone
    units = entry.get("units") or [entry["unit"], "docker.socket"]
    if not entry.get("was_active"):
        host.run(["systemctl", "stop", *reversed(units)], check=False, timeout=ENGINE_WAIT_S)
    if entry.get("was_enabled") not in ("enabled", "static", "alias"):
        host.run(["systemctl", "disable", *units], check=False)


@undoer("dockerd")
def undo_dockerd(host, entry: dict) -> None:
    """The dockerd install started stopped (SIGTERM, as its service would), its folder gone."""
    pid = terminate(host, entry["pidfile"], 30)
    if pid is not None:
        raise InstallerError(f"dockerd (pid {pid}) did not stop within 30 s",
                             f"stop it yourself: kill {pid}; then run reset again")
    host.remove(entry["pidfile"])
    host.remove_empty_dirs(entry.get("created_dirs") or [])

"""The portal service's steps: portal.runtime (the runtime copied, the command linked),
portal.config, portal.store (admin account), portal.service (systemd unit, else a detached
process; then /healthz) and portal.first_code; on a device, portal.runtime and
portal.standby (the same unit running `dragonball portal standby`: installer/standby.py).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time

from rich.markup import escape

from dragonball.console import console
from dragonball.errors import InstallerError
from dragonball.installer.apply import missing_dirs, write_file
from dragonball.installer.portal.layout import (
    CA_CERT, COMMAND_LINK, EXECUTABLE, PIDFILE, PORTAL_LOG, RUNTIME_DIR, RUNTIME_PARENT,
    RUNTIME_STAMP, UNIT_NAME, UNIT_PATH, WAIT_S, bin_name, hostname_of, portal_settings,
    unit_text)
from dragonball.installer.portal import etcd as portal_etcd
from dragonball.installer.processes import terminate
from dragonball.installer import overlay as overlay_probe
from dragonball.installer import release_record
from dragonball.portal import settings as settings_mod
from dragonball.portal import statelog
from dragonball.portal.enrollment import join_instructions, print_instructions
from dragonball.shared import fingerprints, overlay
from dragonball.portal.store import ADMIN, DEFAULT_CODE_TTL_S, Store
from dragonball.release import installed
from dragonball.release.sections import BinError, bin_sections, open_section

log = logging.getLogger(__name__)


def install_runtime(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.runtime")
    path, sections = bin_sections(os.environ)
    section = sections.get("runtime")
    if section is None:
        raise BinError(f"{path} has no runtime section", "build the .bin again")
    if (host.read_text(RUNTIME_STAMP) or "").strip() != section.sha256 or \
            not host.exists(EXECUTABLE):
        if not host.exists(RUNTIME_DIR):
            undo.note("runtime", {"kind": "portal_tree", "path": RUNTIME_DIR,
                                  "created_dirs": missing_dirs(host, RUNTIME_DIR)})
        host.make_dirs(RUNTIME_PARENT, mode=0o755)
        ctx.progress.update(f"unpacking the runtime ({section.size / 1e6:.0f} MB)")
        with open(path, "rb") as f:
            view = open_section(f, section, verify=os.environ.get("DRAGONBALL_BIN_VERIFIED") != "1")
            unpack_runtime(view, host.path(RUNTIME_PARENT), host.path(RUNTIME_DIR))
        host.write_text(RUNTIME_STAMP, section.sha256 + "\n", 0o644)
    link = host.path(COMMAND_LINK)
    if os.path.islink(link) and os.readlink(link) == EXECUTABLE:
        pass
    elif os.path.lexists(link):
        ctx.progress.warn(f"{COMMAND_LINK} exists and is not ours: the portal's commands run "
                          f"as {EXECUTABLE}")
    else:
        undo.note("link", {"kind": "link", "path": COMMAND_LINK, "target": EXECUTABLE,
                           "created_dirs": missing_dirs(host, os.path.dirname(COMMAND_LINK))})
        host.make_dirs(os.path.dirname(COMMAND_LINK))
        os.symlink(EXECUTABLE, link)
    return undo.entries()


def unpack_runtime(stream, parent: str, target: str, top: str = "dragonball") -> None:
    """Unpack runtime.tar.gz (top folder `top/`) as `target`, swapped in whole at the end."""
    for stale in os.listdir(parent):
        if stale.startswith(".runtime-"):
            shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
    fresh = tempfile.mkdtemp(prefix=".runtime-new-", dir=parent)
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as tar:
            for member in tar:
                if member.name.rstrip("/") == top:
                    continue
                if not member.name.startswith(top + "/"):
                    raise BinError(f"the runtime holds {member.name!r}, outside {top}/",
                                   "build the .bin again")
                member.name = member.name[len(top) + 1:]
                if member.islnk():
                    member.linkname = member.linkname[len(top) + 1:]
                tar.extract(member, fresh, filter="data")
        if not os.access(os.path.join(fresh, "dragonball"), os.X_OK):
            raise BinError("the runtime has no dragonball executable", "build the .bin again")
        os.chmod(fresh, 0o755)
        if os.path.lexists(target):
            old = tempfile.mkdtemp(prefix=".runtime-old-", dir=parent)
            os.rename(target, os.path.join(old, "runtime"))
            os.rename(fresh, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(fresh, target)
    except (OSError, tarfile.TarError) as e:
        raise InstallerError(f"cannot unpack the runtime into {target}: {e}",
                             f"check the free space of {parent}") from e
    finally:
        if os.path.exists(fresh):
            shutil.rmtree(fresh, ignore_errors=True)


def write_config(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.config")
    settings = portal_settings(ctx, bin_name(os.environ, ctx.manifest))
    write_file(host, undo, settings_mod.CONFIG_FILE, settings.to_yaml(), 0o600)
    return undo.entries()


def open_store(ctx) -> Store:
    """The portal's store as its service opens it: replicated through the portal's etcd
    member (portal.etcd), so what the installer writes (the admin, this server, the first
    code) is in the log that every manager's portal follows (docs/portal-ha.md)."""
    settings = portal_settings(ctx, bin_name(os.environ, ctx.manifest))
    path = ctx.host.path(os.path.join(ctx.data_dir, "portal", "portal.db"))
    etcd = state_client(ctx, settings)
    if etcd is None:
        return statelog.open_store(dataclasses.replace(settings, state_endpoints=[]), path)
    return statelog.open_store(settings, path, etcd=etcd)


def state_client(ctx, settings):
    """The etcd client the installer writes the portal's state through; None when the
    settings name no replicated store."""
    if not settings.state_endpoints:
        return None
    return portal_etcd.client(ctx.host, list(settings.state_endpoints))


def make_store(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.store")
    folder = os.path.join(ctx.data_dir, "portal")
    if not host.exists(folder):
        undo.note("store", {"kind": "portal_tree", "path": folder,
                            "created_dirs": missing_dirs(host, folder)})
    password = ctx.answers.admin_password
    if not password:
        raise InstallerError("the portal needs an admin password", "answer admin_password")
    node_id = host.run(["docker", "info", "--format", "{{.Swarm.NodeID}}"], timeout=60).out.strip()
    store = open_store(ctx)
    try:
        if not store.check_admin(ADMIN, password):
            store.set_admin_password(password, ADMIN, actor="installer")
        device = store.add_portal(hostname_of(ctx), ctx.answers.address, node_id or None)
    finally:
        store.close()
    if node_id:
        argv = ["docker", "node", "update"]
        labels = {**device.labels,
                  overlay.CAPABLE: overlay.label_value(overlay_probe.probe(host))}
        for key, value in sorted(labels.items()):
            argv += ["--label-add", f"{key}={value}"]
        host.run([*argv, node_id], timeout=60)
    return undo.entries()


def uses_systemd(ctx) -> bool:
    return bool((ctx.facts.init or {}).get("systemd")) and ctx.host.which("systemctl") is not None


def start_service(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.service")
    run_unit(ctx, undo, "serve")
    settings = portal_settings(ctx, "")
    ctx.progress.update(f"waiting for {settings.url}/healthz")
    wait_portal(host, settings)
    return undo.entries()


def start_standby(ctx) -> dict:
    """portal.standby (a device): the portal's unit, waiting to be a manager."""
    undo = ctx.undo("portal.standby")
    run_unit(ctx, undo, "standby")
    return undo.entries()


def run_unit(ctx, undo, command: str) -> None:
    """dragonball-portal.service running `dragonball portal <command>`, enabled and
    (re)started; without systemd, a detached process."""
    host = ctx.host
    if uses_systemd(ctx):
        write_file(host, undo, UNIT_PATH, unit_text(ctx.answers.address, command), 0o644)
        enabled = host.run(["systemctl", "is-enabled", UNIT_NAME], check=False).out.strip()
        undo.note("service", {"kind": "portal_service", "unit": UNIT_NAME,
                              "was_enabled": enabled == "enabled"})
        host.run(["systemctl", "daemon-reload"], timeout=60)
        host.run(["systemctl", "enable", UNIT_NAME], timeout=60)
        host.run(["systemctl", "restart", UNIT_NAME], timeout=60,
                 hint=f"see why: journalctl -u {UNIT_NAME} --no-pager | tail -50")
    else:
        start_detached(ctx, undo, command)


def start_detached(ctx, undo, command: str = "serve") -> None:
    """Without systemd: the portal in a session of its own, its pid in /run/dragonball.

    Nothing starts it again after a reboot (docs/portal.md says how to)."""
    host = ctx.host
    undo.note("process", {"kind": "portal_process", "pidfile": PIDFILE})
    stop_pidfile(host, PIDFILE)
    host.make_dirs(os.path.dirname(PIDFILE), mode=0o755)
    host.make_dirs(os.path.dirname(PORTAL_LOG), mode=0o755)
    with open(host.path(PORTAL_LOG), "ab") as out:
        proc = subprocess.Popen([host.path(EXECUTABLE), "portal", command, "--config",
                                 host.path(settings_mod.CONFIG_FILE)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=host.env, start_new_session=True, close_fds=True)
    host.write_text(PIDFILE, f"{proc.pid}\n", 0o644)


def stop_pidfile(host, pidfile: str, wait_s: float = 20) -> None:
    """The detached portal stopped: SIGTERM, then SIGKILL after `wait_s`."""
    pid = terminate(host, pidfile, wait_s)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)


def wait_portal(host, settings: settings_mod.Settings, timeout: float = WAIT_S) -> None:
    """Until https://<address>:8443/healthz answers 200, verified with our CA only."""
    import requests
    session = requests.Session()
    session.trust_env = False  # this machine's REQUESTS_CA_BUNDLE must not decide
    deadline, last = time.monotonic() + timeout, ""
    while True:
        try:
            answer = session.get(settings.url + "/healthz", verify=host.path(CA_CERT), timeout=5)
            if answer.status_code == 200:
                return
            last = f"HTTP {answer.status_code}"
        except requests.RequestException as e:
            last = str(e)
        if time.monotonic() > deadline:
            raise InstallerError(f"the portal does not answer on {settings.url} after "
                                 f"{timeout:.0f} s ({last[-200:]})",
                                 f"see journalctl -u {UNIT_NAME}, or {PORTAL_LOG}")
        time.sleep(0.5)


def first_code(ctx) -> dict:
    host = ctx.host
    settings = portal_settings(ctx, bin_name(os.environ, ctx.manifest))
    store = open_store(ctx)
    try:
        code, record = store.create_code(DEFAULT_CODE_TTL_S, actor="installer")
    finally:
        store.close()
    if ctx.secrets is not None:
        ctx.secrets.add(code, code.replace("-", ""), code.replace("-", " "))
    info = join_instructions(settings, code, record.expires,
                             fingerprints.of_certificate(host.read_bytes(CA_CERT)))
    console.print(f"\n[bold]The portal is up:[/bold] {settings.url}  (user {ADMIN}, the "
                  "password you chose)")
    print_instructions(console, info, DEFAULT_CODE_TTL_S)
    console.print("More codes, any time, on this server: [bold]dragonball enroll[/bold]\n")
    offer = release_record.deploy_offer(installed.read(root=host.path(installed.RELEASE_DIR)))
    if offer:
        console.print(escape(offer) + "\n")
    log.info("first enrollment code made (code %d, valid %d s)", record.id, DEFAULT_CODE_TTL_S)
    return {}

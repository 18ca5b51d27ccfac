"""The DRAGONBALL chain on this server (shared/firewall.py says what it holds; docs/security.md,
"The network"): the step that installs it, and its undo.

    os.firewall_chain    the script (installer/firewall.sh) at SCRIPT, the members and allow
                         files (this server, loopback, the portals it was given, the
                         administrator's `firewall_allow`), the units that run the script at
                         boot and on each change of the files, and the script run once now
    firewall.members     a device's: the managers its enrollment answer listed, added

The chain is made by the script, not from here, so that a device (no Python) re-applies it
at boot and whenever its agent writes a new members list; the step only checks that the
first run worked. Without systemd the script runs once: the chain lasts until the next
boot (docs/security.md says what to run then).
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil

from dragonball.errors import InstallerError
from dragonball.installer.apply import missing_dirs
from dragonball.installer.steps import Step
from dragonball.installer.undo import undoer
from dragonball.shared import firewall as fw
from dragonball.shared import paths

log = logging.getLogger(__name__)

SCRIPT_SOURCE = pathlib.Path(__file__).with_name("firewall.sh")
UNIT_DIR = "/etc/systemd/system"
SERVICE_FILE = f"{UNIT_DIR}/{fw.UNIT}.service"
PATH_FILE = f"{UNIT_DIR}/{fw.UNIT}.path"
ENROLLMENT_JSON = f"{paths.ETC}/enrollment.json"
RUN_S = 60


# --- pure ----------------------------------------------------------------------------------

def service_unit() -> str:
    """The oneshot that applies the files; after the engine, whose start makes DOCKER-USER."""
    return ("[Unit]\n"
            "Description=DragonBall's firewall chain (docs/security.md)\n"
            "After=network-pre.target docker.service\n"
            "StartLimitIntervalSec=0\n"
            f"ConditionPathExists={fw.MEMBERS_FILE}\n\n"
            "[Service]\n"
            "Type=oneshot\n"
            f"ExecStart={fw.SCRIPT} apply\n\n"
            "[Install]\n"
            "WantedBy=multi-user.target\n")


def path_unit() -> str:
    """Runs the oneshot whenever a file is replaced (the agent renames a new one in)."""
    return ("[Unit]\n"
            "Description=Re-apply DragonBall's firewall chain when its members change\n\n"
            "[Path]\n"
            f"PathChanged={fw.MEMBERS_FILE}\n"
            f"PathChanged={fw.ALLOW_FILE}\n"
            f"Unit={fw.UNIT}.service\n\n"
            "[Install]\n"
            "WantedBy=multi-user.target\n")


def allow_of(answers) -> tuple[str, ...]:
    """The administrator's sources from the answers ("a, b" or a list), normalised."""
    text = getattr(answers, "firewall_allow", None) or ""
    return fw.sources([t for t in text.split(",") if t.strip()])


def initial_members(answers) -> tuple[str, ...]:
    """Who may reach the cluster ports before the portal sends its list: this server and,
    on a device, the portals it was given (host names are left to the portal's list)."""
    return fw.members([answers.address, *(answers.portals if answers.role == "device" else [])])


def enrollment_portals(text: str | None) -> list[str]:
    """The portal URLs the enrollment answer listed (enrollment.json), [] if none."""
    try:
        listed = json.loads(text or "{}").get("portals")
    except (ValueError, AttributeError):
        return []
    return [p for p in listed if isinstance(p, str)] if isinstance(listed, list) else []


def remove_argvs(tool: str) -> list[list[str]]:
    """What `firewall.sh remove` does for one tool, for a reset that lost the script."""
    return [[tool, "-w", "-D", "INPUT", "-j", fw.CHAIN],
            [tool, "-w", "-D", "DOCKER-USER", "-j", fw.FORWARD_CHAIN],
            *([tool, "-w", op, chain] for chain in (fw.FORWARD_CHAIN, fw.CHAIN)
              for op in ("-F", "-X"))]


# --- the steps ------------------------------------------------------------------------------

def chain_step(ctx) -> Step:
    return Step("os.firewall_chain", "the DRAGONBALL chain: cluster ports for members only",
                lambda: install_chain(ctx))


def members_step(ctx) -> Step:
    return Step("firewall.members", "the cluster's managers added to the firewall's members",
                lambda: add_enrollment_members(ctx))


def systemd_runs(host) -> bool:
    return host.exists("/run/systemd/system") and bool(host.which("systemctl"))


def install_chain(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("os.firewall_chain")
    files = {fw.SCRIPT: (SCRIPT_SOURCE.read_text(), 0o755),
             SERVICE_FILE: (service_unit(), 0o644), PATH_FILE: (path_unit(), 0o644)}
    undo.note("chain", {"kind": "firewall_chain", "folder": fw.FOLDER,
                        "files": [p for p in files if not host.exists(p)],
                        "created_dirs": sorted({d for p in (*files, fw.MEMBERS_FILE)
                                                for d in missing_dirs(host, os.path.dirname(p))})})
    for path, (text, mode) in files.items():
        host.write_text(path, text, mode)
    host.make_dirs(fw.FOLDER, mode=0o755)
    known = fw.read_sources(host.read_text(fw.MEMBERS_FILE))  # a re-run keeps the portal's
    host.write_text(fw.MEMBERS_FILE, fw.file_text(
        fw.sources([*known, *initial_members(ctx.answers)]), "the cluster's servers"))
    host.write_text(fw.ALLOW_FILE, fw.file_text(allow_of(ctx.answers),
                                                "the administrator's sources"))
    apply_now(ctx)
    return undo.entries()


def add_enrollment_members(ctx) -> dict:
    """The managers the portal listed, added to the members file (the .path unit applies
    it): the portal's own list replaces it all once this server's agent runs."""
    host = ctx.host
    listed = fw.members(enrollment_portals(host.read_text(ENROLLMENT_JSON)))
    known = fw.read_sources(host.read_text(fw.MEMBERS_FILE))
    host.write_text(fw.MEMBERS_FILE, fw.file_text(fw.sources([*known, *listed]),
                                                  "the cluster's servers"))
    if not systemd_runs(host):
        apply_now(ctx)
    return {}


def apply_now(ctx) -> None:
    """The units enabled and the script run once now, its failure the step's."""
    host = ctx.host
    if systemd_runs(host):
        host.run(["systemctl", "daemon-reload"], timeout=RUN_S)
        host.run(["systemctl", "enable", "--now", f"{fw.UNIT}.path"], timeout=RUN_S)
        host.run(["systemctl", "enable", f"{fw.UNIT}.service"], timeout=RUN_S)
    else:
        ctx.progress.warn(f"no systemd here: the {fw.CHAIN} chain is applied now but not at "
                          f"boot nor when its members change: run {fw.SCRIPT} from the init "
                          "system at boot (docs/security.md, 'The network')")
    done = host.run(["sh", fw.SCRIPT, "apply"], check=False, timeout=RUN_S)
    if not done.ok:
        raise InstallerError(f"the {fw.CHAIN} firewall chain could not be applied "
                             f"({done.describe()})", "see the message above; iptables and "
                             "iptables-restore must be installed (the engine's packages "
                             "bring them)")


# --- undo (reset) -------------------------------------------------------------------------

@undoer("firewall_chain")
def undo_chain(host, entry: dict) -> None:
    """The units stopped, the jumps and the chain gone, then the files and the folder."""
    if host.which("systemctl"):
        for unit in (f"{fw.UNIT}.path", f"{fw.UNIT}.service"):
            host.run(["systemctl", "disable", "--now", unit], check=False, timeout=RUN_S)
    if host.exists(fw.SCRIPT):
        host.run(["sh", fw.SCRIPT, "remove"], check=False, timeout=RUN_S)
    else:
        for tool in ("iptables", "ip6tables"):
            if host.which(tool):
                for argv in remove_argvs(tool):
                    while host.run(argv, check=False, timeout=RUN_S).ok and "-D" in argv:
                        pass
    for path in entry.get("files") or []:
        host.remove(path)
    if host.which("systemctl") and host.exists("/run/systemd/system"):
        host.run(["systemctl", "daemon-reload"], check=False, timeout=RUN_S)
    shutil.rmtree(host.path(entry["folder"]), ignore_errors=True)
    host.remove_empty_dirs(entry.get("created_dirs") or [])

"""What the upgrade does on this server and to the Swarm's DragonBall services: the runtime
swapped in (the previous kept) and put back, the portal's unit restarted, the node agents'
service switched, old images pruned."""

from __future__ import annotations

import os
import shutil
import subprocess

from dragonball.shared import paths
from dragonball.upgrade.errors import UpgradeFailed

RUNTIME_DIR = f"{paths.RUNTIME_PARENT}/runtime"
RUNTIME_PREVIOUS = f"{paths.RUNTIME_PARENT}/runtime.previous"
PORTAL_UNIT = "dragonball-portal.service"
UNIT_PATH = f"/etc/systemd/system/{PORTAL_UNIT}"
AGENT_SERVICE = "dragonball-agent"




def runtime_stamp(folder: str = RUNTIME_DIR) -> str:
    try:
        with open(os.path.join(folder, ".sha256"), encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def swap_runtime(open_runtime, sha256: str, parent: str = paths.RUNTIME_PARENT) -> bool:
    """The runtime whose section is `sha256` into <parent>/runtime, stamped with it (what the
    install and the agents compare); the one it replaces kept as runtime.previous. Already in
    place (a resumed upgrade): nothing done, the previous kept as it was. Whether it swapped."""
    from dragonball.installer.portal.service import unpack_runtime
    current = os.path.join(parent, "runtime")
    previous = os.path.join(parent, "runtime.previous")
    if sha256 and runtime_stamp(current) == sha256:
        return False
    if os.path.isdir(current):
        if os.path.lexists(previous):
            shutil.rmtree(previous)
        shutil.copytree(current, previous, symlinks=True)
    with open_runtime() as stream:
        unpack_runtime(stream, parent, current)
    part = os.path.join(current, ".sha256.part")
    with open(part, "w", encoding="ascii") as f:
        f.write(sha256 + "\n")
    os.replace(part, os.path.join(current, ".sha256"))
    return True


def restore_runtime(in_place: str = "", parent: str = paths.RUNTIME_PARENT) -> bool:
    """runtime.previous back as <parent>/runtime, when the runtime there is the one the
    upgrade put (`in_place`, its SHA-256; empty: whatever is there), and the portal's unit
    restarted; whether it went back."""
    current = os.path.join(parent, "runtime")
    previous = os.path.join(parent, "runtime.previous")
    if not os.path.isdir(previous) or (in_place and runtime_stamp(current) != in_place):
        return False
    aside = current + ".failed"
    if os.path.lexists(aside):
        shutil.rmtree(aside)
    if os.path.lexists(current):
        os.rename(current, aside)
    shutil.copytree(previous, current, symlinks=True)
    shutil.rmtree(aside, ignore_errors=True)
    restart_portal()
    return True


def restart_portal() -> None:
    """The portal's unit restarted on the new runtime (systemd); without systemd the portal
    is a detached process the next install re-run restarts."""
    if not os.path.exists(UNIT_PATH):
        return
    _run_tool(["systemctl", "restart", PORTAL_UNIT], "restart the portal")


def update_agent(image_id: str | None) -> None:
    if not image_id:
        return
    from dragonball.installer.agent import RUNTIME_MOUNT_ARG
    # the mount of /opt/dragonball: an agent installed before it carried runtimes lacks it
    try:
        _run_tool(["docker", "service", "update", "--detach=false", "--quiet", "--image",
                   image_id, "--no-resolve-image", "--mount-add", RUNTIME_MOUNT_ARG,
                   AGENT_SERVICE], "update the node agents", timeout=900)
    except UpgradeFailed as e:
        tasks = _run_tool(["docker", "service", "ps", "--no-trunc", "--format",
                           "{{.Node}} {{.CurrentState}} {{.Error}}", AGENT_SERVICE],
                          "list the agents' tasks", check=False)
        failed = [line for line in tasks.splitlines() if line.split(" ", 1)[-1].strip()
                  and ("Failed" in line or "Rejected" in line)][:5]
        raise UpgradeFailed(e.message + ("\n" + "\n".join(f"    {t}" for t in failed)
                                         if failed else ""), e.hint) from e


def prune_local(keep: set, release: str) -> str:
    """Images of `release` on this server's engine that neither the new nor the previous
    release names: removed (an image a container still uses is left)."""
    found = _run_tool(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
                       f"--filter=reference={release}/*"], "list the images", check=False)
    old = [ref for ref in found.splitlines() if ref and ref not in keep]
    for ref in old:
        _run_tool(["docker", "image", "rm", ref], f"remove {ref}", check=False)
    return f"{len(old)} old image(s) removed here" if old else "nothing older to remove"


def _run_tool(argv: list[str], what: str, check: bool = True, timeout: float = 120) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UpgradeFailed(f"cannot {what}: {e}", "see the portal's log") from e
    if check and done.returncode != 0:
        raise UpgradeFailed(f"cannot {what}: {done.stderr.strip()[-2000:]}",
                            f"see: {' '.join(argv)}")
    return done.stdout

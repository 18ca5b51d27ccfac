"""The release's runtime put in place on this server when the agent starts (docs/agent.md,
"The runtime"): an upgrade reaches every server through the agents' new image, pulled from
the portal's registry; nobody visits them, and a server that was off during the upgrade gets
it when its agent's task starts there again.

The image carries the runtime at CARRIED (`dragonball/` and runtime.sha256: builder/
platform_images.py); the host's /opt/dragonball is mounted at HOST_PARENT. When the host's
runtime stamp (runtime/.sha256, the install's) differs from the carried one, the carried
tree is copied beside it, the current one kept as runtime.previous (what a rollback puts
back), and the new one renamed in: a kill leaves the old or the new tree, never half of
one. The portal's unit (`portal serve` or `portal standby`) sees the stamp change and
restarts on the new runtime (dragonball.portal.runtime_watch). An image without a runtime
(or a host without the mount) changes nothing.

    python3 agent_runtime.py        (the start action 0_runtime.sh): exit 0 always; it says
                                    what it did, and a failure never keeps the agent down
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

CARRIED = "/opt/dragonball-runtime"
HOST_PARENT = "/host/opt-dragonball"
STAMP = ".sha256"


def say(text: str) -> None:
    print(f"agent: runtime: {text}", flush=True)


def read_stamp(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def wanted(carried: str, host_parent: str) -> str | None:
    """The carried runtime's SHA-256 when it should replace the host's (pure but for reads):
    None when there is nothing to carry, no host folder, or the host has it already."""
    digest = read_stamp(os.path.join(carried, "runtime.sha256"))
    if not digest or not os.path.isdir(os.path.join(carried, "dragonball")):
        return None
    if not os.path.isdir(host_parent):
        return None
    if read_stamp(os.path.join(host_parent, "runtime", STAMP)) == digest:
        return None
    return digest


def put_in_place(carried: str, host_parent: str, digest: str) -> None:
    """Copy the carried tree beside the host's runtime, keep the old one as
    runtime.previous, rename the new one in, and stamp it."""
    fresh = tempfile.mkdtemp(prefix=".runtime-agent-", dir=host_parent)
    try:
        tree = os.path.join(fresh, "runtime")
        shutil.copytree(os.path.join(carried, "dragonball"), tree, symlinks=True)
        with open(os.path.join(tree, STAMP), "w", encoding="ascii") as f:
            f.write(digest + "\n")
        os.chmod(tree, 0o755)
        current = os.path.join(host_parent, "runtime")
        previous = os.path.join(host_parent, "runtime.previous")
        if os.path.isdir(current):
            if os.path.lexists(previous):
                shutil.rmtree(previous)
            os.rename(current, previous)
        os.rename(tree, current)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def main(carried: str = CARRIED, host_parent: str = HOST_PARENT) -> int:
    try:
        digest = wanted(carried, host_parent)
        if digest is None:
            say("nothing to do")
            return 0
        put_in_place(carried, host_parent, digest)
        say(f"put {digest[:12]} in place (the previous kept as runtime.previous)")
    except OSError as e:
        say(f"could not put the runtime in place: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The faults of tests/lab/faults.py as pure data: firewall command lines, shell scripts,
the reading of a probe's outcome, and the stack of undo steps.

Nothing here touches a server: faults.py runs what these functions describe inside the
lab's servers (`lab.exec`), so the exact rules and commands are readable and unit-tested
(tests/unit/test_lab_fault_plan.py) without a lab.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import shlex
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

#: The chain of our own that holds a partition's DROP rules inside a lab server: INPUT and
#: OUTPUT jump to it first, so removing the jumps and the chain undoes everything we added
#: and nothing else (Docker's own chains in the server are never touched).
CHAIN = "DRAGONBALL-CHAOS"
HOOKS = ("INPUT", "OUTPUT")
#: Where a lab server keeps a full disk's image, mount points and notes (on its own disk:
#: the container's layer; a few MiB of the host's disk, never filled).
DISK_STATE = "/var/lib/dragonball-chaos"
FILLER = ".dragonball-chaos-filler"
MAX_DISK_MIB = 1024
LOOP_MAJOR, LOOP_CONTROL = 7, (10, 237)
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")


# --- partition --------------------------------------------------------------------------

def _ipv4(address: str) -> str:
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError as e:
        raise ValueError(f"not an IPv4 address: {address!r}") from e


def partition_do(peers: Iterable[str], chain: str = CHAIN) -> list[list[str]]:
    """The iptables commands that cut one server off from `peers` (their addresses), both
    ways: packets from a peer are dropped on the way in, packets to it on the way out.

    Run inside that server (its own network namespace: the host's rules are not touched).
    `-w` waits for the xtables lock; the jumps go first in INPUT and OUTPUT so an earlier
    ACCEPT (or conntrack's ESTABLISHED) cannot let a packet by.
    """
    addresses = sorted({_ipv4(p) for p in peers}, key=ipaddress.IPv4Address)
    if not addresses:
        raise ValueError("a partition needs at least one peer to cut off")
    argv = [["iptables", "-w", "-N", chain]]
    for address in addresses:
        argv.append(["iptables", "-w", "-A", chain, "-s", f"{address}/32", "-j", "DROP"])
        argv.append(["iptables", "-w", "-A", chain, "-d", f"{address}/32", "-j", "DROP"])
    argv += [["iptables", "-w", "-I", hook, "1", "-j", chain] for hook in HOOKS]
    return argv


def partition_check(chain: str = CHAIN) -> list[list[str]]:
    """Commands that all succeed while the partition's jumps are in place (`iptables -C`)."""
    return [["iptables", "-w", "-C", hook, "-j", chain] for hook in HOOKS]


def partition_undo(chain: str = CHAIN) -> str:
    """A sh script removing every jump to `chain` (even added twice), then the chain itself.

    Safe to run twice, or where nothing was added: each step tolerates "no such rule/chain".
    It exits 0 only when the chain is gone afterwards.
    """
    steps = [f"while iptables -w -D {hook} -j {chain} 2>/dev/null; do :; done"
             for hook in HOOKS]
    steps += [f"iptables -w -F {chain} 2>/dev/null || true",
              f"iptables -w -X {chain} 2>/dev/null || true",
              f"! iptables -w -n -L {chain} >/dev/null 2>&1"]
    return "\n".join(steps) + "\n"


def tcp_probe(address: str, port: int = 22, seconds: float = 2.0) -> list[str]:
    """A command run inside a server that tells whether it reaches `address` (bash's
    /dev/tcp: a bare server has no ping or nc). Read its outcome with `probe_reached`."""
    _ipv4(address)
    return ["timeout", f"{seconds:g}", "bash", "-c", f"echo >/dev/tcp/{address}/{int(port)}"]


def probe_reached(returncode: int, stderr: str) -> bool:
    """Whether a `tcp_probe` got through: connected, or refused (a RST came back, so the
    packets flow; the port is just closed). A time-out (124) or no route means cut off."""
    if returncode == 0:
        return True
    return returncode != 124 and "refused" in stderr.lower()


# --- killed service ------------------------------------------------------------------------

def unit_name(unit: str) -> str:
    """`docker` -> `docker.service`; refuses what is not a plain unit name."""
    if not re.fullmatch(r"[A-Za-z0-9@_.:-]+", unit):
        raise ValueError(f"not a systemd unit name: {unit!r}")
    return unit if "." in unit else f"{unit}.service"


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show -p A -p B` output (A=..., B=...) as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# --- full disk -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DiskLayout:
    """Where a full-disk fault keeps its parts on one server, for the folder `path`:

    image   the ext4 file system's file (`size_mib`, no blocks reserved for root)
    mnt     where the loop device is mounted
    orig    a private bind of `path` as it was, kept to copy the data back at the end
    """

    path: str
    fault_id: str
    size_mib: int = 64

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or self.path.rstrip("/") in ("", "/") or \
                ".." in self.path.split("/"):
            raise ValueError(f"a full disk needs an absolute folder other than /: {self.path!r}")
        if not _ID.match(self.fault_id):
            raise ValueError(f"bad fault id {self.fault_id!r}")
        if not 8 <= self.size_mib <= MAX_DISK_MIB:
            raise ValueError(f"size_mib must be 8-{MAX_DISK_MIB}, got {self.size_mib}")

    @property
    def folder(self) -> str:
        return f"{DISK_STATE}/{self.fault_id}"

    @property
    def image(self) -> str:
        return f"{self.folder}/disk.img"

    @property
    def mnt(self) -> str:
        return f"{self.folder}/mnt"

    @property
    def orig(self) -> str:
        return f"{self.folder}/orig"

    @property
    def filler(self) -> str:
        return f"{self.path.rstrip('/')}/{FILLER}"


def loop_nodes_script() -> str:
    """sh: make /dev/loop-control and the next free /dev/loopN inside the server when the
    container's /dev lacks them (Docker gives a container only a few device nodes; the lab's
    device cgroup rule lets it make more). Prints the free loop device's path."""
    major, minor = LOOP_CONTROL
    return (f"set -e\n[ -e /dev/loop-control ] || mknod -m 660 /dev/loop-control c {major} {minor}\n"
            "dev=$(losetup -f)\n"
            f"[ -e \"$dev\" ] || mknod -m 660 \"$dev\" b {LOOP_MAJOR} \"${{dev#/dev/loop}}\"\n"
            "echo \"$dev\"\n")


def disk_mount_script(layout: DiskLayout, device: str) -> str:
    """sh: a small ext4 on `device` mounted over `layout.path`, holding a copy of what was
    there (so the data stays visible), the original kept reachable through a private bind.

    Only processes that open `path` after this see the new file system: a container whose
    volume is `path` must be (re)started after it (docs/lab.md, "Faults").
    """
    q = {k: shlex.quote(v) for k, v in {"path": layout.path, "image": layout.image,
                                        "mnt": layout.mnt, "orig": layout.orig,
                                        "folder": layout.folder, "dev": device}.items()}
    return f"""set -e
mkdir -p {q['path']} {q['mnt']} {q['orig']}
truncate -s {layout.size_mib}M {q['image']}
mkfs.ext4 -q -F -m 0 -L dbchaos {q['image']}
losetup {q['dev']} {q['image']}
echo {q['dev']} >{q['folder']}/device
mount {q['dev']} {q['mnt']}
rmdir {q['mnt']}/lost+found
mount --bind {q['path']} {q['orig']}
mount --make-private {q['orig']}
cp -a {q['path']}/. {q['mnt']}/
mount --bind {q['mnt']} {q['path']}
mount --make-private {q['path']}
"""


def disk_fill_script(layout: DiskLayout) -> str:
    """sh: fill the file system at `path` (a filler file until ENOSPC), then prove it full:
    a 4 KiB write must fail with "No space left on device". Prints that error."""
    filler, probe = shlex.quote(layout.filler), shlex.quote(layout.filler + ".probe")
    # Big blocks first, then small ones for the last partial megabyte (a small ext4 has
    # 1 KiB blocks; one pass of 1 MiB writes leaves a few hundred KiB).
    return f"""for bs in 1M 4k 1k; do
  dd if=/dev/zero of={filler}.$bs bs=$bs status=none 2>/dev/null
  sync
done
if err=$(dd if=/dev/zero of={probe} bs=4k count=1 conv=fsync status=none 2>&1); then
  rm -f {probe}; echo "a write still succeeded" >&2; exit 3
fi
rm -f {probe}; echo "$err"
"""


def disk_free_script(layout: DiskLayout) -> str:
    """sh: remove the filler; a 4 KiB write must then succeed."""
    filler, probe = shlex.quote(layout.filler), shlex.quote(layout.filler + ".probe")
    return (f"set -e\nrm -f {filler}.* {probe}\n"
            f"dd if=/dev/zero of={probe} bs=4k count=1 conv=fsync status=none\nrm -f {probe}\n")


def disk_unmount_script(layout: DiskLayout, copy_back: bool = True) -> str:
    """sh: copy what is in the small file system back to the original folder (the data
    written meanwhile is kept), then unmount everything, free the loop device and remove
    the image. Tolerant: parts already gone (a server that lost power) are skipped."""
    q = {k: shlex.quote(v) for k, v in {"path": layout.path, "image": layout.image,
                                        "mnt": layout.mnt, "orig": layout.orig,
                                        "folder": layout.folder,
                                        "filler": layout.filler}.items()}
    copy = (f"if mountpoint -q {q['orig']} && mountpoint -q {q['mnt']}; then\n"
            f"  rm -f {q['filler']}*\n"
            f"  find {q['orig']} -mindepth 1 -delete\n"
            f"  cp -a {q['mnt']}/. {q['orig']}/\nfi\n") if copy_back else ""
    return f"""set -e
dev=$(cat {q['folder']}/device 2>/dev/null || true)
{copy}if [ -n "$dev" ] && findmnt -n -o SOURCE --mountpoint {q['path']} | grep -q "^$dev"; then
  umount {q['path']} || umount -l {q['path']}
fi
if mountpoint -q {q['orig']}; then umount {q['orig']} || umount -l {q['orig']}; fi
if mountpoint -q {q['mnt']}; then umount {q['mnt']} || umount -l {q['mnt']}; fi
if [ -n "$dev" ] && losetup -j {q['image']} | grep -q "^$dev:"; then losetup -d "$dev" || true; fi
left=$(losetup -j {q['image']} 2>/dev/null | cut -d: -f1 | tr '\\n' ' ')
rm -rf {q['folder']}
echo "$left"
"""


# --- undo --------------------------------------------------------------------------------

class UndoStack:
    """What a fault did, as steps to undo in reverse order.

    `run()` runs every step even when one fails (a fault must restore all it can), then
    returns the failures as (description, exception); it empties the stack, so running it
    twice undoes once.
    """

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []

    def push(self, description: str, step: Callable[[], object]) -> None:
        self._steps.append((description, step))

    @property
    def plan(self) -> list[str]:
        """The descriptions of the steps, in the order `run` takes them."""
        return [description for description, _ in reversed(self._steps)]

    def __len__(self) -> int:
        return len(self._steps)

    def run(self) -> list[tuple[str, BaseException]]:
        failures = []
        while self._steps:
            description, step = self._steps.pop()
            try:
                step()
            except Exception as e:  # keep undoing the rest; report them all
                log.error("undo step failed: %s: %s", description, e)
                failures.append((description, e))
        return failures

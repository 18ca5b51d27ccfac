"""OS preparation, described: what a server needs changed, from preflight's facts (pure).

Each describer returns a `Prep` (a step id, its title, and its changes as plain
dicts); `dragonball.installer.apply` makes them real and records what it changed.
Nothing here reads or writes the host: the facts say everything, so a fixture of
facts is a test case (tests/unit/data/osprep/). Change kinds:

    {"kind": "file", "path", "content", "mode"}           a whole file of ours
    {"kind": "module", "name", "present"}                  modprobe unless `present` exists
    {"kind": "sysctl", "file", "values": {key: "1"}}       sysctl -e -p FILE, then checked
    {"kind": "selinux", "mode": "permissive", "config"}    setenforce 0 + SELINUX= in config
    {"kind": "ports", "firewall", "ports": ["2377/tcp"]}   opened through that firewall
                                                           (firewalld, ufw; "iptables" only in
                                                           earlier releases' journals)
    {"kind": "authorized_key", "path", "key"}              one line in authorized_keys
"""

from __future__ import annotations

import base64
import dataclasses
import re

from dragonball.errors import InstallerError
from dragonball.shared import ports as ports_mod
from dragonball.installer.preflight import kernel
from dragonball.installer.preflight.facts import Facts

SYSCTL_FILE = "/etc/sysctl.d/90-dragonball.conf"
LIMITS_FILE = "/etc/security/limits.d/90-dragonball.conf"
MODULES_FILE = "/etc/modules-load.d/dragonball.conf"
SELINUX_CONFIG = "/etc/selinux/config"
AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
#: Open files per process: the engine's default-ulimits use the same number.
NOFILE = 1048576
#: Set to exactly these values: routing between containers and servers, and iptables
#: seeing bridged traffic (published ports, DNS between containers).
EXACT = {"net.ipv4.ip_forward": "1",
         "net.bridge.bridge-nf-call-iptables": "1",
         "net.bridge.bridge-nf-call-ip6tables": "1"}
#: Raised to at least these values, never lowered: recent kernels default fs.file-max
#: to 2^63-1, and a server may have raised the inotify limits further for its own use.
AT_LEAST = {"fs.file-max": 1048576,
            "fs.inotify.max_user_instances": 8192,
            "fs.inotify.max_user_watches": 524288}
BRIDGE_KEYS = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")
FIREWALLS = ("firewalld", "ufw")  # in the order they are used when active
HEADER = "# Written by the DragonBall installer; 'dragonball reset' restores what was here.\n"
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
             "sk-ecdsa-sha2-nistp256@openssh.com")


@dataclasses.dataclass(frozen=True)
class Prep:
    """One step of OS preparation: its journal id, its title, and the changes it makes."""

    id: str
    title: str
    changes: tuple

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "changes": list(self.changes)}


def file_change(path: str, content: str, mode: int = 0o644) -> dict:
    return {"kind": "file", "path": path, "content": content, "mode": f"{mode:04o}"}


# --- kernel parameters and modules -------------------------------------------------------

def br_netfilter_state(facts: Facts) -> str:
    return (facts.kernel_features.get("br_netfilter") or {}).get("state", kernel.UNKNOWN)


def sysctl_values(facts: Facts) -> dict:
    """key -> value for the sysctl file, from the values the server has now (pure).

    The bridge keys only exist once br_netfilter is loaded: left out when the kernel
    has no br_netfilter at all. A limit already above ours is left out (never lowered);
    one equal to ours stays in, so the file is the same when the step runs again.
    """
    values = {}
    for key, value in EXACT.items():
        if key in BRIDGE_KEYS and br_netfilter_state(facts) == kernel.MISSING:
            continue
        values[key] = value
    for key, least in AT_LEAST.items():
        now = (facts.sysctl or {}).get(key)
        if now is None or not now.isdigit():
            continue  # not readable here: nothing known to raise
        if int(now) <= least:
            values[key] = str(least)
    return values


def sysctl_file(values: dict) -> str:
    return HEADER + "".join(f"{key} = {value}\n" for key, value in values.items())


def kernel_prep(facts: Facts) -> Prep:
    """br_netfilter loaded now and at boot, and the kernel parameters, applied now."""
    values = sysctl_values(facts)
    changes = []
    if br_netfilter_state(facts) != kernel.MISSING:
        changes.append(file_change(MODULES_FILE, HEADER + "br_netfilter\n"))
        changes.append({"kind": "module", "name": "br_netfilter",
                        "present": "/proc/sys/net/bridge"})
    changes.append(file_change(SYSCTL_FILE, sysctl_file(values)))
    changes.append({"kind": "sysctl", "file": SYSCTL_FILE, "values": values})
    return Prep("os.kernel", "kernel parameters (ip_forward, bridge netfilter, limits)",
                tuple(changes))


def nofile_limit(facts: Facts) -> int:
    """Open files we give processes: NOFILE, unless the server cannot grant that many.

    Above the kernel's nr_open nothing is granted; and where no process may raise its
    hard limit (CAP_SYS_RESOURCE dropped, as in a container), asking for more than the
    hard limit fails: pam_limits refuses the login, runc refuses to start a container.
    """
    limits = facts.limits or {}
    value = NOFILE
    if limits.get("nr_open"):
        value = min(value, limits["nr_open"])
    if limits.get("sys_resource") is False and limits.get("nofile_hard"):
        value = min(value, limits["nofile_hard"])
    return value


def limits_prep(facts: Facts) -> Prep:
    """Open files for login sessions (pam_limits): `*` does not cover root, so both."""
    nofile = nofile_limit(facts)
    lines = "".join(f"{who:<5} {kind} nofile {nofile}\n"
                    for who in ("*", "root") for kind in ("soft", "hard"))
    return Prep("os.limits", f"open files limit ({nofile})",
                (file_change(LIMITS_FILE, HEADER + lines),))


# --- SELinux, firewall --------------------------------------------------------------------

def selinux_prep(facts: Facts, consent: bool = False) -> Prep | None:
    """Enforcing (now or at next boot) -> permissive, only with the administrator's
    consent (answers: selinux_permissive; without it the answers are refused before any
    change, wizard/answers.py)."""
    mode, config = facts.selinux.get("mode"), facts.selinux.get("config")
    if (mode != "enforcing" and config != "enforcing") or not consent:
        return None
    return Prep("os.selinux", "SELinux enforcing -> permissive",
                ({"kind": "selinux", "mode": "permissive", "config": SELINUX_CONFIG},))


def firewalls(facts: Facts) -> list[str]:
    """The active firewalls to open ports in (the administrator's tools). Without one, no
    rule per port any more: the DRAGONBALL chain (installer/firewall.py) accepts the
    cluster's members itself, and "ports" entries of kind iptables are only undone (the
    journals of earlier releases hold them)."""
    return [name for name in FIREWALLS if (facts.firewall or {}).get(name)]


def firewall_prep(facts: Facts, role: str) -> Prep:
    """The role's ports opened through every active firewall (never disabling one); which
    sources reach them is the DRAGONBALL chain's to say (step os.firewall_chain)."""
    wanted = [str(p) for p in ports_mod.ports_for(role)]
    used = firewalls(facts)
    title = (f"open {len(wanted)} ports ({', '.join(used)})" if used
             else "no firewalld or ufw active: the DRAGONBALL chain alone")
    return Prep("os.firewall", title,
                tuple({"kind": "ports", "firewall": name, "ports": wanted} for name in used))


# --- ssh ------------------------------------------------------------------------------------

def authorized_key_line(key: str) -> str:
    """One OpenSSH public key line, checked (type, base64 blob of that type, comment)."""
    text = key.strip()
    fields = text.split()
    if "\n" in text or len(fields) < 2 or fields[0] not in KEY_TYPES:
        raise InstallerError("the portal's ssh key is not one OpenSSH public key line",
                             "expected 'ssh-ed25519 AAAA... comment'")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except ValueError as e:
        raise InstallerError("the portal's ssh key is not valid base64") from e
    if len(blob) < 4 or blob[4:4 + int.from_bytes(blob[:4], "big")] != fields[0].encode():
        raise InstallerError(f"the portal's ssh key does not hold a {fields[0]} key")
    return " ".join(fields)


def authorized_key_prep(key: str) -> Prep:
    line = authorized_key_line(key)
    return Prep("os.ssh_key", "the portal's ssh key in root's authorized_keys",
                ({"kind": "authorized_key", "path": AUTHORIZED_KEYS, "key": line},))


def key_blob(line: str) -> str | None:
    """The base64 blob of an authorized_keys line (options before the type allowed)."""
    fields = line.split()
    for i, field in enumerate(fields[:-1]):
        if field in KEY_TYPES:
            return fields[i + 1]
    return None


# --- the whole preparation ----------------------------------------------------------------

def os_preps(facts: Facts, selinux_consent: bool = False) -> list[Prep]:
    """The preparation before the engine: kernel, limits, SELinux (with consent; firewall
    comes after the engine, whose packages bring iptables to a server that has none)."""
    preps = [kernel_prep(facts), limits_prep(facts), selinux_prep(facts, selinux_consent)]
    return [p for p in preps if p is not None]


def set_config_value(text: str, key: str, value: str) -> str:
    """`KEY=value` in a shell-style config: the first active line replaced, else added."""
    pattern = re.compile(rf"^(\s*){re.escape(key)}\s*=.*$", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(lambda m: f"{m.group(1)}{key}={value}", text, count=1)
    return text + ("" if not text or text.endswith("\n") else "\n") + f"{key}={value}\n"


def config_value(text: str, key: str) -> str | None:
    match = re.search(rf"^\s*{re.escape(key)}\s*=\s*(\S*)\s*$", text or "", re.MULTILINE)
    return match.group(1) if match else None

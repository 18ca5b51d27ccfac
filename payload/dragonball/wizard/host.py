"""This server's facts for the wizard: its hostname and its addresses (the adapter).

Addresses come from `ip -o addr show` (iproute2, on every supported distribution);
where it is missing, IPv4 addresses are asked of the kernel per interface. Parsing
is pure (`parse_ip_addr`) and tested on captured output. Loopback, link-local and
Docker's own bridges are left out: other servers cannot reach this one there.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import socket
import struct
import subprocess

from dragonball.shared.childenv import SEARCH_PATH, child_environment
from dragonball.wizard.model import Facts, Interface

log = logging.getLogger(__name__)

IP_TIMEOUT_S = 5
_DOCKER_OWN = re.compile(r"^(docker0|docker_gwbridge|veth.*|br-[0-9a-f]{12})$")
_SIOCGIFADDR = 0x8915


def live_facts() -> Facts:
    """This server's hostname and the addresses other servers may reach it on."""
    return Facts(hostname=socket.gethostname(), interfaces=tuple(_interfaces()),
                 selinux_enforcing=selinux_enforcing())


def selinux_enforcing(root: str = "/") -> bool:
    """Enforcing now (/sys/fs/selinux/enforce) or at the next boot (/etc/selinux/config)."""
    try:
        with open(os.path.join(root, "sys/fs/selinux/enforce"), encoding="ascii") as f:
            if f.read().strip() == "1":
                return True
    except OSError:
        pass
    try:
        with open(os.path.join(root, "etc/selinux/config"), encoding="utf-8") as f:
            found = re.search(r"^\s*SELINUX\s*=\s*(\S*)\s*$", f.read(), re.MULTILINE)
    except OSError:
        return False
    return bool(found) and found.group(1).lower() == "enforcing"


def parse_ip_addr(text: str) -> list[Interface]:
    """The reachable addresses in `ip -o addr show` output, in its order."""
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[2] not in ("inet", "inet6"):
            continue
        name = parts[1].split("@")[0]
        scope = parts[parts.index("scope") + 1] if "scope" in parts[:-1] else "global"
        if scope in ("host", "link") or name == "lo" or _DOCKER_OWN.match(name):
            continue
        found.append(Interface(name, parts[3].split("/")[0]))
    return found


def _interfaces() -> list[Interface]:
    ip = shutil.which("ip", path=os.pathsep.join(SEARCH_PATH))
    if ip:
        try:
            done = subprocess.run([ip, "-o", "addr", "show"], capture_output=True, text=True,
                                  timeout=IP_TIMEOUT_S, env=child_environment(os.environ))
            if done.returncode == 0:
                return parse_ip_addr(done.stdout)
            log.debug("ip addr: %s", done.stderr.strip())
        except (OSError, subprocess.TimeoutExpired) as e:
            log.debug("ip addr: %s", e)
    return _ipv4_from_kernel()


def _ipv4_from_kernel() -> list[Interface]:
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            if name == "lo" or _DOCKER_OWN.match(name):
                continue
            try:
                reply = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR,
                                    struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # no IPv4 address on this interface
            found.append(Interface(name, socket.inet_ntoa(reply[20:24])))
    return found

"""keepalived's configuration of a Service's moving address, rendered (pure).

    text = render(Vrrp("notes", "web", "10.0.0.100/24", 8080,
                       peers=(("s1", "10.0.0.11"), ("s2", "10.0.0.12")),
                       managers=("10.0.0.11", "10.0.0.12", "10.0.0.13")))

One text for every server of the address (one Swarm service spec): the lines that differ
per server use keepalived's config ids, `@s1 ...` read only by the keepalived started with
`-i s1`, `@^s1 ...` by every other one. The interface is this server's own, found by the
container at start (`__INTERFACE__`: the one holding the server's address). Why VRRP and
keepalived, and how a split brain ends: docs/app-address.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from dragonball.app.address import router_id

MODULE = "/opt/dragon_ball/service/keepalived/module"
INTERFACE = "__INTERFACE__"
ADVERT_S = 1      # VRRPv2 (the version with authentication) adverts at 1 s at best
CHECK_S = 1       # the track script: every second, two failures to let go, two to take
PRIORITY = 100    # every peer alike: who holds it keeps it (nopreempt), no needless move


@dataclass(frozen=True)
class Vrrp:
    """What one moving address is: the Service, its address, the port its holder checks,
    the servers it may move between (hostname, address) and the managers' addresses."""

    app: str
    service: str
    address: str
    port: int
    peers: tuple = ()
    managers: tuple = ()

    @property
    def name(self) -> str:
        return f"{self.app}_{self.service}"


def auth_pass(vrrp: Vrrp) -> str:
    """VRRPv2's 8-character password: derived from what the address is, so every peer has it
    and another instance (another app, a stray router) is not taken for a peer. It is sent in
    clear in every advert, as VRRPv2 PASS does: an identity check, not a secret."""
    text = f"{vrrp.app}/{vrrp.service}/{vrrp.address}".encode()
    return hashlib.sha256(text).hexdigest()[:8]


def render(vrrp: Vrrp) -> str:
    """The keepalived.conf of `vrrp`."""
    check = " ".join([f"{MODULE}/check.sh", str(vrrp.port), *vrrp.managers])
    lines = [
        f"# The moving address of {vrrp.app}/{vrrp.service}: rendered by DragonBall",
        "# (dragonball.orchestrator.keepalived), one text for every peer.",
        "global_defs {",
        f"    router_id {vrrp.name}",
        "    enable_script_security",
        "    script_user root",
        "    vrrp_garp_master_refresh 60",
        "}",
        "vrrp_script dragonball_check {",
        f'    script "{check}"',
        f"    interval {CHECK_S}",
        "    timeout 3",
        "    fall 2",
        "    rise 2",
        "}",
        f"vrrp_instance {vrrp.name} {{",
        "    state BACKUP",
        "    nopreempt",
        f"    interface {INTERFACE}",
        f"    virtual_router_id {router_id(vrrp.address)}",
        f"    priority {PRIORITY}",
        f"    advert_int {ADVERT_S}",
        *[f"    @{host} unicast_src_ip {ip}" for host, ip in vrrp.peers],
        "    unicast_peer {",
        *[f"        @^{host} {ip}" for host, ip in vrrp.peers],
        "    }",
        "    check_unicast_src",
        "    authentication {",
        "        auth_type PASS",
        f"        auth_pass {auth_pass(vrrp)}",
        "    }",
        "    virtual_ipaddress {",
        f"        {vrrp.address} dev {INTERFACE}",
        "    }",
        "    track_script {",
        "        dragonball_check",
        "    }",
        f"    notify {MODULE}/notify.sh",
        "}",
    ]
    return "\n".join(lines) + "\n"

"""Encrypting the apps' overlay networks (IPsec between servers), where every kernel can.

Swarm encrypts an overlay network created with the option `encrypted`: ESP in transport
mode with `rfc4106(gcm(aes))` between each pair of servers, the VXLAN packets marked by an
iptables `u32` match. A server whose kernel lacks either gets **no error**: measured on
the lab (Docker 20.10.24, a kernel with xfrm but without gcm), the policy is installed,
no state, and every packet between tasks on that network is silently dropped. So each
server is probed, and a network is encrypted only when every server can:

- `probe_script()`: what a server runs at its install, as root, in a network namespace of
  its own (`unshare -n`, gone when it ends: nothing changes on the server): an ESP state
  with that cipher and the `u32` match Docker uses. Both load their kernel modules on
  demand, so a modular kernel that has them passes.
- `CAPABLE`: the node label the portal sets from the result (`/joined`; the portal's own
  node at its install), "true" or "false".
- `decide(nodes)`: at an app's first apply (its network made then; Swarm cannot change an
  existing network's encryption), encrypted when every enrolled server is capable.
- The tasks of an app whose network is encrypted are constrained to capable servers
  (`CAPABLE_CONSTRAINT`): a server added later without support runs none of them rather
  than a task that cannot talk to the others.
"""

from __future__ import annotations

from dragonball.shared import node_labels

CAPABLE = "io.dragonball.overlay-encryption"
CAPABLE_CONSTRAINT = f"node.labels.{CAPABLE}==true"
OPTION = "encrypted"  # the overlay driver's option (docker network create --opt encrypted)

#: A throw-away key (20 bytes: AES-128 and the 4-byte salt of rfc4106) in a namespace that
#: lives as long as the probe: not a secret.
_KEY = "0x" + "11" * 20
_U32 = "0>>22&0x3C@12&0xFFFFFF00=1048832"   # Docker's own match (libnetwork, encryption.go)


def probe_script() -> str:
    """The sh script `unshare -n sh -c` runs: exit 0 when this kernel can encrypt, else a
    line on stderr naming what it lacks."""
    return (
        "ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 reqid 1 "
        f"mode transport aead 'rfc4106(gcm(aes))' {_KEY} 64 "
        "|| { echo 'no ESP with rfc4106(gcm(aes)) (xfrm, esp4, gcm)' >&2; exit 3; }\n"
        "iptables -w -t mangle -A OUTPUT -p udp --dport 4789 -m u32 "
        f"--u32 '{_U32}' -j MARK --set-mark 1 "
        "|| { echo 'no iptables u32 match (xt_u32)' >&2; exit 4; }\n")


def label_value(capable: bool) -> str:
    return "true" if capable else "false"


def incapable(nodes) -> list[str]:
    """The hostnames of the enrolled nodes not known to be capable (a node probed before
    this label existed counts as not capable: nothing is assumed)."""
    return sorted(n.hostname for n in nodes
                  if n.labels.get(node_labels.ENROLLED) == "true"
                  and n.labels.get(CAPABLE) != "true")


def decide(nodes) -> tuple[bool, str | None]:
    """(encrypt a new app network?, the plan's note saying why): when there are enrolled
    servers and every one of them can (none enrolled: nothing to say, nothing runs)."""
    enrolled = [n for n in nodes if n.labels.get(node_labels.ENROLLED) == "true"]
    lacking = incapable(nodes)
    if enrolled and not lacking:
        return True, "its overlay network: encrypted (IPsec between servers)"
    if not enrolled:
        return False, None
    shown = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5
                                      else "")
    return False, (f"its overlay network: NOT encrypted: {shown} cannot (the kernel lacks "
                   "ESP with rfc4106(gcm(aes)) or the iptables u32 match; docs/security.md)")


def is_encrypted(options) -> bool:
    """Whether an existing network's driver options say encrypted."""
    return OPTION in (options or {})

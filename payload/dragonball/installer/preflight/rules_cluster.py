"""Rules that need the cluster: the portal's reachability, hostnames, clock (pure).

The join step knows the cluster's hostnames and the portal's time and hands them
in as ``facts.cluster = {"hostnames": [...], "portal_time": epoch seconds}``;
without them these checks are skipped, never guessed.
"""

from __future__ import annotations

from dragonball.installer.preflight import requirements as req_mod
from dragonball.installer.preflight.check import FAIL, PASS, SKIP, WARN, Check
from dragonball.installer.preflight.facts import Facts
from dragonball.installer.preflight.requirements import Requirements

LOCALHOST_NAMES = ("localhost", "localhost.localdomain", "localhost6")
WHEN_JOINING = "checked when joining: needs the portal"


def hostname(facts: Facts, req: Requirements) -> list[Check]:
    """This server's name is its node's name in the Swarm: it must be its own."""
    name = facts.hostname
    if not name or name.lower() in LOCALHOST_NAMES:
        return [Check("hostname", WARN, f"{name or 'no hostname'}: every server needs a "
                      "name of its own", "hostnamectl set-hostname NAME (or edit /etc/hostname)")]
    others = (facts.cluster or {}).get("hostnames")
    if others is None:
        return [Check("hostname", SKIP, f"{name}; unique in the cluster: {WHEN_JOINING}")]
    if name.lower() in {o.lower() for o in others}:
        return [Check("hostname", FAIL, f"{name}: another server of the cluster has this name",
                      "give this server a name of its own: hostnamectl set-hostname NAME")]
    return [Check("hostname", PASS, f"{name}: unique among {len(others)} servers")]


def clock(facts: Facts, req: Requirements) -> list[Check]:
    """The clock against the portal's: certificates and logs need them to agree."""
    portal_time = (facts.cluster or {}).get("portal_time")
    if portal_time is None or facts.time is None:
        return [Check("clock", SKIP, WHEN_JOINING)]
    skew = facts.time - portal_time
    detail = f"{abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} the portal"
    hint = "synchronise the clocks: run an NTP client (chrony, systemd-timesyncd) on every server"
    if abs(skew) >= req_mod.SKEW_FAIL_S:
        return [Check("clock", FAIL, detail + f" (at most {req_mod.SKEW_FAIL_S} s)", hint)]
    if abs(skew) >= req_mod.SKEW_WARN_S:
        return [Check("clock", WARN, detail, hint)]
    return [Check("clock", PASS, detail)]


def portal(facts: Facts, req: Requirements) -> list[Check]:
    """The portal given with --portal answers on its ports (only when one was given)."""
    if facts.portal is None:
        return []
    address, answers = facts.portal["address"], facts.portal["ports"]
    closed = {port: why for port, why in answers.items() if why != "open"}
    if not closed:
        return [Check("portal", PASS, f"{address} answers on {', '.join(answers)}")]
    listed = "; ".join(f"{port}: {why}" for port, why in closed.items())
    return [Check("portal", FAIL, f"{address} does not answer ({listed})",
                  "check the address, that the portal is installed, and that firewalls "
                  f"between the servers let {', '.join(closed)} through")]

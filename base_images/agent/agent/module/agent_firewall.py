"""The cluster's members, as the leading portal sends them (docs/security.md, "The network"):

    PUT /v1/firewall   {"members": ["10.0.0.1", "10.0.0.0/24", "fd00::7", ...]}
                       -> {"members": N, "changed": true|false, "applied": true|false}

written to `<dir>/members` (the host's /var/lib/dragonball/firewall, at /host/firewall in
the agent) in one rename; the host's dragonball-firewall.path unit sees the new file and
its script rebuilds the DRAGONBALL chain, then copies what it applied to `<dir>/applied`.
The answer waits for that copy (up to APPLY_WAIT_S): a portal that opens the managers to
a device before answering its enroll must know the rules are there, not only the file.
Every entry is checked here (an address or a network, nothing else), and again by the
script: the file is data for iptables only.

Checks are pure; MembersFile is the adapter that writes."""

from __future__ import annotations

import ipaddress
import os
import threading
import time

import agent_params

MEMBERS_FILE = "members"
APPLIED_FILE = "applied"   # written by the host's script once the chain holds the members
APPLY_WAIT_S = 5.0
MAX_MEMBERS = 2000   # shared/firewall.py: the same bound on the portal's side
MAX_LENGTH = 64
HEADER = "# the cluster's servers, from the leading portal (docs/security.md)\n"


# --- pure -------------------------------------------------------------------------------------

def source(text) -> str | None:
    """`text` as one normalised address or network; None when it is not one."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_LENGTH:
        return None
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text.strip(), strict=True))
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def put_problems(body) -> list[str]:
    """Every problem with the body of PUT /v1/firewall."""
    if not isinstance(body, dict):
        return ["the body must be a JSON object {\"members\": [...]}"]
    problems = []
    unknown = sorted(set(body) - {"members"})
    if unknown:
        problems.append(f"unknown fields: {', '.join(unknown)}")
    members = body.get("members")
    if not isinstance(members, list) or not members:
        return problems + ["members must be a non-empty list of addresses or networks"]
    if len(members) > MAX_MEMBERS:
        return problems + [f"members holds {len(members)} entries: at most {MAX_MEMBERS}"]
    for n, item in enumerate(members):
        if source(item) is None:
            shown = repr(item)[:40]
            problems.append(f"members[{n}] is not an IPv4 or IPv6 address or network: "
                            f"{shown}")
    return problems


def members_text(members: list) -> str:
    """The file's content: checked entries, normalised, without duplicates, sorted."""
    found = sorted({source(m) for m in members},
                   key=lambda s: (":" in s, s))
    return HEADER + "".join(f"{s}\n" for s in found)


# --- the adapter ---------------------------------------------------------------------------------

def read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


class MembersFile:
    """Replaces `<folder>/members` atomically, only when its content changes."""

    def __init__(self, folder: str, wait_s: float = APPLY_WAIT_S,
                 clock=time.monotonic, sleep=time.sleep) -> None:
        self.path = os.path.join(folder, MEMBERS_FILE)
        self.applied_path = os.path.join(folder, APPLIED_FILE)
        self.wait_s, self.clock, self.sleep = wait_s, clock, sleep
        self._lock = threading.Lock()

    def put(self, members: list) -> tuple[bool, bool]:
        """Write the list (checked by put_problems first): (whether the file changed,
        whether the host applied it within wait_s)."""
        text = members_text(members)
        changed = self._write(text)
        deadline = self.clock() + self.wait_s
        while read(self.applied_path) != text:
            if self.clock() >= deadline:
                return changed, False
            self.sleep(0.05)
        return changed, True

    def _write(self, text: str) -> bool:
        with self._lock:
            if read(self.path) == text:
                return False
            folder = os.path.dirname(self.path)
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"{folder} is missing: this server's install makes "
                                        "it (step os.firewall_chain)")
            agent_params.write_atomic(self.path, text, 0o644)  # addresses: not secret
            return True


class FirewallApi:
    """PUT /v1/firewall."""

    def __init__(self, members: MembersFile, error) -> None:
        """`error(status, message, **extra)` makes the API's error (agent_api.ApiError)."""
        self.members, self.error = members, error

    def routes(self) -> dict:
        return {("PUT", "/v1/firewall"): self.put}

    def put(self, query: dict, body) -> tuple:
        problems = put_problems(body)
        if problems:
            raise self.error(400, "invalid members: " + "; ".join(problems[:10]),
                             problems=problems[:50])
        try:
            changed, applied = self.members.put(body["members"])
        except OSError as e:
            raise self.error(500, f"cannot write the firewall's members: {e}") from e
        return 200, {"members": len({source(m) for m in body["members"]}), "changed": changed,
                     "applied": applied}

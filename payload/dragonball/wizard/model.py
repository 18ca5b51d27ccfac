"""What the wizard works with: the facts it is given, the checks it may call, the answers
it hands the installer, and the problems it reports. Plain data, no I/O."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from dragonball.shared.paths import DATA_DIR

ROLES = ("portal", "device")
MASK = "********"
SECRETS = ("admin_password", "enrollment_code")

#: A check answers True, or a message saying what is wrong and what to do.
Verdict = bool | str


@dataclasses.dataclass(frozen=True)
class Interface:
    """One address of this server, on a named network interface."""

    name: str
    address: str

    def __str__(self) -> str:
        return f"{self.address} ({self.name})"


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the wizard must know about this server; probed by the caller (`host.live_facts`)."""

    hostname: str
    interfaces: tuple[Interface, ...] = ()
    #: SELinux enforcing now or at the next boot: the install must be allowed to make it
    #: permissive (answer selinux_permissive), or it changes nothing
    selinux_enforcing: bool = False

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(i.address for i in self.interfaces)


@dataclasses.dataclass(frozen=True)
class Checks:
    """Remote checks the join code provides; None skips the check.

    `check_portal("host:port")`, `check_fingerprint("host:port", "SHA256:<hex>")` and
    `check_code("host:port", "XXXX-XXXX-XXXX-XXXX")` answer True or a message (a
    DragonBallError they raise becomes its message). They run in that order, each only
    on well-formed answers and after the one before it said True.
    """

    check_portal: Callable[[str], Verdict] | None = None
    check_code: Callable[[str, str], Verdict] | None = None
    #: `check_fingerprint("host:port", "SHA256:...")`: the portal's CA has that fingerprint
    #: (checked between the two others: the code goes only to a portal whose CA is pinned).
    check_fingerprint: Callable[[str, str], Verdict] | None = None


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with the answers: which field, where, what and how to fix it."""

    field: str
    message: str
    line: int | None = None  # 1-based line in the answers file, when it has one

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.field}: {self.message}"


@dataclasses.dataclass(frozen=True)
class Answers:
    """Every answer the installer needs, valid and complete (defaults filled in).

    `admin_password` is kept out of repr() so it never reaches a log or a traceback.
    """

    role: str
    address: str
    data_dir: str = DATA_DIR
    hostname: str | None = None        # an override of this server's hostname
    portal: str | None = None          # device: "host:port[,host:port...]", tried in order
    enrollment_code: str | None = None  # device: "XXXX-XXXX-XXXX-XXXX"
    ca_fingerprint: str | None = None   # device: "SHA256:<64 hex>", the portal's CA
    admin_password: str | None = dataclasses.field(default=None, repr=False)  # portal
    cluster_name: str | None = None    # portal
    #: addresses or networks ("a,b") that may reach the cluster ports besides the servers
    firewall_allow: str | None = None
    #: consent to set an enforcing SELinux to permissive (recorded; reset sets it back)
    selinux_permissive: bool | None = None

    @property
    def portals(self) -> list[str]:
        """A device's portals ("host:port"), in the order to try them."""
        return [p for p in (self.portal or "").split(",") if p]

    def as_dict(self) -> dict:
        """Every answer, secrets included (for the journal's digest, never for display)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def masked(self) -> dict:
        """Every answer with secrets (the password, the one-time code) replaced by
        ********: safe to print or log."""
        shown = self.as_dict()
        for secret in SECRETS:
            if secret in shown:
                shown[secret] = MASK
        return shown

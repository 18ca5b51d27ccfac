"""When certificates end, and what to say about it ahead of time (pure: facts and now in,
warnings out). docs/certificates.md has the lifetimes and why.

A `CertFact` is one certificate as DragonBall knows it: its name, its kind (which decides
how early to warn), the server it belongs to, and when it ends. A Swarm node certificate
of a server that is down is known only as a window: Swarm renews a running node's
certificate when 50-80 % of its lifetime has passed, so a node switched off at T holds one
that ends between T + 20 % and T + 100 % of the lifetime (`down_node_fact`).

`warnings(facts, now)` is what `dragonball status` and the dashboard show.
"""

from __future__ import annotations

import dataclasses
import datetime

DAY = datetime.timedelta(days=1)

#: kind -> (warn this long before the end, error this long before the end)
THRESHOLDS = {
    "ca": (365 * DAY, 90 * DAY),         # a CA change touches every server: warn a year ahead
    "leaf": (30 * DAY, 7 * DAY),         # DragonBall's own server and client certificates
    "swarm-node": (30 * DAY, 7 * DAY),   # a running node renews itself long before this
}
#: Swarm renews a node's certificate once this share of its lifetime is left, at the least.
SWARM_RENEW_LEFT = 0.2

@dataclasses.dataclass(frozen=True)
class CertFact:
    """One certificate: `not_after` its end; `earliest` when it may end sooner (a down
    node's window), else None; `renew` the command that renews it."""

    name: str
    kind: str
    not_after: datetime.datetime
    server: str = ""
    earliest: datetime.datetime | None = None
    renew: str = ""
    note: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "server": self.server,
                "not_after": _iso(self.not_after), "earliest": _iso(self.earliest),
                "renew": self.renew, "note": self.note}


@dataclasses.dataclass(frozen=True)
class CertWarning:
    """What to tell a person: level "warning" or "error"."""

    level: str
    subject: str
    text: str
    hint: str
    days_left: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def down_node_fact(hostname: str, down_since: datetime.datetime,
                   lifetime: datetime.timedelta, rejoin: str) -> CertFact:
    """The window a down node's Swarm certificate ends in (module docstring)."""
    return CertFact(name="Swarm node certificate", kind="swarm-node", server=hostname,
                    not_after=down_since + lifetime,
                    earliest=down_since + lifetime * SWARM_RENEW_LEFT, renew=rejoin,
                    note=f"the server is down since {_iso(down_since)}: its certificate "
                         "cannot renew until it is switched on")


def warning_of(fact: CertFact, now: datetime.datetime) -> CertWarning | None:
    """The warning one certificate deserves now, or None."""
    warn_before, error_before = THRESHOLDS.get(fact.kind, THRESHOLDS["leaf"])
    first_end = fact.earliest or fact.not_after
    days = (first_end - now) / DAY
    subject = f"{fact.server}: {fact.name}" if fact.server else fact.name
    hint = f"run {fact.renew}" if fact.renew else "see docs/certificates.md"
    if fact.not_after <= now:
        return CertWarning("error", subject, f"expired on {_day(fact.not_after)}", hint, days)
    if fact.earliest and fact.earliest <= now:
        return CertWarning("error", subject, f"may have expired (between "
                           f"{_day(fact.earliest)} and {_day(fact.not_after)}); "
                           f"{fact.note}", hint, days)
    if first_end - now <= error_before:
        return CertWarning("error", subject, f"ends in {_left(first_end - now)} "
                           f"({_day(first_end)})", hint, days)
    if first_end - now <= warn_before:
        extra = f"; {fact.note}" if fact.note else ""
        return CertWarning("warning", subject, f"ends in {_left(first_end - now)} "
                           f"({_day(first_end)}){extra}", hint, days)
    return None


def warnings(facts: list[CertFact], now: datetime.datetime) -> list[CertWarning]:
    """Every warning, errors first, the soonest end first."""
    found = [w for w in (warning_of(f, now) for f in facts) if w is not None]
    return sorted(found, key=lambda w: (w.level != "error", w.days_left))


def _day(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _left(delta: datetime.timedelta) -> str:
    if delta >= 2 * DAY:
        return f"{delta / DAY:.0f} days"
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} hours" if hours >= 1 else f"{delta.total_seconds() / 60:.0f} minutes"

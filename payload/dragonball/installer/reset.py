"""`reset`: take a server back to before install, from what the journal recorded.

1. If the engine answers: leave the Swarm (`docker swarm leave --force`) and remove
   DragonBall's containers (any label starting with io.dragonball.).
2. Undo every recorded change, latest first (dragonball.installer.undo): files back
   as they were or gone, kernel values back, ports closed, SELinux back, the
   engine's packages purged when install added them (its data root kept).
3. Remove the journal (and the data directory when nothing else is left in it).

Each undone change leaves the journal at once: a reset that stops half-way (a
failure, a kill) is run again and goes on. A change that cannot be undone stays
listed, and reset exits 1 naming it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

# Every step module, so every undo kind a journal may hold (installer/roles.py).
from dragonball.installer import roles  # noqa: F401
from dragonball.installer.journal import Journal
from dragonball.installer.logs import LOG_DIR, SecretFilter, close_log, open_log
from dragonball.installer.undo import Undone, undo_all

log = logging.getLogger(__name__)

LABEL_PREFIX = "io.dragonball."


@dataclasses.dataclass
class ResetResult:
    cluster: list      # what was done in the engine (left the Swarm, removed N containers)
    undone: list       # Undone per recorded change
    journal_removed: bool

    @property
    def ok(self) -> bool:
        return all(u.status != "failed" for u in self.undone)


def ours(labels: dict | None) -> bool:
    """A container of DragonBall's: one of its labels starts with io.dragonball."""
    return any(key.startswith(LABEL_PREFIX) for key in (labels or {}))


def clean_engine(host) -> list[str]:
    """Leave the Swarm and remove DragonBall's containers, if an engine answers here."""
    if host.which("docker") is None:
        return ["no Docker engine here: nothing to leave or remove"]
    state = host.run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], check=False,
                     timeout=30)
    if not state.ok:
        return [f"the Docker engine does not answer: Swarm and containers left as they are "
                f"({state.describe()})"]
    done = []
    if state.out.strip() in ("active", "pending", "error"):
        host.run(["docker", "swarm", "leave", "--force"], timeout=120)
        done.append("left the Swarm")
    ids = host.run(["docker", "ps", "-aq", "--no-trunc"], timeout=60).out.split()
    found = []
    if ids:
        inspected = host.run(["docker", "inspect", "--format", "{{.Id}} {{json .Config.Labels}}",
                              *ids], check=False, timeout=60).out
        for line in inspected.splitlines():
            cid, _, labels = line.partition(" ")
            if cid and ours(json.loads(labels or "null")):
                found.append(cid)
    if found:
        host.run(["docker", "rm", "-f", "-v", *found], timeout=300)
    done.append(f"removed {len(found)} DragonBall container{'s' * (len(found) != 1)}")
    return done


def recorded(data_dir: str) -> Journal | None:
    """The install journal in `data_dir`, or None: nothing to reset there."""
    journal = Journal.load(data_dir)
    return journal if os.path.exists(journal.path) else None


def reset(data_dir: str, host, on_entry=lambda undone: None, on_line=lambda text: None,
          log_dir: str = LOG_DIR) -> ResetResult:
    """Undo what the journal in `data_dir` lists (see the module's docstring), logged in
    reset.log; `on_entry(Undone)` and `on_line(text)` tell the caller as it goes."""
    handler = open_log("reset.log", SecretFilter(), log_dir=log_dir)
    try:
        return _reset(data_dir, host, on_entry, on_line)
    finally:
        close_log(handler)


def _reset(data_dir: str, host, on_entry, on_line) -> ResetResult:
    journal = Journal.load(data_dir)
    cluster = clean_engine(host)
    for line in cluster:
        log.info("reset: %s", line)
        on_line(line)
    undone: list[Undone] = undo_all(journal, host, on_entry)
    result = ResetResult(cluster, undone, journal_removed=False)
    if result.ok:
        journal.remove()
        result.journal_removed = True
        try:
            os.rmdir(data_dir)  # only when empty: the portal's data stays otherwise
        except OSError:
            pass
    return result

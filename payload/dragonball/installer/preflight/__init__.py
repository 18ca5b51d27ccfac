"""Preflight: does this server fit the release and its role? Checks only; changes nothing.

    facts = probe(system, paths, ports, root="/")        # read the host (facts.py)
    found = checks(facts, requirements_for(manifest, role))  # pure rules (rules*.py)

`run` does both for this host; `dragonball preflight` (cli.py) prints the result.
"""

from __future__ import annotations

import dataclasses
import os

from dragonball.shared.paths import DATA_DIR, DOCKER_ROOT, RUNTIME_PARENT
from dragonball.installer.preflight.check import FAIL, Check
from dragonball.installer.preflight.facts import Facts, probe
from dragonball.installer.preflight.requirements import Requirements, requirements_for
from dragonball.installer.preflight.rules import checks

__all__ = ["Check", "Facts", "Requirements", "Result", "checks", "default_paths", "probe",
           "requirements_for", "run"]


@dataclasses.dataclass(frozen=True)
class Result:
    facts: Facts
    requirements: Requirements
    checks: list

    @property
    def ok(self) -> bool:
        """No check failed: install may go on."""
        return not any(c.status == FAIL for c in self.checks)


def default_paths(data_dir: str = DATA_DIR, environ=os.environ) -> dict:
    """The directories preflight looks at: data, temporary ($TMPDIR or /tmp), engine, and
    where the runtime is copied (/opt/dragonball: the portal's unit and `dragonball` run it)."""
    return {"data": data_dir, "temp": environ.get("TMPDIR") or "/tmp", "docker": DOCKER_ROOT,
            "runtime": RUNTIME_PARENT}


def run(system, manifest: dict | None, role: str, paths: dict, root: str = "/",
        portal: str | None = None, cluster: dict | None = None) -> Result:
    """Probe the host under `root` and check it for `role` of the release `manifest`.

    `cluster` ({"hostnames", "portal_time"}) is what the join step learnt from the portal.
    """
    req = requirements_for(manifest, role)
    facts = probe(system, paths, req.ports, root=root, portal=portal)
    facts.cluster = cluster
    return Result(facts, req, checks(facts, req))

"""Cross-checks of an app spec's jobs (docs/app-spec.md, "Jobs"): what app/checks.py checks
of a service, with its path under `jobs`, and what only a job has.

- its name is a DNS label that no service has: both become the Swarm service
  `<app>_<name>` (at most 63 characters), and a name on the app's network reaches one thing;
- `depends_on` names services or other jobs (unknown, listed twice); a cycle through jobs is
  found with the services' ones (checks.check_cycles), and a service's `backends` naming a
  job is refused there;
- parameter defaults of their type, memory within Docker's bounds and, when observed, the
  image in the portal registry and the placement on servers and labels there are.

Like every check, each adds its problems to the document and none stops the others.
"""

from __future__ import annotations

from dragonball.app import checks
from dragonball.app.document import Document
from dragonball.app.model import Observed


def check_jobs(doc: Document, jobs: dict, observed: Observed) -> None:
    """Every check of the jobs; `jobs`: name -> JobSpec of the shape-valid ones."""
    names = checks.section_names(doc, "services")
    job_names = checks.section_names(doc, "jobs")
    checks.check_names(doc, job_names, "jobs")
    for name in sorted(job_names & names):
        doc.problem(("jobs", name), f"{name!r} names both a service and a job",
                    "rename one: each becomes the Swarm service <app>_<name>, and a name "
                    "on the app's network reaches one thing")
    app = doc.data.get("app") if isinstance(doc.data, dict) else None
    for name, job in sorted(jobs.items()):
        if doc.full:
            return
        if isinstance(app, str) and checks.NAME_RE.match(app) and checks.NAME_RE.match(name):
            check_swarm_name(doc, app, name)
        checks.check_resources(doc, name, job, "jobs")
        checks.check_needs(doc, name, job, names, job_names, "jobs")
        checks.check_parameters(doc, name, job, "jobs")
        checks.check_images(doc, name, job, observed, "jobs")
        checks.check_placement(doc, name, job, observed, "jobs")


def check_swarm_name(doc: Document, app: str, name: str) -> None:
    swarm_name = f"{app}_{name}"
    if len(swarm_name) > checks.SWARM_NAME_MAX:
        doc.problem(("jobs", name), f"its Swarm service would be {swarm_name!r}, "
                    f"{len(swarm_name)} characters: Swarm allows {checks.SWARM_NAME_MAX}",
                    "shorten the app's name or this job's: <app>_<job> to "
                    f"{checks.SWARM_NAME_MAX} characters")

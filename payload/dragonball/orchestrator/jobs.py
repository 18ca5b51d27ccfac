"""One-shot jobs (init, migrate), pure: their Swarm service spec, what a run ran, and whether
an apply runs one again (docs/app-spec.md, "Jobs"; docs/orchestrator.md, "Jobs").

**On Swarm** a job is a service in `replicated-job` mode (Docker 20.10, API 1.41): one
task, run to its end. Its restart policy is `none` (a failed task is the end of that run,
and of the apply), its health check is off (a module image's own, `run.sh status`, would
fail the task once its start period passed) and it has no update config (Swarm has none
for jobs). It joins the app's network and has its parameters bound read-only as a
service's are (``DRAGONBALL_PARAMS_FILE`` names the file, which the image's
``/opt/dragon_ball/bin/params`` reads). Each run is a new Swarm service: the finished
service of the last run is removed first, so every task the rollout looks at is this
run's, and the last run's task (with its container, and so its log) stays until the next.

**Run again only when its definition changes.** The portal records each job's last run
(orchestrator.state, `job_runs`): its outcome and the *parts* of what it ran:
- `image`: the image ID its task ran (a new build under the same tag is a change);
- `definition`: a hash of its Swarm spec without the image (command, environment,
  placement, resources; not what it depends on, which orders it and changes nothing in it);
- `parameters`: the revision of its parameters on the portal (revisions only grow, so a
  change is seen; never a hash of the values, which may be a person's password).
An apply skips a job whose last run succeeded with the same parts ("unchanged: not run");
otherwise it runs, and the plan says why (never run, its last run failed, the parts that
changed).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from typing import Mapping

from dragonball.app.model import JobSpec
from dragonball.orchestrator import naming, specs

#: The parts of what a run ran, in the order their reasons are said.
PARTS = ("image", "definition", "parameters")
_CHANGED = {"image": "image changed", "definition": "definition changed",
            "parameters": "parameters changed"}
SKIPPED = "unchanged: not run"
NO_HEALTH = {"Test": ["NONE"]}


@dataclasses.dataclass(frozen=True)
class JobRun:
    """A job's last run as the portal recorded it: the parts it ran, and how it ended."""

    parts: Mapping
    outcome: str            # "done" or "failed"
    finished: float = 0.0   # the store's clock

    @property
    def digest(self) -> str:
        return digest(self.parts)


def digest(parts: Mapping) -> str:
    """A short name of what a run ran (in the audit log and the store)."""
    return hashlib.sha256(json.dumps(dict(parts), sort_keys=True).encode()).hexdigest()[:16]


def environment(app: str, name: str) -> list[str]:
    """What a job's task is told: its app, its name and its parameters' file."""
    return [f"DRAGONBALL_APP={app}", f"DRAGONBALL_JOB={name}",
            f"DRAGONBALL_PARAMS_FILE={naming.PARAMS_FILE}"]


def job_spec(app: str, name: str, job: JobSpec, image: str, encrypted: bool = False) -> dict:
    """The Swarm ServiceSpec JSON of job `name`; `image`: the reference its task runs (the
    image ID); `encrypted`: the app's network is (its task only on servers that can)."""
    labels = {naming.APP_LABEL: app, naming.SERVICE_LABEL: name,
              naming.KIND_LABEL: naming.JOB_KIND}
    container = {"Image": image, "Labels": dict(labels), "Env": environment(app, name),
                 "Mounts": [{"Type": "bind", "Source": naming.params_dir(app, name),
                             "Target": naming.PARAMS_MOUNT, "ReadOnly": True}],
                 "Hostname": name, "StopGracePeriod": specs.STOP_GRACE_NS,
                 "Healthcheck": NO_HEALTH}
    if job.command:
        container["Command"] = list(job.command)
    found = specs.limits(job.resources)
    task = {"ContainerSpec": container, "Resources": {"Limits": found} if found else {},
            "RestartPolicy": {"Condition": "none"},
            "Placement": {"Constraints": specs.constraints(app, name, job, encrypted)},
            "Networks": [{"Target": naming.network(app)}]}
    spec = {"Name": naming.swarm_service(app, name),
            "Labels": dict(labels),
            "TaskTemplate": task,
            "Mode": {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}},
            "EndpointSpec": {"Mode": "dnsrr"}}
    spec["Labels"][naming.SPEC_LABEL] = definition(spec)
    return spec


def definition(spec: Mapping) -> str:
    """The hash of a job's Swarm spec without its image and this label: the `definition`
    part of a run."""
    shown = copy.deepcopy(dict(spec))
    shown["TaskTemplate"]["ContainerSpec"].pop("Image", None)
    shown["Labels"] = {k: v for k, v in shown["Labels"].items()
                       if k not in (naming.SPEC_LABEL, naming.IMAGE_LABEL)}
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:16]


def parts(image_id: str, spec: Mapping, parameters: int | None) -> dict:
    """What a run with the Swarm spec `spec` runs; `parameters`: the revision of its
    parameters (None: they are written anew before it runs, so not known yet)."""
    return {"image": image_id, "definition": spec["Labels"][naming.SPEC_LABEL],
            "parameters": parameters}


def decide(wanted: Mapping, last: JobRun | None) -> tuple[str, tuple]:
    """("run" or "skip", why): skipped only when its last run succeeded with every part
    the same as `wanted` (a part None is not known yet: it runs)."""
    if last is None:
        return "run", ("never run",)
    if last.outcome != "done":
        return "run", (f"its last run {last.outcome}",)
    changed = [_CHANGED[k] for k in PARTS
               if wanted.get(k) is None or last.parts.get(k) != wanted.get(k)]
    return ("run", tuple(changed)) if changed else ("skip", (SKIPPED,))


def settled_revision(revision: int, published: Mapping | None, in_force: Mapping) -> int | None:
    """The revision a job's parameters will have when it runs now: the current one when
    the values in force are those last written (the apply writes nothing new), else None
    (they are written anew, under a new revision)."""
    return revision if revision > 0 and published == in_force else None

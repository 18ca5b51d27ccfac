"""The app spec as pydantic models: the schema, and the source of docs/app-spec.schema.json.

Models check the shape of each field (types, ranges, unknown keys); what needs the
whole spec or the world (names, the graph, ports across services, images, servers)
is checked in `validate`. Strict mode: YAML already gives typed values, so
``replicas: "2"`` is a mistake to report, not a string to coerce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import re
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
PARAM_TYPES = ("string", "int", "float", "bool", "list")
ADDRESS_PATTERN = r"^[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?$"
#: What Swarm, Docker and the planner can hold (docs/app-spec.md, "Limits"). Replicas: every
#: replica is a task (and, with storage, a Swarm service and two volumes of its own) and a
#: line of the plan; DragonBall's clusters are a handful of servers, where a thousand tasks
#: of one service is far past what they can run, and the plan of a spec stays well within a
#: second. CPUs: Docker refuses a limit above the server's cores; 512 is past any server's.
#: Memory: Docker refuses a limit under 6 MiB; 16 TiB is past any server's, and keeps the
#: bytes far from the int64 Swarm keeps them in.
MAX_REPLICAS = 1000
#: Services: each is a Swarm service or more; 500 is past what a handful of servers runs.
MAX_SERVICES = 500
#: Jobs: one-shot tasks (init, migrate), a few per app; each is a Swarm service too.
MAX_JOBS = 100
#: The name the app's shared parameters (`shared:`) go by in `params get|set`, the REST API
#: and the portal's store: no service's or job's (theirs are DNS labels).
SHARED = "@shared"
#: A job's `timeout` in seconds: 600 by default; a day at most (a migration longer than that
#: is an operation to plan by hand, not a step of an apply).
JOB_TIMEOUT, MAX_JOB_TIMEOUT = 600, 86400
#: A job's `command`: its words, each at most this long, and at most this many of them.
MAX_COMMAND_WORDS, MAX_COMMAND_WORD = 256, 4096
MAX_CPUS = 512
MIN_MEMORY, MAX_MEMORY = 6 << 20, 16 << 40
MEMORY_PATTERN = r"^[0-9]{1,15}[kmgKMG]?$"
#: Node labels go into Swarm constraints (``node.labels.KEY==VALUE``): swarmkit's rules for
#: a constraint's key and value, without the operators' characters.
LABEL_KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9:_./-]{1,128}$"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Placement(_Model):
    """Where a service's tasks may run: any of `servers` (empty: any), with all `labels`."""

    servers: list[Annotated[str, StringConstraints(max_length=253)]] = Field(
        default_factory=list, description="server names (hostnames)")
    labels: dict[Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)],
                 Annotated[str, StringConstraints(pattern=LABEL_VALUE_PATTERN)]] = Field(
        default_factory=dict, description="node labels every chosen server must carry")


class Port(_Model):
    """A host-mode published port: `published` on the server, `target` in the container."""

    published: int = Field(ge=1, le=65535)
    target: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"


class Parameter(_Model):
    """One module parameter: its type, its default value, and whether it is a secret."""

    type: Literal["string", "int", "float", "bool", "list"]
    default: Union[str, int, float, bool, list]
    secret: bool = Field(False, description="delivered as a file, never printed")


class SharedReference(_Model):
    """`{shared: NAME}` in a service's (a job's) `parameters`: this key takes the app's
    shared parameter NAME (docs/app-spec.md, "Shared parameters"): its type, default and
    secret, and the one value `params set @shared NAME=...` sets for every taker."""

    shared: str = Field(min_length=1, description="a name declared under the spec's "
                        "top-level `shared:`")
    type: Literal["string", "int", "float", "bool", "list"] | None = Field(None, description=(
        "the type the module expects, if restated here: it must be the shared one's"))


class SharedParameter(Parameter):
    """A `SharedReference` resolved (`AppSpec.resolved`, once the spec is valid): the shared
    declaration's type, default and secret, and the name it is shared under. Never read
    from a spec's text, so no part of its schema."""

    shared: str


#: The tags pydantic puts in an error's path after a parameter's key (app.schema drops them).
PARAMETER_TAGS = ("declared", "reference")


def _entry_kind(entry: object) -> str:
    """A parameter entry with `shared:` is a reference, any other a declaration (so a broken
    entry is reported against the one model it meant, not against both)."""
    if isinstance(entry, dict):
        return "reference" if "shared" in entry else "declared"
    return "reference" if isinstance(entry, SharedReference) else "declared"


#: One entry of a service's (a job's) `parameters`: declared there, or a shared one taken.
ParameterEntry = Annotated[Union[Annotated[Parameter, Tag("declared")],
                                 Annotated[SharedReference, Tag("reference")]],
                           Discriminator(_entry_kind)]


class Resources(_Model):
    """Limits of each task: cpus (e.g. 0.5) and memory (bytes, or 512k, 256m, 2g)."""

    cpus: float | None = Field(None, gt=0, le=MAX_CPUS)
    memory: int | str | None = Field(None, pattern=MEMORY_PATTERN, description=(
        f"from {MIN_MEMORY >> 20} MiB to {MAX_MEMORY >> 40} TiB"))

    def memory_bytes(self) -> int | None:
        return memory_bytes(self.memory)


def memory_bytes(value: int | str | None) -> int | None:
    """512k, 256m, 2g or a number of bytes (the text already matches MEMORY_PATTERN)."""
    if value is None or isinstance(value, int):
        return value
    number, unit = re.fullmatch(r"([0-9]+)([kmgKMG]?)", value).groups()
    return int(number) * _UNITS[unit.lower()]


class ServiceSpec(_Model):
    """One entry of `services`: a Service (nginx in front of backends) or a Backend."""

    kind: Literal["service", "backend"]
    image: str = Field(min_length=1, description="image reference, e.g. notes/api:0.1.0")
    module: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description=(
        "the module folder in the image (/opt/dragon_ball/service/<module>); default: the "
        "image repository's last part, as the release names images: notes/api -> api"))
    backends: list[str] = Field(default_factory=list, description=(
        "services only: what this Service load-balances to (Backends or Services); "
        "each starts before it"))
    depends_on: list[str] = Field(default_factory=list, description=(
        "start after these, without load balancing (how a Backend needs another)"))
    replicas: int = Field(1, ge=0, le=MAX_REPLICAS)
    placement: Placement = Field(default_factory=Placement)
    ports: list[Port] = Field(default_factory=list)
    parameters: dict[str, ParameterEntry] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    storage: bool = Field(False, description="storage/ and log/ kept on the server's disk")
    address: str | None = Field(None, pattern=ADDRESS_PATTERN, description=(
        "services only: one IPv4 address (with its prefix, default /24) in the servers' "
        "network that moves to a live server of this Service (keepalived, VRRP); clients "
        "reach its published ports there (docs/app-address.md)"))

    def needs(self) -> list[str]:
        """Every name this one starts after: backends, then depends_on, each once."""
        return list(dict.fromkeys(self.backends + self.depends_on))

    def parameter_values(self) -> dict:
        return {name: p.default for name, p in self.parameters.items()}


class JobSpec(_Model):
    """One entry of `jobs`: a one-shot task (init, migrate) run to completion, once, before
    the services that name it in their `depends_on` start; run again only when its
    definition changes (docs/app-spec.md, "Jobs")."""

    image: str = Field(min_length=1, description="image reference, e.g. wiki/app:1.39.0")
    command: list[Annotated[str, StringConstraints(min_length=1,
                                                   max_length=MAX_COMMAND_WORD)]] | None = Field(
        None, min_length=1, max_length=MAX_COMMAND_WORDS, description=(
            "what the task runs, replacing the image's entry point and command (a module "
            "image's own entry point starts its supervisor, which does not end)"))
    depends_on: list[str] = Field(default_factory=list, description=(
        "services (healthy) and jobs (done) it runs after"))
    timeout: int = Field(JOB_TIMEOUT, ge=1, le=MAX_JOB_TIMEOUT, description=(
        "seconds it may run; past them it is stopped and the apply fails"))
    placement: Placement = Field(default_factory=Placement)
    parameters: dict[str, ParameterEntry] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)

    def needs(self) -> list[str]:
        """Every name it runs after, each once."""
        return list(dict.fromkeys(self.depends_on))

    def parameter_values(self) -> dict:
        return {name: p.default for name, p in self.parameters.items()}


class AppSpec(_Model):
    """An application: its name, its services and its one-shot jobs, wired into a
    dependency graph."""

    app: str = Field(pattern=NAME_PATTERN)
    services: dict[str, ServiceSpec] = Field(min_length=1, max_length=MAX_SERVICES)
    jobs: dict[str, JobSpec] = Field(default_factory=dict, max_length=MAX_JOBS, description=(
        "one-shot tasks (init, migrate) run before the services that depend on them"))
    shared: dict[str, Parameter] = Field(default_factory=dict, description=(
        "app-wide parameters declared once (a secret two services use): a service or job "
        "takes one with {shared: NAME} in its parameters; `params set @shared` sets it"))

    def members(self) -> dict:
        """Services and jobs by name: what has parameters, a placement and a Swarm service
        of its own (their names never clash: app.checks)."""
        return {**self.services, **self.jobs}

    def holder(self, name: str):
        """What declares the parameters `params set NAME` sets: a service, a job, or (for
        SHARED) the app's shared parameters."""
        return SharedParameters(parameters=self.shared) if name == SHARED else \
            self.members()[name]

    def takers(self) -> dict[str, list[tuple[str, str]]]:
        """Shared name -> [(service or job, its key)] taking it, in the spec's order (a
        name nobody takes: []). Of a resolved spec (`resolved`)."""
        found: dict = {name: [] for name in self.shared}
        for member, spec in self.members().items():
            for key, param in spec.parameters.items():
                if isinstance(param, SharedParameter) and param.shared in found:
                    found[param.shared].append((member, key))
        return found

    def resolved(self) -> AppSpec:
        """The spec with each `{shared: NAME}` the declaration NAME as a SharedParameter,
        so whatever reads a service's parameters (types, defaults, secrets, values in
        force) reads them whole. A name not declared stays a reference: app.shared_checks
        reports it, and app.spec resolves a valid spec only."""
        def taken(spec):
            entries = {key: self._taken(entry) for key, entry in spec.parameters.items()}
            return spec if entries == spec.parameters else \
                spec.model_copy(update={"parameters": entries})
        return self.model_copy(update={
            "services": {name: taken(s) for name, s in self.services.items()},
            "jobs": {name: taken(j) for name, j in self.jobs.items()}})

    def _taken(self, entry):
        if not isinstance(entry, SharedReference) or entry.shared not in self.shared:
            return entry
        return SharedParameter(**self.shared[entry.shared].model_dump(), shared=entry.shared)


class SharedParameters(_Model):
    """The app's shared parameters as what `params set @shared` edits: a holder of
    parameters, as a service is (orchestrator.params works on either)."""

    parameters: dict[str, Parameter] = Field(default_factory=dict)


@dataclass(frozen=True)
class Observed:
    """What the world holds, as data (`None`: not known, so not checked).

    `labels`: server name -> its node labels; `addresses`: server name -> its address;
    `taken`: the moving addresses of the other apps (docs/app-address.md).
    """

    images: frozenset | None = None
    servers: frozenset | None = None
    labels: dict = field(default_factory=dict)
    addresses: dict = field(default_factory=dict)   # server name -> its IPv4 address
    taken: dict = field(default_factory=dict)       # moving address -> "app/service" holding it
    #: (port, protocol) -> [("app/service", the servers its tasks run on, None: every one)]
    #: of the other apps' published ports
    ports: dict = field(default_factory=dict)


def json_schema() -> dict:
    """The JSON Schema of an app spec (docs/app-spec.schema.json is this, written out)."""
    schema = AppSpec.model_json_schema()
    # service names are mapping keys, which a pydantic field pattern cannot reach
    schema["properties"]["services"]["propertyNames"] = {"pattern": NAME_PATTERN}
    schema["properties"]["jobs"]["propertyNames"] = {"pattern": NAME_PATTERN}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://dragonball.invalid/app-spec.schema.json"
    return schema


def write_schema(path: str) -> None:
    """Write `json_schema()` to `path`
    (python -m dragonball.app.model docs/app-spec.schema.json)."""
    import json
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(json_schema(), indent=2) + "\n")


if __name__ == "__main__":
    import sys
    write_schema(sys.argv[1] if len(sys.argv) > 1 else "docs/app-spec.schema.json")

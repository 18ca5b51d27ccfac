"""Cross-checks of an app spec: what needs the whole spec or the observed world.

Each check takes the document (for lines), the services whose shape is valid and
what is observed, and adds its problems to the document. None stops the others. The
checks that apply to a job as to a service take the `section` its path starts with
("services" or "jobs"); the jobs' own checks are in app/job_checks.py.
"""

from __future__ import annotations

import difflib
import re

from dragonball.app import address, graph
from dragonball.app.document import Document
from dragonball.app.model import (MAX_MEMORY, MIN_MEMORY, Observed, Parameter, ServiceSpec,
                                  SharedReference)
from dragonball.app.schema import NAME_HINT, UNKNOWN_IMAGE
from dragonball.shared import ports as dragonball_ports

NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,62}\Z")
#: Swarm names a service as a DNS label: at most 63 characters (docs/orchestrator.md).
SWARM_NAME_MAX = 63
#: The ports DragonBall itself listens on, on some or every server: never an app's.
OWN_PORTS = {(p.number, p.protocol): p.purpose for p in dragonball_ports.ports_for("portal")}
_PY_TYPES = {"string": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
             "list": (list,)}


def check_all(doc: Document, services: dict, observed: Observed,
              jobs: dict | None = None) -> None:
    """Every cross-check; `services`, `jobs`: name -> ServiceSpec (JobSpec) of the
    shape-valid ones."""
    names, job_names = section_names(doc, "services"), section_names(doc, "jobs")
    check_names(doc, names)
    app = doc.data.get("app") if isinstance(doc.data, dict) else None
    for name, spec in services.items():
        if doc.full:
            return
        if isinstance(app, str) and NAME_RE.match(app) and NAME_RE.match(name):
            check_swarm_names(doc, app, name, spec)
        check_resources(doc, name, spec)
        check_needs(doc, name, spec, names, job_names)
        check_parameters(doc, name, spec)
        check_images(doc, name, spec, observed)
        check_placement(doc, name, spec, observed)
    check_cycles(doc, services, jobs or {})
    check_ports(doc, services, observed)
    for name in sorted(services):
        check_replica_ports(doc, name, services[name], observed)
    address.check_addresses(doc, services, observed, lambda spec: candidates(spec, observed))


def section_names(doc: Document, section: str) -> set:
    """The names written under `section` (services, jobs), whatever their shape: each
    counts as known (a list there names none)."""
    raw = doc.data.get(section) if isinstance(doc.data, dict) else None
    return set(raw) if isinstance(raw, dict) else set()


def did_you_mean(word: str, known) -> str:
    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def check_names(doc: Document, names: set, section: str = "services") -> None:
    what = section[:-1]
    for name in sorted(names):
        if not NAME_RE.match(name) or name.endswith("-"):
            doc.problem((section, name), f"{name!r} is not a valid {what} name",
                        f"use {NAME_HINT}, not ending with '-'")


def check_needs(doc: Document, name: str, spec, names: set, jobs: set = frozenset(),
                section: str = "services") -> None:
    """`backends` (a service's) name services; `depends_on` names services or jobs."""
    if section == "services" and spec.kind == "backend" and spec.backends:
        doc.problem(("services", name, "backends"), "a Backend has no backends: only a "
                    "Service load-balances to others",
                    f"make {name} a Service (kind: service), or start it after them with "
                    f"depends_on: [{', '.join(spec.backends)}]")
    for key in ("backends", "depends_on") if section == "services" else ("depends_on",):
        seen: set = set()
        for i, need in enumerate(getattr(spec, key)):
            if doc.full:
                return
            _check_need(doc, (section, name, key, i), need, seen, names, jobs)
            seen.add(need)


def _check_need(doc: Document, path: tuple, need: str, seen: set, names: set,
                jobs: set) -> None:
    name, key = path[1], path[2]
    if need in seen:
        doc.problem(path, f"{need!r} is listed twice", "keep one")
    elif key == "backends" and need in jobs:
        doc.problem(path, f"{need!r} is a job: a Service load-balances to services only",
                    f"a job runs once and ends: start {name} after it with "
                    f"depends_on: [{need}]")
    elif need not in names | jobs:
        jobs_too = key == "depends_on" and bool(jobs)
        known = (names | jobs if jobs_too else names) - {name}
        what, plural = (("service or job", "services and jobs") if jobs_too
                        else ("service", "services"))
        doc.problem(path, f"unknown {what} {need!r}",
                    did_you_mean(need, known) or f"the {plural} are: {', '.join(sorted(known))}")


def check_cycles(doc: Document, services: dict, jobs: dict | None = None) -> None:
    """A cycle through services, jobs or both: each can never start."""
    jobs = jobs or {}
    deps = {name: spec.needs() for name, spec in {**services, **jobs}.items()}
    for cycle in graph.find_cycles(deps):
        first, second = cycle[0], cycle[1]
        section = "services" if first in services else "jobs"
        spec = services.get(first) or jobs[first]
        key = "backends" if second in getattr(spec, "backends", ()) else "depends_on"
        doc.problem((section, first, key, getattr(spec, key).index(second)),
                    f"dependency cycle: {' -> '.join(cycle)}",
                    f"{'services and jobs' if jobs else 'services'} start leaves first, so "
                    "a cycle can never start: remove one of these links")


def check_parameters(doc: Document, name: str, spec, section: str = "services") -> None:
    """Each parameter declared here has a default of its type (a shared one taken here:
    app.shared_checks)."""
    for key, param in spec.parameters.items():
        if not isinstance(param, SharedReference):
            check_default(doc, (section, name, "parameters", key), param)


def check_default(doc: Document, path: tuple, param: Parameter) -> None:
    """The default of the parameter declared at `path` is of its type."""
    wanted = _PY_TYPES[param.type]
    value = param.default
    if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
        doc.problem(path + ("default",), f"the default {value!r} is not of type {param.type}",
                    f"give a default of type {param.type}, or change the type")


def normal_image(ref: str) -> str:
    """'notes/api' -> 'notes/api:latest'; a digest or a tag is kept."""
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last or "@" in ref else f"{ref}:latest"


def check_images(doc: Document, name: str, spec, observed: Observed,
                 section: str = "services") -> None:
    if observed.images is None or spec.image == UNKNOWN_IMAGE:
        return
    known = {normal_image(i) for i in observed.images}
    if normal_image(spec.image) not in known:
        # the push first: a near name in the registry is often another app's image, not a
        # typo of this one (issue 15: the hint named the wrong image)
        near = did_you_mean(normal_image(spec.image), known)
        doc.problem((section, name, "image"), f"image {spec.image!r} is not in the "
                    "portal registry", "push the release that holds it first (on the "
                    "portal: ./DragonBall-<version>.bin images push)"
                    + (f", or fix its name or tag ({near})" if near else
                       ", or fix its name or tag"))


def check_placement(doc: Document, name: str, spec, observed: Observed,
                    section: str = "services") -> None:
    if observed.servers is None:
        return
    path, before = (section, name, "placement"), len(doc.problems)
    for i, server in enumerate(spec.placement.servers):
        if server not in observed.servers:
            doc.problem(path + ("servers", i), f"unknown server {server!r}",
                        did_you_mean(server, observed.servers) or
                        f"the servers are: {', '.join(sorted(observed.servers))}")
    carried = {(k, v) for labels in observed.labels.values() for k, v in labels.items()}
    for key, value in spec.placement.labels.items():
        if (key, value) not in carried:
            doc.problem(path + ("labels", key), f"no server carries the label {key}={value}",
                        "label a server on the portal, or fix the label")
    runs = getattr(spec, "replicas", 1)   # a job: one task
    if len(doc.problems) == before and not candidates(spec, observed) and runs:
        doc.problem(path, "no server matches this placement",
                    "list servers that carry every label given")


def candidates(spec: ServiceSpec, observed: Observed) -> frozenset | None:
    """The servers where `spec` may run; None when not known (any server)."""
    wanted = spec.placement
    if observed.servers is None:
        return frozenset(wanted.servers) if wanted.servers else None
    pool = set(wanted.servers or observed.servers) & set(observed.servers)
    return frozenset(s for s in pool if all(observed.labels.get(s, {}).get(k) == v
                                            for k, v in wanted.labels.items()))


def check_ports(doc: Document, services: dict, observed: Observed) -> None:
    taken: dict = {}  # (published, protocol) -> [(name, index, servers)]
    for name in sorted(services):
        spec, where = services[name], candidates(services[name], observed)
        for i, port in enumerate(spec.ports):
            key = (port.published, port.protocol)
            for other, j, there in taken.get(key, []):
                if where is None or there is None or where & there:
                    doc.problem(("services", name, "ports", i, "published"),
                                f"port {port.published}/{port.protocol} is also published "
                                f"by {other} (line {doc.line(('services', other, 'ports', j))})"
                                " on the same server", "publish another port, or place the "
                                "two on different servers")
            taken.setdefault(key, []).append((name, i, where))
            for holder, there in observed.ports.get(key, ()):
                if where is None or there is None or where & there:
                    on = f" on {', '.join(sorted(there))}" if there else " on every server"
                    doc.problem(("services", name, "ports", i, "published"),
                                f"port {port.published}/{port.protocol} is published by "
                                f"{holder}{on}", "publish another port, or place this "
                                "service on other servers (placement.servers)")


def swarm_names(app: str, name: str, spec: ServiceSpec) -> list[str]:
    """The Swarm services `name` becomes (orchestrator.naming, slotting): `<app>_<name>`, a
    slot's `<app>_<name>-<n>` with storage, the address's `<app>_<name>_address`."""
    found = [f"{app}_{name}"]
    if spec.storage and spec.replicas:
        found.append(f"{app}_{name}-{spec.replicas}")
    if spec.address is not None:
        found.append(f"{app}_{name}_address")
    return found


def check_swarm_names(doc: Document, app: str, name: str, spec: ServiceSpec) -> None:
    longest = max(swarm_names(app, name, spec), key=len)
    if len(longest) > SWARM_NAME_MAX:
        doc.problem(("services", name), f"its Swarm service would be {longest!r}, "
                    f"{len(longest)} characters: Swarm allows {SWARM_NAME_MAX}",
                    f"shorten the app's name or this service's, to {SWARM_NAME_MAX} characters "
                    "for the longest: <app>_<service>, -<replica> with storage, _address "
                    "with an address")


def check_resources(doc: Document, name: str, spec, section: str = "services") -> None:
    found = spec.resources.memory_bytes()
    if found is not None and not MIN_MEMORY <= found <= MAX_MEMORY:
        doc.problem((section, name, "resources", "memory"),
                    f"{spec.resources.memory!r} is outside what Docker can hold",
                    f"give from {MIN_MEMORY >> 20}m (Docker's least) to {MAX_MEMORY >> 30}g")


def check_replica_ports(doc: Document, name: str, spec: ServiceSpec, observed: Observed) -> None:
    """A published port is host mode: one task per server. More replicas than the servers
    they may run on leave the rest pending for ever; DragonBall's own ports are taken."""
    for i, port in enumerate(spec.ports):
        own = OWN_PORTS.get((port.published, port.protocol))
        if own:
            doc.problem(("services", name, "ports", i, "published"), f"port {port.published}/"
                        f"{port.protocol} is DragonBall's own ({own})", "publish another port")
    where = candidates(spec, observed)
    if not spec.ports or not where or spec.replicas <= len(where):
        return
    port = spec.ports[0]
    doc.problem(("services", name, "replicas"), f"{spec.replicas} replicas publish port "
                f"{port.published}/{port.protocol} (line "
                f"{doc.line(('services', name, 'ports', 0))}) on {len(where)} server(s) "
                f"({', '.join(sorted(where)) or 'none'}): a published port takes one task "
                "per server", f"lower replicas to {len(where)}, or allow more servers")

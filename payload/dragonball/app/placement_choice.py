"""Where each service of a release's app runs, chosen at `dragonball deploy` (pure).

DESIGN point 9: the portal's install has few servers to place on, so placing is offered
once the expected servers have joined. Defaults: the spec's own `placement.servers` when
every one of them is in the cluster; else spread over the servers present: a service that
keeps data on its server's disk (`storage`) or publishes ports there (`ports`, `address`)
gets as many servers as it has replicas, each such service starting where the last one
stopped (the store and the web on different servers); any other service may run anywhere.

An answer is a list of server names (typed "s1, s2"); one not in the cluster is refused
with the list of those that are. An answers file is a mapping: service -> [servers], and
`when_ready: N` (deploy waits for N Ready servers first).
"""

from __future__ import annotations

import copy

from dragonball.app.model import AppSpec
from dragonball.errors import AppError, InvalidInput

WHEN_READY = "when_ready"


class PlacementInvalid(AppError, InvalidInput):
    """Deploy's answers (a file, the command line) name an unknown service or a server not
    in the cluster, or are not lists of names: every problem listed, nothing changed."""


def invalid(problems: list[str], hint: str) -> PlacementInvalid:
    """One error listing every problem (the message says them all: the CLI prints it)."""
    return PlacementInvalid(f"the answers have {len(problems)} problem(s):\n" +
                            "\n".join(f"  - {p}" for p in problems), hint, problems)


def pinned(service) -> bool:
    """Whether the service belongs on particular servers: its data or its ports are there."""
    return bool(service.storage or service.ports or service.address)


def defaults(spec: AppSpec, servers: list[str]) -> dict[str, list[str]]:
    """service -> the servers offered first (see the module's docstring)."""
    chosen, start = {}, 0
    for name, service in spec.services.items():
        own = list(service.placement.servers)
        if own and set(own) <= set(servers):
            chosen[name] = own
        elif pinned(service) and servers:
            count = max(1, min(service.replicas, len(servers)))
            chosen[name] = [servers[(start + i) % len(servers)] for i in range(count)]
            start += count
        else:
            chosen[name] = list(servers)
    return chosen


def parse(text: str) -> list[str]:
    """Server names typed as "s1, s2" or "s1 s2", each once, in order."""
    return list(dict.fromkeys(text.replace(",", " ").split()))


def answer_problem(names: list[str], servers: list[str]) -> str | None:
    """Why `names` cannot be a service's servers, or None."""
    if not names:
        return f"name at least one server (the cluster's: {', '.join(servers)})"
    unknown = [n for n in names if n not in servers]
    if unknown:
        return (f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not in the "
                f"cluster; its servers: {', '.join(servers)}")
    return None


def validator(servers: list[str]):
    """A questionary validator: True, or the message the prompt shows."""
    return lambda text: answer_problem(parse(text), servers) or True


def read_answers(data, spec: AppSpec) -> tuple[dict[str, list[str]], int | None]:
    """(service -> servers, when_ready) of an answers file's mapping, its shape and names
    checked against the spec (the servers are checked once the cluster is known);
    PlacementInvalid listing every problem."""
    if not isinstance(data, dict):
        raise PlacementInvalid("the answers file must be a mapping: service: [servers], "
                               "when_ready: N", "e.g. {web: [s1], store: [s2], when_ready: 3}")
    problems, chosen = [], {}
    when = data.get(WHEN_READY)
    if when is not None and (isinstance(when, bool) or not isinstance(when, int) or when < 1):
        problems.append(f"{WHEN_READY}: {when!r} is not a number of servers (1 or more)")
    for name, value in data.items():
        if name == WHEN_READY:
            continue
        if name not in spec.services:
            problems.append(f"{name}: not a service of app {spec.app} (its services: "
                            f"{', '.join(spec.services)})")
        elif isinstance(value, str):
            chosen[name] = parse(value)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            chosen[name] = list(dict.fromkeys(value))
        else:
            problems.append(f"{name}: {value!r} is not a list of server names")
    if problems:
        raise invalid(problems, "fix them all, then run dragonball deploy again")
    return chosen, when


def check_servers(chosen: dict[str, list[str]], servers: list[str]) -> None:
    """PlacementInvalid listing every answer that names a server not in the cluster."""
    problems = [f"{name}: {found}" for name, names in chosen.items()
                if (found := answer_problem(names, servers))]
    if problems:
        raise invalid(problems, "name the cluster's servers (dragonball devices), or wait "
                      "for the others to join")


def placed(data: dict, chosen: dict[str, list[str]]) -> dict:
    """The spec's mapping with each chosen service's `placement.servers` (labels kept)."""
    result = copy.deepcopy(data)
    for name, names in chosen.items():
        service = result["services"][name]
        service["placement"] = {**(service.get("placement") or {}), "servers": list(names)}
    return result


def summary(spec: AppSpec, chosen: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    """(service, replicas, servers) rows for the summary, in the spec's order."""
    return [(name, str(service.replicas), ", ".join(chosen.get(name, [])) or "any")
            for name, service in spec.services.items()]

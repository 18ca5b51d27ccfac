"""What the Services and Placement pages (and the dashboard's Services section) show, made
from plain data: `Control.status` rows, `Control.get_params` answers, job dicts, spec text.
Pure functions, tested with data written in the test.
"""

from __future__ import annotations

import dataclasses
import json

import yaml

from dragonball.portal.web.views import Alert, utc

#: How each service state reads on the dashboard's alerts (healthy ones raise none).
STATE_ALERTS = {"degraded": ("warning", "{h}/{d} replicas healthy"),
                "down": ("error", "no replica healthy (0/{d})"),
                "stopped": ("warning", "stopped (0 replicas wanted)"),
                "absent": ("warning", "not deployed on the Swarm"),
                "waiting": ("error", "waits for {w}, which is down: its data is there "
                                     "(it starts there when {w} is back)")}


@dataclasses.dataclass(frozen=True)
class TreeRow:
    """A service in the dependency tree: roots at depth 0, what each needs indented below."""

    app: str
    name: str
    kind: str
    state: str
    depth: int
    healthy: int
    desired: int
    servers: list          # [(server, number of its tasks there)]
    needs: list
    repeat: bool = False   # shown already higher up (a backend two services share)
    pinned: str = ""       # a slot: the server its storage pins it to
    of: str = ""           # a slot: its service's name in the spec (parameters, logs)
    waiting: str = ""      # a slot: its server, while that server is down
    address: str = ""      # a Service's moving address (docs/app-address.md)
    address_peers: tuple = ()  # the servers that may hold it (its keepalived runs there)


@dataclasses.dataclass(frozen=True)
class ParamField:
    """One input of a service's parameters form."""

    key: str
    type: str
    input: str            # "text", "number", "password", "select" (bools)
    value: str            # what the input holds; "" for a secret (never pre-filled)
    default: str
    secret: bool
    set: bool             # set on the portal (else the spec's default)
    step: str = ""        # "any" for floats, "1" for ints


@dataclasses.dataclass(frozen=True)
class Grid:
    """Servers × services: `cells[server][service]` = its number of tasks there;
    `allowed[service]`: the servers its placement names (empty: any)."""

    servers: list
    services: list
    cells: dict
    allowed: dict


def tasks_per_server(row: dict) -> list[tuple[str, int]]:
    counts: dict = {}
    for task in row.get("tasks", []):
        counts[task["server"]] = counts.get(task["server"], 0) + 1
    return sorted(counts.items())


def address_of(row: dict) -> dict:
    """The TreeRow fields of a Service's moving address (none without one)."""
    found = row.get("address") or {}
    if not found:
        return {}
    return {"address": found.get("address", ""), "address_peers": tuple(found.get("peers", ()))}


def tree(app: str, rows: list[dict]) -> list[TreeRow]:
    """`Control.status` rows as a tree: each root (what nothing needs), then what it needs,
    indented one more level, depth first. A service two parents share is shown in full
    under the first and as a `repeat` under the others."""
    by_name = {r["service"]: r for r in rows}
    needed = {n for r in rows for n in r["needs"]}
    roots = sorted(n for n in by_name if n not in needed)
    shown: set = set()
    found: list = []

    def walk(name: str, depth: int) -> None:
        row = by_name[name]
        found.append(TreeRow(app, name, row["kind"], row["state"], depth, row["healthy"],
                             row["desired"], tasks_per_server(row), list(row["needs"]),
                             repeat=name in shown, pinned=row.get("server") or "",
                             waiting=row.get("waiting") or "", of=row.get("of") or "",
                             **address_of(row)))
        if name in shown:
            return
        shown.add(name)
        for child in row["needs"]:
            if child in by_name:
                walk(child, depth + 1)
    for root in roots:
        walk(root, 0)
    return found


def service_alerts(rows: list[TreeRow]) -> list[Alert]:
    """An alert for each service (once) that is not healthy."""
    found, seen = [], set()
    for row in rows:
        if row.state not in STATE_ALERTS or (row.app, row.name) in seen:
            continue
        seen.add((row.app, row.name))
        level, text = STATE_ALERTS[row.state]
        found.append(Alert(level, f"{row.app}/{row.name}",
                           text.format(h=row.healthy, d=row.desired, w=row.waiting)))
    return found


# -- parameters -------------------------------------------------------------------------------
def value_text(value) -> str:
    """A parameter value as an input holds it: lists and numbers as JSON, bools as words."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def param_fields(found: dict) -> list[ParamField]:
    """`Control.get_params`' answer as form inputs; secrets are password inputs, empty."""
    fields = []
    for key, item in found["parameters"].items():
        kind, secret = item["type"], item["secret"]
        control = ("password" if secret else "select" if kind == "bool"
                   else "number" if kind in ("int", "float") else "text")
        fields.append(ParamField(
            key=key, type=kind, input=control, secret=secret, set=item["set"],
            value="" if secret else value_text(item["value"]),
            default="" if secret else value_text(item["default"]),
            step={"int": "1", "float": "any"}.get(kind, "")))
    return fields


def param_changes(fields: list[ParamField], form: dict) -> tuple[dict, list]:
    """({key: text} to set, [keys] to unset) from a submitted form: only what differs from
    what is in force; an empty secret input keeps the secret; `unset:<key>` resets it."""
    assign, unset = {}, []
    for field in fields:
        if form.get(f"unset:{field.key}"):
            unset.append(field.key)
            continue
        text = form.get(field.key)
        if text is None or (field.secret and text == ""):
            continue
        if field.secret or text != field.value:
            assign[field.key] = text
    return assign, unset


# -- placement --------------------------------------------------------------------------------
def grid(rows: list[dict], servers: list[str], allowed: dict) -> Grid:
    """The placement grid from `Control.status` rows, the cluster's servers (a server with
    no task yet has its column too) and each service's `placement.servers`."""
    names = [r["service"] for r in rows]
    every = sorted(set(servers) | {t["server"] for r in rows for t in r["tasks"] if t["server"]})
    cells = {server: {name: 0 for name in names} for server in every}
    for row in rows:
        for server, count in tasks_per_server(row):
            if server in cells:
                cells[server][row["service"]] = count
    return Grid(every, names, cells, {n: list(allowed.get(n, [])) for n in names})


def edit_placement(text: str, service: str, servers: list[str], replicas: int) -> str:
    """The spec text with `service`'s placement servers (none: any server) and replicas
    changed; everything else as it was (comments are not kept: YAML is written anew)."""
    data = yaml.safe_load(text)
    entry = data["services"][service]
    entry["replicas"] = replicas
    placement = dict(entry.get("placement") or {})
    if servers:
        placement["servers"] = list(servers)
    else:
        placement.pop("servers", None)
    if placement:
        entry["placement"] = placement
    else:
        entry.pop("placement", None)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def job_lines(job: dict) -> list[str]:
    """A job's events as lines for people: '  1.2s api healthy (2/2 running)'."""
    return [f"{e['t']:6.1f}s {e['service']} {e['state']}" +
            (f" ({e['detail']})" if e["detail"] else "") for e in job["events"]]


def job_view(job: dict | None) -> dict | None:
    """A job's dict (Job.to_dict) with what its fragment prints: event lines, the result as
    indented JSON, when it began."""
    if job is None:
        return None
    result = job["result"]
    return dict(job, lines=job_lines(job), started=utc(job["created"]),
                result_text="" if result is None else json.dumps(result, indent=2))

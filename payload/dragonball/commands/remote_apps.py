"""The app commands through the portal's REST API (`--remote`; dragonball.commands.remote
chooses): services, start|stop|restart, params get|set, plan, apply, logs.

Each prints what its local twin prints (dragonball.commands.apps) and takes the same
arguments; a job (start, stop, restart, apply) is followed by polling it, its events
printed as they come. Errors are the portal client's (a ClientError of the category the
answer says) or the app layer's, ended by the top-level handler (dragonball.cli) as the
local twin's would be.
"""

from __future__ import annotations

import json
import os
import re
import time

from rich.markup import escape

from dragonball.app import render
from dragonball.app.errors import the_only_app
from dragonball.app.plan import Plan, Step
from dragonball.console import console
from dragonball.errors import ExitStatus
from dragonball.orchestrator.params import ParamsInvalid
from dragonball.orchestrator.render import (event_line, print_params, print_services,
                                            print_task_results)
from dragonball.portal_client import PortalClient, PortalInvalid, saved_login


def _client(args) -> PortalClient:
    return saved_login().client()


def _app(args, portal: PortalClient) -> str:
    """--app, or the only app the portal has (the local commands' errors otherwise)."""
    return getattr(args, "app", None) or the_only_app(portal.apps())


class EventPrinter:
    """A job's events, one line each as they come (nothing under --json)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.events = quiet, []

    def __call__(self, event: dict) -> None:
        self.events.append(event)
        if not self.quiet:
            console.print(event_line(event.get("service", ""), event.get("state", ""),
                                     event.get("detail") or "", event.get("t")))


def services(args) -> int:
    with _client(args) as portal:
        app = _app(args, portal)
        found = portal.services(app)
    if args.json:
        console.print_json(json.dumps(found))
        return ExitStatus.OK
    print_services(app, found.get("services", []), console)
    return ExitStatus.OK


def lifecycle(args) -> int:
    printer = EventPrinter(args.json)
    with _client(args) as portal:
        app = _app(args, portal)
        job_id = portal.action(app, args.name, args.verb)
        job = portal.wait_job(job_id, printer, timeout=args.timeout)
    result = job.get("result")
    if args.json:
        done = result.get(args.verb, result) if isinstance(result, dict) else result
        notes = result.get("notes", []) if isinstance(result, dict) else []
        console.print_json(json.dumps({"ok": True, "app": app, args.verb: done,
                                       "notes": notes, "job": job_id,
                                       "events": printer.events}))
    else:
        console.print(f"[green]{args.verb} done[/green]: "
                      f"{escape(_names(result, args.verb)) or 'nothing'}")
    return ExitStatus.OK


def _names(result, verb: str) -> str:
    """The services a job's result names ([names], or {verb: [names], ...})."""
    if isinstance(result, dict):
        result = result.get(verb, result.get("done", ""))
    return ", ".join(map(str, result)) if isinstance(result, list) else str(result or "")


def params_get(args) -> int:
    with _client(args) as portal:
        found = portal.params(_app(args, portal), args.name)
    if args.json:
        console.print_json(json.dumps(found))
        return ExitStatus.OK
    print_params(found, console)
    return ExitStatus.OK


def typed_values(assignments: list[str], parameters: dict) -> dict:
    """KEY=VALUE texts as JSON values, by each parameter's type (pure).

    A string parameter takes the text as it is; any other type takes it as JSON (``4``,
    ``true``, ``["a"]``), and the text itself when it is not JSON, for the portal to judge.
    """
    values = {}
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ParamsInvalid(f"{text!r} is not KEY=VALUE", "e.g. workers=4")
        if (parameters.get(key) or {}).get("type") in ("string", "str", "secret"):
            values[key] = value
            continue
        try:
            values[key] = json.loads(value)
        except ValueError:
            values[key] = value
    return values


def params_set(args) -> int:
    if not args.assignments and not args.unset:
        raise ParamsInvalid("nothing to set", "give KEY=VALUE, or --unset KEY")
    with _client(args) as portal:
        app = _app(args, portal)
        known = portal.params(app, args.name).get("parameters", {})
        answer = portal.set_params(app, args.name, typed_values(args.assignments, known),
                                   args.unset)
    tasks = answer.get("tasks", [])
    ok = bool(answer.get("ok", all(t.get("ok") for t in tasks)))
    if args.json:
        console.print_json(json.dumps({"ok": ok, "app": app, "service": args.name,
                                       "tasks": tasks}))
    else:
        print_task_results(app, args.name, tasks, console)
    return ExitStatus.OK if ok else ExitStatus.FAILED


def _spec(args) -> tuple[str, str]:
    try:
        with open(args.spec, encoding="utf-8") as f:
            return f.read(), spec_name(args.spec)
    except (OSError, UnicodeDecodeError) as e:
        raise PortalInvalid(f"cannot read the spec {args.spec}: {e}") from e


def spec_name(path: str) -> str:
    """The file name the portal shows in problems: letters, digits, ``._-`` only."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(path)).lstrip("._-")
    return name[:100] or "spec.yaml"


def plan_of(found: dict) -> Plan:
    """A Plan back from its JSON (Plan.to_dict), to print it as the local commands do."""
    def waves(key):
        return tuple(tuple(Step(s["service"], s["kind"], s["action"], s["image"],
                                s.get("replicas"), tuple(s.get("reasons", ())))
                           for s in wave) for wave in found.get(key, []))
    return Plan(found.get("app", "?"), waves("stop_waves"), waves("start_waves"),
                tuple(found.get("notes", ())))


def plan(args) -> int:
    text, name = _spec(args)
    with _client(args) as portal:
        found = portal.plan(text, name)
    if args.json:
        console.print_json(json.dumps(found))
    else:
        render.print_plan(plan_of(found), console)
    return ExitStatus.OK


def apply(args) -> int:
    text, name = _spec(args)
    printer, began = EventPrinter(args.json), time.monotonic()
    with _client(args) as portal:
        found = portal.plan(text, name)
        if not args.json:
            render.print_plan(plan_of(found), console)
        if not args.dry_run:
            job_id = portal.apply(text, name)
            portal.wait_job(job_id, printer, timeout=args.timeout)
    if args.json:
        console.print_json(json.dumps({"ok": True, "plan": found, "applied": not args.dry_run,
                                       "events": printer.events}))
    elif not args.dry_run:
        console.print(f"[green]applied[/green] {escape(str(found.get('app')))} in "
                      f"{time.monotonic() - began:.1f} s")
    return ExitStatus.OK


def logs(args) -> int:
    if args.tail < 1:
        raise PortalInvalid(f"--tail {args.tail}: give a number of lines, 1 or more")
    with _client(args) as portal:
        app = _app(args, portal)
        found = portal.logs(app, args.name, args.tail)
    if args.json:
        console.print_json(json.dumps({"app": app, "service": args.name} | found))
        return ExitStatus.OK
    for task in found.get("tasks", []):
        console.print(f"[bold]== {escape(str(task.get('task')))} on "
                      f"{escape(str(task.get('server')))} ==[/bold]")
        for line in task.get("lines", []):
            console.print(line, markup=False, highlight=False)
    return ExitStatus.OK


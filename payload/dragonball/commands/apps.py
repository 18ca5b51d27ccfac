"""The application commands, on the portal server as root (docs/orchestrator.md):

    dragonball apply SPEC [--dry-run] [--timeout S] [--json]
    dragonball start|stop|restart NAME [--app APP] [--json]
    dragonball services [--app APP] [--json]
    dragonball notifications [--app APP] [--limit N] [--json]
    dragonball params get NAME [--app APP] [--json]
    dragonball params set NAME KEY=VALUE... [--unset KEY] [--app APP] [--json]

Exit status: 0 done, 1 failed (a service not healthy, a task refused its parameters),
2 invalid input (the spec, a parameter value, an unknown service); nothing is changed on
invalid input. `--app` may be left out while the portal has one app.
"""

from __future__ import annotations

import json
import time

from rich.markup import escape
from rich.table import Table

from dragonball.app import render
from dragonball.app.errors import AppSpecInvalid, CycleError, UnknownService
from dragonball.console import console, err_console
from dragonball.errors import DragonBallError
from dragonball.orchestrator import params as params_mod
from dragonball.orchestrator.control import AppNotApplied, Control
from dragonball.orchestrator.params import ParamsInvalid
from dragonball.orchestrator.render import (event_line, print_params, print_services,
                                            print_task_results)
from dragonball.orchestrator.rollout import RolloutFailed
from dragonball.portal import settings as settings_mod
from dragonball.portal import wiring

OK, FAILED, INVALID = 0, 1, 2


def register(commands) -> None:
    apply = commands.add_parser(
        "apply", help="start an app spec on the cluster: leaves first, each healthy first",
        description="Check an app spec against the cluster, then roll it out: every service "
                    "after what it needs is healthy; services no longer in the spec stop, "
                    "roots first. Exit status: 0 done, 1 a service failed, 2 invalid spec.")
    apply.add_argument("spec", help="the app spec (YAML)")
    apply.add_argument("--dry-run", action="store_true", help="print the plan only")
    _common(apply, app=False)
    apply.set_defaults(handler=apply_command)
    for verb, what in (("start", "start a service and everything it needs, leaves first"),
                       ("stop", "stop a service and what only it needs, roots first"),
                       ("restart", "stop, then start, a service with its subtree")):
        parser = commands.add_parser(verb, help=what, description=what.capitalize() + ".")
        parser.add_argument("name", help="the service's name in the app spec")
        _common(parser)
        parser.set_defaults(handler=lifecycle_command, verb=verb)
    services = commands.add_parser("services", help="the app's services and their state")
    _common(services)
    services.set_defaults(handler=services_command)
    notes = commands.add_parser("notifications",
                                help="the latest state-change notifications and their delivery")
    notes.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    _common(notes)
    notes.set_defaults(handler=notifications_command)
    params = commands.add_parser("params", help="a service's parameters: get, set")
    sub = params.add_subparsers(dest="params_command", required=True)
    get = sub.add_parser("get", help="the parameters in force (secrets masked)")
    get.add_argument("name")
    _common(get)
    get.set_defaults(handler=params_get_command)
    put = sub.add_parser("set", help="set parameters: validated, kept on the portal, "
                                     "delivered to every task (config_change)")
    put.add_argument("name")
    put.add_argument("assignments", nargs="*", metavar="KEY=VALUE")
    put.add_argument("--unset", action="append", default=[], metavar="KEY",
                     help="back to the spec's default")
    _common(put)
    put.set_defaults(handler=params_set_command)


def _common(parser, app: bool = True) -> None:
    if app:
        parser.add_argument("--app", help="the app (default: the only one applied)")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help="seconds a service may take to be healthy (default 300)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--config", default=settings_mod.CONFIG_FILE, metavar="FILE",
                        help=f"the portal's settings (default {settings_mod.CONFIG_FILE})")


class Progress:
    """One line per service state change, with the time since the command began."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.began = quiet, time.monotonic()
        self.events: list = []

    def __call__(self, service: str, state: str, detail: str) -> None:
        elapsed = time.monotonic() - self.began
        self.events.append({"service": service, "state": state, "detail": detail,
                            "t": round(elapsed, 2)})
        if not self.quiet:
            console.print(event_line(service, state, detail, elapsed))


def _control(args, progress=None) -> Control:
    settings = settings_mod.load(args.config)
    return wiring.control(settings, progress=progress, wait_s=args.timeout)


def _app(args, control: Control) -> str:
    if getattr(args, "app", None):
        return args.app
    apps = control.store.apps()
    if len(apps) == 1:
        return apps[0]
    raise AppNotApplied("no app is applied yet" if not apps else
                        f"several apps are applied ({', '.join(apps)})",
                        "apply one first" if not apps else "say which: --app NAME")


def _run(args, body) -> int:
    """Map the application layer's errors to exit codes and clear messages."""
    try:
        return body()
    except (AppSpecInvalid, ParamsInvalid, UnknownService, CycleError, AppNotApplied) as e:
        _error(args, e, INVALID)
        return INVALID
    except RolloutFailed as e:
        _error(args, e, FAILED, {"service": e.service, "server": e.server,
                                 "output": e.output, "healthy": e.healthy})
        return FAILED
    except DragonBallError as e:
        _error(args, e, FAILED)
        return FAILED


def _error(args, e: DragonBallError, status: int, extra: dict | None = None) -> None:
    if args.json:
        body = {"ok": False, "exit_status": status, "error": e.message, "hint": e.hint}
        if isinstance(e, AppSpecInvalid):
            body["problems"] = [p.to_dict() for p in e.problems]
        console.print_json(json.dumps(body | (extra or {})))
    else:
        err_console.print(f"[red]error:[/red] {escape(e.message)}")
        if e.hint:
            err_console.print(f"[dim]hint:[/dim] {escape(e.hint)}")


def apply_command(args) -> int:
    progress = Progress(args.json)

    def body():
        control = _control(args, progress)
        prepared = control.prepare(args.spec)  # read, observed and planned once
        plan = prepared.plan
        if not args.json:
            render.print_plan(plan, console)
        if not args.dry_run:
            control.execute(prepared)
        if args.json:
            console.print_json(json.dumps({"ok": True, "plan": plan.to_dict(),
                                           "applied": not args.dry_run,
                                           "events": progress.events}))
        elif not args.dry_run:
            console.print(f"[green]applied[/green] {escape(plan.app)} in "
                          f"{time.monotonic() - progress.began:.1f} s")
        return OK
    return _run(args, body)


def lifecycle_command(args) -> int:
    progress = Progress(args.json)

    def body():
        control = _control(args, progress)
        app = _app(args, control)
        notes: tuple = ()
        if args.verb == "stop":
            done, notes = control.stop(app, args.name)
        else:
            done = getattr(control, args.verb)(app, args.name)
        if args.json:
            console.print_json(json.dumps({"ok": True, "app": app, args.verb: done,
                                           "notes": list(notes), "events": progress.events}))
        else:
            for note in notes:
                console.print(f"note: {escape(note)}")
            console.print(f"[green]{args.verb} done[/green]: {escape(', '.join(done)) or 'nothing'}")
        return OK
    return _run(args, body)


def services_command(args) -> int:
    def body():
        control = _control(args)
        app = _app(args, control)
        rows = control.status(app)
        if args.json:
            console.print_json(json.dumps({"app": app, "services": rows}))
            return OK
        print_services(app, rows, console)
        return OK
    return _run(args, body)


def notifications_command(args) -> int:
    def body():
        control = _control(args)
        app = _app(args, control)
        rows = control.notifications(app, args.limit)
        if args.json:
            console.print_json(json.dumps({"app": app, "notifications": rows}))
            return OK
        table = Table(title=f"app {app}: notifications, newest first", title_justify="left")
        for column in ("to", "seq", "about", "event", "delivered", "attempts / last error"):
            table.add_column(column, overflow="fold")
        for r in rows:
            when = (time.strftime("%H:%M:%S", time.localtime(r["delivered"]))
                    if r["delivered"] else "[yellow]pending[/yellow]")
            table.add_row(r["to"], str(r["seq"]), r["payload"]["service"],
                          r["payload"]["event"], when,
                          f"{r['attempts']} {escape(r['last_error'] or '')}")
        console.print(table)
        return OK
    return _run(args, body)


def params_get_command(args) -> int:
    def body():
        control = _control(args)
        found = control.get_params(_app(args, control), args.name)
        for item in found["parameters"].values():
            if item["secret"] and item["value"] != "":
                item["value"] = params_mod.MASK
        if args.json:
            console.print_json(json.dumps(found))
            return OK
        print_params(found, console)
        return OK
    return _run(args, body)


def params_set_command(args) -> int:
    def body():
        control = _control(args)
        app = _app(args, control)
        if not args.assignments and not args.unset:
            raise ParamsInvalid("nothing to set", "give KEY=VALUE, or --unset KEY")
        results = control.set_params(app, args.name, args.assignments, args.unset)
        failed = [r for r in results if not r.ok]
        if args.json:
            console.print_json(json.dumps({"ok": not failed, "app": app, "service": args.name,
                                           "tasks": [r.to_dict() for r in results]}))
        else:
            print_task_results(app, args.name, [r.to_dict() for r in results], console)
        return FAILED if failed else OK
    return _run(args, body)

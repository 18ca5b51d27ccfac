"""The application commands (docs/orchestrator.md), each written once against the `Apps`
interface (commands/app_access.py): on the portal as root they work on its engine and store;
from any machine logged in to it (`dragonball login`), through its REST API. Arguments,
output, `--json` documents and exit statuses are the same on both paths.

    dragonball apply [SPEC] [--dry-run] [--timeout S] [--json]
    dragonball start|stop|restart NAME [--app APP] [--json]
    dragonball services [--app APP] [--json]
    dragonball notifications [--app APP] [--limit N] [--json]
    dragonball params get NAME|@shared [--app APP] [--json]
    dragonball params set NAME[,NAME...]|@shared KEY=VALUE|KEY=@PATH|KEY=-... [--stdin KEY]
                      [--from-file KEY=FILE] [--unset KEY] [--spec SPEC] [--app APP] [--json]
    dragonball logs NAME [--app APP] [--tail N] [--json]

Each also takes `--remote` and `--config FILE` (which path: app_access.use_remote).
`params set` reads `KEY=@PATH` (a file), `KEY=-` (stdin) and `KEY=@@TEXT` (the literal
`@TEXT`) on this machine, before anything is sent (commands/param_values.py). `@shared`
names the app's shared parameters (the spec's `shared:`): set once, they reach every
service taking them, and a refusal by any of its tasks restores the value before in all.
`plan SPEC --remote` (commands/spec.py) plans through the portal with `plan_remote`.
`apply` with no SPEC, on the portal as root, applies the app the installed release carries
(dragonball/release/installed.py; `dragonball deploy`'s placed spec once there is one).
Exit status (dragonball.errors, reported by the one handler of dragonball.cli): 0 done,
1 failed (a service not healthy, a task refused its parameters), 2 invalid input (the spec,
a parameter value: nothing is changed), 3 an unknown app or service, 4 the app is busy with
another job, 5 the portal or its engine does not answer, 6 no login or refused. `--app` may
be left out while the portal has one app.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

from rich.markup import escape

from dragonball.app import render as plan_render
from dragonball.app import spec as app_spec
from dragonball.app.errors import UnknownService, the_only_app
from dragonball.app.model import SHARED
from dragonball.app.plan import Plan
from dragonball.commands import param_values
from dragonball.commands.app_access import open_apps, transport_options, use_remote
from dragonball.console import console
from dragonball.errors import ExitStatus, InvalidInput
from dragonball.orchestrator import params as params_mod
from dragonball.orchestrator import render
from dragonball.release import installed

TAIL_MAX, LIMIT_MAX = 5000, 1000  # what the API takes (portal/apps_api.py)


def register(commands) -> None:
    """Add the app commands to the `dragonball` subcommands."""
    apply = commands.add_parser(
        "apply", help="start an app spec on the cluster: leaves first, each healthy first",
        description="Check an app spec against the cluster, then roll it out: every service "
                    "after what it needs is healthy; services no longer in the spec stop, "
                    "roots first. Exit status: 0 done, 1 a service failed, 2 invalid spec "
                    "(README.md, 'Exit statuses').")
    apply.add_argument("spec", nargs="?",
                       help="the app spec (YAML); left out, on the portal as root: the app "
                            "the installed release carries (placed by dragonball deploy, "
                            "if it was)")
    apply.add_argument("--dry-run", action="store_true", help="print the plan only")
    _options(apply, app=False)
    apply.set_defaults(handler=apply_command)
    for verb, what in (("start", "start a service and everything it needs, leaves first"),
                       ("stop", "stop a service and what only it needs, roots first"),
                       ("restart", "stop, then start, a service with its subtree")):
        parser = commands.add_parser(verb, help=what, description=what.capitalize() + ".")
        parser.add_argument("name", help="the service's name in the app spec")
        _options(parser)
        parser.set_defaults(handler=lifecycle_command, verb=verb)
    services = commands.add_parser("services", help="the app's services and their state")
    _options(services)
    services.set_defaults(handler=services_command)
    notes = commands.add_parser("notifications",
                                help="the latest state-change notifications and their delivery")
    notes.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    _options(notes)
    notes.set_defaults(handler=notifications_command)
    _register_params(commands)
    logs = commands.add_parser("logs", help="the last lines of a service's tasks' logs")
    logs.add_argument("name", help="the service's name in the app spec")
    logs.add_argument("--tail", type=int, default=200, help="lines per task (default 200)")
    _options(logs)
    logs.set_defaults(handler=logs_command)


def _register_params(commands) -> None:
    params = commands.add_parser("params", help="a service's parameters: get, set")
    sub = params.add_subparsers(dest="params_command", required=True)
    get = sub.add_parser("get", help="the parameters in force (secrets masked)")
    get.add_argument("name", help=f"a service or a job, or {SHARED}: the app's shared "
                                  "parameters and which services take each")
    _options(get)
    get.set_defaults(handler=params_get_command)
    put = sub.add_parser(
        "set", help="set parameters: validated, kept on the portal, delivered to every task "
                    "(config_change)",
        description="Set parameters of a service. A value is KEY=VALUE (the text as it "
                    "is), KEY=@PATH (the whole file PATH, one trailing newline dropped; at "
                    "most 64 KiB), KEY=- (standard input until its end, once per command; "
                    "on a terminal one line, not echoed) or KEY=@@TEXT (the literal @TEXT; a "
                    "literal - comes from a file or stdin). A value read from a file or "
                    "stdin is never printed. Exit status: 0 "
                    "set, 1 a task refused them (the values before are back everywhere), 2 "
                    "invalid (nothing set), 3 no such app or service.")
    put.add_argument("name", help=f"the service (or job); several: api,worker (the same "
                                  "values given to each, each checked before any is set); "
                                  f"or {SHARED}: the app's shared parameters (spec 'shared:'), "
                                  "set once for every service taking them")
    put.add_argument("assignments", nargs="*", metavar="KEY=VALUE",
                     help="KEY=VALUE, KEY=@PATH (from a file), KEY=- (from stdin), "
                          "KEY=@@TEXT (the literal @TEXT)")
    put.add_argument("--unset", action="append", default=[], metavar="KEY",
                     help="back to the spec's default")
    put.add_argument("--stdin", metavar="KEY", dest="stdin_key",
                     help="the value of KEY from standard input, as KEY=- (a secret: never "
                          "in the process list or the shell's history)")
    put.add_argument("--from-file", action="append", default=[], metavar="KEY=FILE",
                     help="the value of KEY from FILE, as KEY=@FILE (its text, one final "
                          "newline dropped)")
    put.add_argument("--spec", metavar="SPEC",
                     help="for an app not applied yet: the spec it will be applied with "
                          "(the values are checked against it and kept; its first apply "
                          "starts the tasks with them)")
    _options(put)
    put.set_defaults(handler=params_set_command)


def _options(parser, app: bool = True) -> None:
    if app:
        parser.add_argument("--app", help="the app (default: the only one applied)")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help="seconds a service may take to be healthy, and to follow the "
                             "portal's job (default 300)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    transport_options(parser)


class Events:
    """A job's progress events: a line each as it comes (none under --json), all kept for
    the JSON document."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.events = quiet, []

    def __call__(self, event: dict) -> None:
        self.events.append(event)
        if not self.quiet:
            console.print(render.event_line(event.get("service", ""), event.get("state", ""),
                                            event.get("detail") or "", event.get("t")))


def _print_json(document: dict) -> None:
    console.print_json(json.dumps(document))


def _app(args, apps) -> str:
    """--app, or the only app applied."""
    return getattr(args, "app", None) or the_only_app(apps.apps())


def spec_name(path: str) -> str:
    """The file name a spec is known by on the portal (in problems, in its store): the
    path's last part in letters, digits and ``._-`` only (the API's rule)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(path)).lstrip("._-")
    return name[:100] or "spec.yaml"


def read_spec(path: str) -> tuple[str, str]:
    """(the spec's text, its name); AppSpecInvalid when the file cannot be read."""
    return app_spec.read_text(path), spec_name(path)


def release_spec(args) -> str:
    """The spec `apply` with no file applies: the installed release's app, on the portal."""
    if use_remote(args):
        raise installed.NoReleaseApp("apply with no spec file applies the app of the release "
                                     "installed on the portal, as root there; through the API "
                                     "it needs a file",
                                     "give a spec file: dragonball apply SPEC --remote")
    _, spec = installed.release_app()
    chosen = installed.placed_or_kept(spec)
    if not args.json:
        console.print(f"the installed release's app: {escape(chosen)}")
    return chosen


def apply_command(args) -> int:
    text, file = read_spec(args.spec if args.spec else release_spec(args))
    events, began = Events(args.json), time.monotonic()
    with open_apps(args) as apps:
        plan = apps.plan(text, file)
        if not args.json:
            plan_render.print_plan(Plan.from_dict(plan), console)
        if not args.dry_run:
            apps.apply(text, file, events)
    if args.json:
        _print_json({"ok": True, "plan": plan, "applied": not args.dry_run,
                     "events": events.events})
    elif not args.dry_run:
        console.print(f"[green]applied[/green] {escape(str(plan.get('app')))} in "
                      f"{time.monotonic() - began:.1f} s")
    return ExitStatus.OK


def plan_remote(args) -> int:
    """`plan SPEC --remote`: the portal plans the spec against the cluster."""
    text, file = read_spec(args.spec)
    with open_apps(args) as apps:
        plan = apps.plan(text, file)
    if args.json:
        _print_json(plan)
    else:
        plan_render.print_plan(Plan.from_dict(plan), console)
    return ExitStatus.OK


def lifecycle_command(args) -> int:
    events = Events(args.json)
    with open_apps(args) as apps:
        app = _app(args, apps)
        result = apps.act(args.verb, app, args.name, events)
    done, notes = result.get(args.verb) or [], result.get("notes") or []
    if args.json:
        _print_json({"ok": True, "app": app, args.verb: done, "notes": notes,
                     "events": events.events})
        return ExitStatus.OK
    for note in notes:
        console.print(f"note: {escape(note)}")
    console.print(f"[green]{args.verb} done[/green]: {escape(', '.join(done)) or 'nothing'}")
    return ExitStatus.OK


def services_command(args) -> int:
    with open_apps(args) as apps:
        app = _app(args, apps)
        rows = apps.services(app)
    if args.json:
        _print_json({"app": app, "services": rows})
    else:
        render.print_services(app, rows, console)
    return ExitStatus.OK


def notifications_command(args) -> int:
    _check_range("--limit", args.limit, LIMIT_MAX, "notifications")
    with open_apps(args) as apps:
        app = _app(args, apps)
        rows = apps.notifications(app, args.limit)
    if args.json:
        _print_json({"app": app, "notifications": rows})
    else:
        render.print_notifications(app, rows, console)
    return ExitStatus.OK


def params_get_command(args) -> int:
    with open_apps(args) as apps:
        found = apps.params(_app(args, apps), args.name)
    if args.json:
        _print_json(found)
    else:
        render.print_params(found, console)
    return ExitStatus.OK


def params_set_command(args) -> int:
    """KEY=VALUE texts typed by each service's own parameter types (params.assignments, the
    one parser), every service's checked before any is set (NAME may list several,
    `api,worker`: the same values given to each; or be @shared, the app's shared
    parameters, set once for every service taking them); exit 1 when a task refused them.
    Values from files and stdin are read first (param_values), and never shown."""
    given = param_values.resolve(args.assignments, args.stdin_key, args.from_file)
    if not given and not args.unset:
        raise params_mod.ParamsInvalid("nothing to set", "give KEY=VALUE, KEY=@FILE, KEY=-, "
                                       "or --unset KEY")
    names = list(dict.fromkeys(n.strip() for n in args.name.split(",") if n.strip()))
    if not names:
        raise params_mod.ParamsInvalid(f"{args.name!r} names no service",
                                       "give NAME, or several: api,worker")
    if SHARED in names and len(names) > 1:
        others = ", ".join(n for n in names if n != SHARED)
        raise params_mod.ParamsInvalid(f"{SHARED} is set alone, not with {others}",
                                       "its values reach every service taking them: "
                                       f"dragonball params set {SHARED} KEY=VALUE")
    app, answer, secrets = _set_each(args, names, given)
    _note_exposed({g.key for g in given if g.key and not g.source} & secrets)
    tasks, restored = answer.get("tasks", []), bool(answer.get("restored"))
    if args.json:
        _print_json({"ok": answer["ok"], "app": app, "service": args.name, "tasks": tasks,
                     "restored": restored})
    else:
        render.print_task_results(app, args.name, tasks, console)
        if restored:
            console.print("[red]refused[/red]: a task's config_change failed, so the values "
                          "before are back on every server and in every task; nothing of "
                          "this change was kept. Fix the value (the task's answer above says "
                          "why), then set it again.")
    return ExitStatus.OK if answer["ok"] else ExitStatus.FAILED


def _set_each(args, names: list[str], given: list) -> tuple[str, dict, set]:
    """(the app, the answers together, the secret keys): every service's values typed
    before any is set."""
    texts = [g.assignment() for g in given]
    unquoted = frozenset(g.key for g in given if g.source)
    spec = read_spec(args.spec) if args.spec else None
    with open_apps(args) as apps:
        checked, secrets = [], set()
        for name in names:     # every one checked before anything is set
            app, types, secret = _params_of(args, apps, spec, name)
            checked.append((name, params_mod.assignments(name, texts, types, unquoted)))
            secrets |= secret
        answers = [apps.set_params(app, name, values, args.unset, spec)
                   for name, values in checked]
    return app, {"ok": all(a["ok"] for a in answers),
                 "tasks": [t for a in answers for t in a.get("tasks", [])],
                 "restored": any(a.get("restored") for a in answers)}, secrets


def _note_exposed(exposed: set) -> None:
    """Secrets typed on the command line: every user of the server could read them."""
    if exposed:
        sys.stderr.write(f"note: {', '.join(sorted(exposed))} "
                         f"{'is a secret' if len(exposed) == 1 else 'are secrets'} given on "
                         "the command line, which every user of this server could read while "
                         "it ran: next time use KEY=- (stdin) or KEY=@FILE\n")


def _params_of(args, apps, given: tuple[str, str] | None,
               name: str) -> tuple[str, dict, set]:
    """(the app, {key: type}, the secret keys) of service `name`: the applied spec's, or,
    for an app not applied yet, the one given with --spec."""
    applied = apps.apps()
    if given is not None:
        spec = app_spec.load(*given)
        app = getattr(args, "app", None) or spec.app
        if app not in applied:
            if name != SHARED and name not in spec.members():   # a service, a job
                raise UnknownService(name, spec.members())
            declared = spec.holder(name).parameters
            return app, {k: p.type for k, p in declared.items()}, \
                {k for k, p in declared.items() if p.secret}
    else:
        app = getattr(args, "app", None) or the_only_app(applied)
    known = apps.params(app, name)["parameters"]
    return app, {key: item.get("type") for key, item in known.items()}, \
        {key for key, item in known.items() if item.get("secret")}


def logs_command(args) -> int:
    _check_range("--tail", args.tail, TAIL_MAX, "lines")
    with open_apps(args) as apps:
        app = _app(args, apps)
        tasks = apps.logs(app, args.name, args.tail)
    if args.json:
        _print_json({"app": app, "service": args.name, "tasks": tasks})
    else:
        render.print_logs(tasks, console)
    return ExitStatus.OK


def _check_range(option: str, value: int, most: int, what: str) -> None:
    if not 1 <= value <= most:
        raise InvalidInput(f"{option} {value}: give a number of {what} from 1 to {most}")

"""`dragonball deploy`: the installed release's app, placed and started (issue 18, DESIGN 9).

    dragonball deploy [--when-ready N] [--answers FILE] [--yes] [--wait S] [--timeout S]

On the portal as root. Waits (its progress shown) until N servers are Ready (default: every
server the Swarm knows now), asks where each service runs (defaults and checks:
app/placement_choice.py), shows the placed spec's summary, asks to confirm, writes it beside
the release's app.yaml (placed.app.yaml, what `dragonball apply` with no file applies from
then on) and applies it. `--answers FILE` (service: [servers], when_ready: N) and `--yes`
make it unattended; a service the file leaves out takes its default under --yes.
"""

from __future__ import annotations

import os
import time

import questionary
import yaml
from rich.markup import escape
from rich.table import Table

from dragonball.app import placement_choice as choice
from dragonball.app import spec as app_spec
from dragonball.app import render as plan_render
from dragonball.app.plan import Plan
from dragonball.commands import apps_local
from dragonball.commands.apps import Events, spec_name
from dragonball.console import console
from dragonball.errors import AppError, ExitStatus, Failed, InvalidInput
from dragonball.portal import settings as settings_mod
from dragonball.release import installed
from dragonball.shared import safe_yaml
from dragonball.wizard.errors import Cancelled
from dragonball.wizard.terminal import Io


class DeployUnattended(AppError, InvalidInput):
    """deploy would ask questions, and there is no terminal to ask them on."""


class DeployFailed(AppError, Failed):
    """deploy could not go on: the servers did not become Ready in time, or the placed spec
    could not be written."""


def register(commands) -> None:
    deploy = commands.add_parser(
        "deploy", help="place the installed release's app on the servers and start it",
        description="On the portal as root: wait for the servers, ask where each service of "
                    "the installed release's app runs, confirm, then apply it.")
    deploy.add_argument("--when-ready", type=int, metavar="N",
                        help="servers Ready before placing (default: all the Swarm knows)")
    deploy.add_argument("--answers", metavar="FILE",
                        help="YAML: service: [servers], and when_ready: N")
    deploy.add_argument("--yes", action="store_true",
                        help="ask nothing: the answers file, else the defaults; no confirmation")
    deploy.add_argument("--wait", type=float, default=1800.0, metavar="S",
                        help="seconds to wait for the servers (default 1800)")
    deploy.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help="seconds a service may take to be healthy (default 300)")
    deploy.add_argument("--config", default=settings_mod.CONFIG_FILE, metavar="FILE",
                        help=f"the portal's settings (default {settings_mod.CONFIG_FILE})")
    deploy.set_defaults(handler=deploy_command)


def deploy_command(args, io: Io | None = None) -> int:
    io = io or Io()
    _, kept = installed.release_app()
    text = app_spec.read_text(kept)
    spec, data = app_spec.load(text, spec_name(kept)), yaml.safe_load(text)
    given, when = choice.read_answers(_read_answers(args.answers), spec) if args.answers \
        else ({}, None)
    if args.when_ready is not None and args.when_ready < 1:
        raise choice.invalid([f"--when-ready {args.when_ready}: 1 or more"], "e.g. 3")
    if not args.yes and not io.is_terminal():
        raise DeployUnattended(f"deploy asks questions and {io.not_terminal_reason()}",
                               "run it in a terminal, or give --yes (with --answers FILE "
                               "for other than the defaults)")
    apps = apps_local.open_local(args)
    try:
        servers = wait_ready(apps.control.engine, args.when_ready or when, args.wait)
        choice.check_servers(given, servers)
        chosen = _choose(spec, given, choice.defaults(spec, servers), servers, args.yes, io)
        _print_summary(spec, chosen)
        if not args.yes and not _ask(io, questionary.confirm(
                "Write this placement and start the app?", default=True,
                **io.prompt_kwargs())):
            console.print("nothing changed")
            return ExitStatus.OK
        placed = _write_placed(kept, choice.placed(data, chosen))
        _apply(apps, placed)
    finally:
        apps.close()
    return ExitStatus.OK


def wait_ready(engine, want: int | None, wait_s: float, clock=time.monotonic,
               sleep=time.sleep, poll_s: float = 5.0) -> list[str]:
    """The Ready servers' names once there are `want` of them (None: as many as the Swarm
    knows now), each change shown; DeployFailed past `wait_s` seconds."""
    nodes = engine.nodes()
    want, deadline, said = want or len(nodes), clock() + wait_s, None
    while True:
        ready = sorted(n.hostname for n in nodes if n.ready)
        if len(ready) != said:
            console.print(f"{len(ready)} of {want} server(s) Ready: {', '.join(ready) or '-'}")
            said = len(ready)
        if len(ready) >= want:
            return ready
        if clock() >= deadline:
            raise DeployFailed(f"{len(ready)} of {want} servers Ready after {wait_s:.0f} s",
                               "look at the others (dragonball devices); or place on those "
                               f"here: dragonball deploy --when-ready {max(len(ready), 1)}")
        sleep(poll_s)
        nodes = engine.nodes()


#: deploy's answers file: small, shallow (service: [servers], when_ready: N)
ANSWERS_LIMITS = safe_yaml.Limits(max_bytes=64 * 1024, max_depth=8, max_values=10_000,
                                  what="a deploy answers file")


def _read_answers(path: str):
    """The answers file's data, read no further than its size limit and checked by
    shared/safe_yaml (no alias bomb, no deep nesting, no custom tag) before it is loaded."""
    data, problems = safe_yaml.read_file(path, ANSWERS_LIMITS)
    text = None
    if data is not None:
        text, problems = safe_yaml.text_of(data, ANSWERS_LIMITS)
    if text is not None:
        problems = safe_yaml.compose(text, ANSWERS_LIMITS).problems
    if problems:
        raise choice.invalid([f"{path}" + (f":{p.line}" if p.line else "") + f": {p.message}"
                              for p in problems], problems[0].hint or "fix the line it names")
    return yaml.safe_load(text)


def _choose(spec, given: dict, defaults: dict, servers: list, yes: bool, io: Io) -> dict:
    """service -> servers: the answers file's, else the default (--yes), else asked."""
    chosen = {}
    for name, service in spec.services.items():
        if name in given or yes:
            chosen[name] = given.get(name, defaults[name])
            continue
        kept_data = ", data on its server" if service.storage else ""
        answer = _ask(io, questionary.text(
            f"{name} ({service.replicas} replica(s){kept_data}): on which servers?",
            default=", ".join(defaults[name]), validate=choice.validator(servers),
            **io.prompt_kwargs()))
        chosen[name] = choice.parse(answer)
    return chosen


def _ask(io: Io, question):
    try:
        return question.unsafe_ask()
    except (KeyboardInterrupt, EOFError) as e:
        raise Cancelled("cancelled before the placement was confirmed: nothing was changed",
                        "run dragonball deploy again when ready") from e


def _print_summary(spec, chosen: dict) -> None:
    table = Table(title=f"app {spec.app}: where each service runs", title_justify="left")
    for column in ("service", "replicas", "servers"):
        table.add_column(column)
    for row in choice.summary(spec, chosen):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)


def _write_placed(kept: str, data: dict) -> str:
    path = os.path.join(os.path.dirname(kept), installed.PLACED)
    text = "# dragonball deploy's placement of the release's app.yaml\n" + \
        yaml.safe_dump(data, sort_keys=False)
    try:
        installed.keep_file(path, text.encode("utf-8"))
    except OSError as e:
        raise DeployFailed(f"cannot write {path}: {e.strerror}",
                           "run it as root on the portal") from e
    console.print(f"placed spec: {escape(path)}")
    return path


def _apply(apps, path: str) -> None:
    text, file = app_spec.read_text(path), spec_name(path)
    plan_render.print_plan(Plan.from_dict(apps.plan(text, file)), console)
    apps.apply(text, file, Events(False))
    console.print("[green]deployed[/green] (dragonball services shows it)")

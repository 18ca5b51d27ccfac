"""The commands about where an app's data is (docs/orchestrator.md, "Slots"):

    dragonball move SERVICE.SLOT --to SERVER [--data-lost] [--app APP] [--json]
    dragonball volumes [--json]
    dragonball volumes rm NAME --on SERVER [--json]
    dragonball remove APP [--purge-data [APP]] [--yes] [--json]

`move` checks the whole move first (the slot, the servers, the room: exit 2, 3, 4 or 5 with
the reason, nothing changed), then stops the slot, has the agents copy its volumes
(streamed, checksummed, resumed after a broken connection), pins it to SERVER and starts it
there, healthy before the command ends; the source volumes stay on the old server. A copy
that fails leaves the slot running where it was (exit 1, how to retry). `volumes` lists
every application volume on every server with the slot that owns it, or why none does;
nothing is ever deleted by DragonBall but by `volumes rm`, the admin's explicit act, which
refuses a slot's own data and a volume a container runs with. `remove` takes a whole app
away (orchestrator/removing.py): its services, network, parameter folders and its record,
asked for with a typed 'yes' or --yes; its volumes (its data) are kept and listed by server
and name, deleted only with `--purge-data` and the app's name typed again: as its value
(`--purge-data notes`) or, on a terminal, at the question; that name also confirms the
removal (it says more than 'yes'). All work on the portal (as root) and through its API
(commands/app_access.py), like the other app commands.

`--keep-data` (the old way to keep the volumes) is still accepted and does nothing: keeping
is the default now, and a script written for it asks for exactly that, so failing it would
break the script for no safety at all; it cannot be given with --purge-data.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.markup import escape
from rich.table import Table

from dragonball.app.errors import no_such_app
from dragonball.commands.app_access import open_apps, transport_options
from dragonball.commands.remote import ask_yes
from dragonball.commands.apps import Events, _app, _options
from dragonball.console import console
from dragonball.errors import ExitStatus
from dragonball.orchestrator.removing import PurgeRefused, purges

#: `--purge-data` given with no value: the name is asked on the terminal.
ASK = object()


def register(commands) -> None:
    move = commands.add_parser(
        "move", help="move a slot's data to another server, verified, and run it there",
        description="Stop the slot, copy its volumes to SERVER through the agents (streamed, "
                    "checksummed, resumable), pin it there and start it; the source volumes "
                    "are kept until you remove them. Exit status: 0 moved, 1 the copy "
                    "failed (the slot runs where it was), 2 refused, 3 unknown, 4 conflict, "
                    "5 a server is down.")
    move.add_argument("slot", help="the slot: SERVICE.N (store.2) or its name (store-2)")
    move.add_argument("--to", required=True, metavar="SERVER", help="the target server")
    move.add_argument("--data-lost", action="store_true",
                      help="its server is gone for good: start the slot EMPTY on SERVER (its "
                           "data there is lost; a replicated store re-syncs from its peers)")
    _options(move)
    move.set_defaults(handler=move_command)
    volumes = commands.add_parser(
        "volumes", help="every app volume on every server: the slot owning it, or why none")
    _volume_options(volumes)
    volumes.set_defaults(handler=volumes_command)
    sub = volumes.add_subparsers(dest="volumes_command", metavar="{rm}")
    remove = sub.add_parser("rm", help="remove an app volume that no slot owns")
    remove.add_argument("name", help="the volume (dragonball volumes lists them)")
    remove.add_argument("--on", required=True, metavar="SERVER", help="the server it is on")
    _volume_options(remove)
    remove.set_defaults(handler=remove_volume_command)
    _register_remove(commands)


def _register_remove(commands) -> None:
    app = commands.add_parser(
        "remove", help="take an app away: services, network, parameters, its record "
                       "(its volumes are kept unless --purge-data APP)",
        description="Remove what the app's applies made: its services, its network, its "
                    "parameter folders on every server and its record on the portal. Its "
                    "volumes (its data) are kept, and listed by server and name; they are "
                    "deleted only with --purge-data and the app's name typed again. Exit "
                    "status: 0 removed (or not confirmed), 2 refused (no confirmation, "
                    "another name typed), 3 no such app.")
    app.add_argument("app", help="the app (dragonball status lists them)")
    data = app.add_mutually_exclusive_group()
    data.add_argument("--purge-data", nargs="?", const=ASK, default=None, metavar="APP",
                      help="delete its volumes too, for good: give the app's name again "
                           "(dragonball remove notes --purge-data notes), or leave it out "
                           "to be asked for it on a terminal")
    data.add_argument("--keep-data", action="store_true",
                      help="the default (its volumes are kept); accepted for the scripts "
                           "that still say it")
    app.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _volume_options(app)
    app.set_defaults(handler=remove_app_command)


def _volume_options(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--timeout", type=float, default=300.0, help=argparse.SUPPRESS)
    transport_options(parser)


def move_command(args) -> int:
    events = Events(args.json)
    with open_apps(args) as apps:
        app = _app(args, apps)
        done = apps.move(app, args.slot, args.to, events, data_lost=args.data_lost)
    if args.json:
        console.print_json(json.dumps({"ok": True, **done, "events": events.events}))
        return ExitStatus.OK
    for volume in done.get("volumes", []):
        console.print(f"  {escape(str(volume.get('name')))}: {volume.get('size', 0) >> 10} KiB, "
                      f"sha256 {str(volume.get('sha256'))[:16]}… verified")
    console.print(f"[green]moved[/green] {escape(str(done.get('slot')))}: "
                  f"{escape(str(done.get('from')))} -> {escape(str(done.get('to')))}")
    if done.get("data_lost"):
        console.print(f"[yellow]{escape(str(done.get('slot')))} started empty[/yellow]: its "
                      f"data on {escape(str(done.get('from')))} was given up")
    for kept in done.get("kept", []):
        console.print(f"kept: {escape(kept)} (remove it once you are satisfied)")
    return ExitStatus.OK


def volumes_command(args) -> int:
    with open_apps(args) as apps:
        rows = apps.volumes()
    if args.json:
        console.print_json(json.dumps({"volumes": rows}))
        return ExitStatus.OK
    table = Table(title="app volumes", title_justify="left")
    for column in ("server", "volume", "size", "owner", "why"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if row.get("error"):
            table.add_row(escape(row["server"]), "", "", "", f"[yellow]{escape(row['error'])}")
            continue
        size = row.get("size")
        owner = row.get("owner")
        table.add_row(escape(row["server"]), escape(str(row.get("name"))),
                      f"{size >> 20} MiB" if isinstance(size, int) else "?",
                      escape(owner) if owner else "[yellow]none[/yellow]",
                      escape(str(row.get("why") or "")))
    console.print(table)
    orphans = [r for r in rows if r.get("name") and not r.get("owner")]
    if orphans:
        console.print(f"{len(orphans)} volume(s) owned by no slot: kept, never deleted by "
                      "DragonBall; once one is not needed: dragonball volumes rm NAME --on "
                      "SERVER")
    return ExitStatus.OK


def remove_volume_command(args) -> int:
    with open_apps(args) as apps:
        done = apps.remove_volume(args.on, args.name)
    if args.json:
        console.print_json(json.dumps({"ok": True, "server": args.on, **done}))
    else:
        console.print(f"[green]removed[/green] {escape(args.name)} on {escape(args.on)}")
    return ExitStatus.OK


def purge_name(args, stdin=None, ask=None) -> str | None:
    """The app's name typed again to delete its data: --purge-data's value, or asked on a
    terminal when it has none; None when the data is kept. PurgeRefused (exit 2, nothing
    changed) for another name, or with no value and no terminal."""
    stdin, ask = stdin or sys.stdin, ask or input
    typed = args.purge_data
    if typed is ASK:
        if not stdin.isatty():
            raise PurgeRefused(f"--purge-data without the app's name, and no terminal to "
                               f"ask it on: app {args.app} was not removed",
                               f"type the name after it: dragonball remove {args.app} "
                               f"--purge-data {args.app}")
        typed = ask(f"remove app {args.app} and DELETE ITS DATA (its volumes on every "
                    "server) for good? type the app's name to delete its data: ").strip()
    purges(args.app, typed)
    return typed


def confirm_removal(args, stdin=None, ask=None) -> tuple[bool, str | None]:
    """(go on, the name typed to delete the data or None): the name typed again confirms
    it all; else --yes, or 'yes' typed on a terminal (PortalInvalid, exit 2, without)."""
    typed = purge_name(args, stdin, ask)
    if typed is not None:
        return True, typed
    return ask_yes(args.yes, f"remove app {args.app} (its services and parameters; its "
                   "volumes are kept) for good? type yes: ",
                   f"no terminal to confirm removing app {args.app}",
                   f"add --yes: dragonball remove {args.app} --yes (its volumes are kept; "
                   f"--purge-data {args.app} deletes them too)", stdin, ask), None


def remove_app_command(args) -> int:
    events = Events(args.json)
    with open_apps(args) as apps:
        known = apps.apps()
        if args.app not in known:     # before any question: a typo shows the names there are
            raise no_such_app(args.app, known, "check its name (dragonball status lists "
                                               "the apps)")
        go, typed = confirm_removal(args)
        if not go:
            console.print("nothing removed")
            return ExitStatus.OK
        done = apps.remove(args.app, typed, events)
    if args.json:
        console.print_json(json.dumps({"ok": not done.get("problems"), **done}))
    else:
        print_removal(args.app, done)
    return ExitStatus.OK


def print_removal(app: str, done: dict) -> None:
    """What went, each volume kept (by name and server, with how to delete it), what
    could not go."""
    deleted = done.get("volumes", [])
    console.print(f"[green]removed[/green] app {escape(app)}: "
                  f"{len(done.get('services', []))} service(s), "
                  f"{'its network, ' if done.get('network') else ''}"
                  f"{len(done.get('params', []))} parameter folder(s)"
                  + (f", {len(deleted)} volume(s): its data" if done.get("purge_data") else ""))
    kept = done.get("kept", [])
    if kept:
        console.print(f"kept its data, {len(kept)} volume(s):")
        for volume in kept:
            console.print(f"  {escape(str(volume.get('name')))} on "
                          f"{escape(str(volume.get('server')))}")
        console.print("once one is not needed: dragonball volumes rm NAME --on SERVER")
    for problem in done.get("problems", []):
        console.print(f"[yellow]left[/yellow]: {escape(problem)}")

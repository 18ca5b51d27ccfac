"""The commands about where an app's data is (docs/orchestrator.md, "Slots"):

    dragonball move SERVICE.SLOT --to SERVER [--data-lost] [--app APP] [--json]
    dragonball volumes [--json]
    dragonball volumes rm NAME --on SERVER [--json]
    dragonball remove APP [--keep-data] [--yes] [--json]

`move` checks the whole move first (the slot, the servers, the room: exit 2, 3, 4 or 5 with
the reason, nothing changed), then stops the slot, has the agents copy its volumes
(streamed, checksummed, resumed after a broken connection), pins it to SERVER and starts it
there, healthy before the command ends; the source volumes stay on the old server. A copy
that fails leaves the slot running where it was (exit 1, how to retry). `volumes` lists
every application volume on every server with the slot that owns it, or why none does;
nothing is ever deleted by DragonBall but by `volumes rm`, the admin's explicit act, which
refuses a slot's own data and a volume a container runs with. `remove` takes a whole app
away (orchestrator/removing.py): its services, network, parameter folders, volumes (its
data: unless --keep-data; asked for with a typed 'yes' or --yes) and its record. All work
on the portal (as root) and through its API (commands/app_access.py), like the other app
commands.
"""

from __future__ import annotations

import argparse
import json

from rich.markup import escape
from rich.table import Table

from dragonball.commands.app_access import open_apps, transport_options
from dragonball.commands.remote import ask_yes
from dragonball.commands.apps import Events, _app, _options
from dragonball.console import console
from dragonball.errors import ExitStatus


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
    app = commands.add_parser(
        "remove", help="take an app away: services, network, parameters, volumes, its record",
        description="Remove everything the app's applies made: its services, its network, "
                    "its parameter folders on every server, its volumes (its data: unless "
                    "--keep-data) and its record on the portal. Exit status: 0 removed, 2 "
                    "not confirmed, 3 no such app.")
    app.add_argument("app", help="the app (dragonball services --app APP shows it)")
    app.add_argument("--keep-data", action="store_true",
                     help="leave its volumes on the servers (dragonball volumes lists them)")
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


def confirm_removal(args, stdin=None, ask=None) -> bool:
    """--yes, or 'yes' typed on a terminal; PortalInvalid (exit 2) without either."""
    what = "its services and parameters" + ("" if args.keep_data else " and its DATA (volumes)")
    return ask_yes(args.yes, f"remove app {args.app}, {what}, for good? type yes: ",
                   f"no terminal to confirm removing app {args.app} ({what})",
                   f"add --yes: dragonball remove {args.app} --yes (--keep-data keeps its "
                   "volumes)", stdin, ask)


def remove_app_command(args) -> int:
    if not confirm_removal(args):
        console.print("nothing removed")
        return ExitStatus.OK
    events = Events(args.json)
    with open_apps(args) as apps:
        done = apps.remove(args.app, args.keep_data, events)
    if args.json:
        console.print_json(json.dumps({"ok": not done.get("problems"), **done}))
        return ExitStatus.OK
    console.print(f"[green]removed[/green] app {escape(args.app)}: "
                  f"{len(done.get('services', []))} service(s), "
                  f"{'its network, ' if done.get('network') else ''}"
                  f"{len(done.get('params', []))} parameter folder(s), "
                  f"{len(done.get('volumes', []))} volume(s)")
    for kept in done.get("kept", []):
        console.print(f"kept: {escape(kept)} (dragonball volumes rm NAME --on SERVER)")
    for problem in done.get("problems", []):
        console.print(f"[yellow]left[/yellow]: {escape(problem)}")
    return ExitStatus.OK

"""`DragonBall-<new>.bin upgrade` and `dragonball rollback`, on the portal or another manager,
as root (docs/upgrade.md; the phases: dragonball.upgrade.run).

    DragonBall-0.2.0.bin upgrade [--yes] [--dry-run] [--allow-downgrade] [--key PUB] [--json]
    dragonball upgrade --app FILE.app [...]     an app-only release (build.py app), the same way
    dragonball rollback [--yes] [--json]
    dragonball release show [--json]            (commands/release.py)

Exit status: 0 upgraded (or already at that release; --dry-run), 1 a phase failed and the
upgrade was rolled back (where, and the failing task's output, on stderr), 2 not an upgrade
of this cluster (another product, a downgrade, unsigned, not confirmed): nothing changed,
4 another upgrade, rollback or apply runs, 5 a server down, no quorum, no room: nothing
changed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os

from rich.markup import escape
from rich.table import Table

from dragonball.console import console
from dragonball.errors import ExitStatus
from dragonball.orchestrator import render


def register(commands) -> None:
    up = commands.add_parser(
        "upgrade", help="upgrade this cluster to the release of the .bin this runs from",
        description="Run from the new release's .bin on a manager: checks, a plan, a "
                    "backup, the images onto every server, DragonBall itself, then the app; "
                    "rolled back automatically on any failure.")
    up.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    up.add_argument("--dry-run", action="store_true", help="checks and the plan only")
    up.add_argument("--allow-downgrade", action="store_true",
                    help="accept a release older than the installed one")
    up.add_argument("--key", help="the release engineer's public key (a signed cluster)")
    up.add_argument("--app", metavar="FILE.app",
                    help="an app-only release (build.py app) instead of this .bin")
    up.add_argument("--timeout", type=float, default=600.0,
                    help="seconds a service may take to be healthy (default 600)")
    up.add_argument("--no-snapshot", action="store_true",
                    help="no snapshot of the slots' volumes in the backup (a store too big "
                         "to pause while it is copied, that has its own backup)")
    up.add_argument("--json", action="store_true", help="a JSON document at the end")
    up.set_defaults(handler=upgrade_command)
    back = commands.add_parser("rollback", help="back to the previous release (after an "
                                                "upgrade), or finish undoing a stopped one")
    back.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    back.add_argument("--timeout", type=float, default=600.0,
                      help="seconds a service may take to be healthy (default 600)")
    back.add_argument("--json", action="store_true", help="a JSON document at the end")
    back.set_defaults(handler=rollback_command)


class ConsoleOutput:
    """The upgrade's progress on the console (quiet but for the plan under --json)."""

    def __init__(self, quiet: bool, yes: bool) -> None:
        self.quiet, self.yes = quiet, yes
        self.events: list = []

    def plan(self, source, target, plan, resuming: bool) -> None:
        if self.quiet:
            return
        label = (f"{source['name']} {source['version']}" if source else "(no record)")
        verb = "resuming the upgrade" if resuming else "upgrade"
        console.print(f"{verb}: {escape(label)} -> {escape(target['name'])} "
                      f"{escape(target['version'])}")
        if plan.empty:
            console.print("nothing changes")
            return
        table = Table("part", "what", "now", "after", "detail", box=None)
        for change in plan.changes:
            table.add_row(*(escape(str(v)) for v in (change.part, change.name, change.before,
                                                     change.after, change.detail)))
        console.print(table)

    def confirm(self) -> bool:
        if self.yes:
            return True
        from dragonball.commands.remote import ask_yes
        return ask_yes(False, "go on with the upgrade? type yes: ",
                       "no terminal to confirm the upgrade on",
                       "add --yes (or --dry-run to see the plan only)")

    def phase(self, name: str, state: str, detail: str = "") -> None:
        if not self.quiet:
            mark = {"done": "[green]✓[/green]", "failed": "[red]✗[/red]",
                    "skipped": "·"}.get(state, "…")
            console.print(f"{mark} {escape(name)} {escape(state)}"
                          + (f": {escape(detail)}" if detail else ""))

    def event(self, event: dict) -> None:
        self.events.append(event)
        if not self.quiet:
            console.print("    " + render.event_line(event.get("service", ""),
                                                      event.get("state", ""),
                                                      event.get("detail") or "",
                                                      event.get("t")))


def upgrade_command(args: argparse.Namespace) -> int:
    from dragonball.upgrade import run
    target = app_target(args.app) if args.app else bin_target()
    out = ConsoleOutput(args.json, args.yes)
    with target as found:
        result = run.upgrade(found, run.Options(yes=args.yes, dry_run=args.dry_run,
                                                allow_downgrade=args.allow_downgrade,
                                                key=args.key, timeout=args.timeout,
                                                snapshot=not args.no_snapshot), out,
                           open_portal_apps)
    return _finish(args, result, out)


def rollback_command(args: argparse.Namespace) -> int:
    from dragonball.upgrade import run
    out = ConsoleOutput(args.json, args.yes)
    result = run.rollback(run.Options(yes=args.yes, timeout=args.timeout), out,
                          open_portal_apps)
    return _finish(args, result, out)


def open_portal_apps(timeout: float):
    """The portal's apps, as root on it (the upgrade drives them as `dragonball apply`)."""
    from dragonball.commands.apps_local import open_local
    return open_local(argparse.Namespace(config=None, timeout=timeout))


def _finish(args, result: dict, out: ConsoleOutput) -> int:
    if args.json:
        console.print_json(json.dumps({"ok": True, **result, "events": out.events}))
        return ExitStatus.OK
    target = result.get("to") or {}
    words = {"done": "[green]upgraded[/green] to", "dry-run": "dry run: nothing changed; would "
             "upgrade to", "nothing to do": "already at", "rolled-back": "[green]rolled back"
             "[/green] to"}
    console.print(f"{words.get(result['state'], result['state'])} "
                  f"{escape(str(target.get('name')))} {escape(str(target.get('version')))}")
    return ExitStatus.OK


@contextlib.contextmanager
def bin_target():
    """The release of the .bin this runtime runs from."""
    from dragonball.release import installed
    from dragonball.release.archive import open_archive
    from dragonball.release.sections import bin_sections, open_section
    from dragonball.upgrade.run import Target
    environ = dict(os.environ)
    manifest, signed = installed.this_bin(environ)
    path, sections = bin_sections(environ)

    @contextlib.contextmanager
    def runtime():
        with open(path, "rb") as f:
            yield open_section(f, sections["runtime"])
    yield Target("bin", manifest, installed.manifest_app(manifest), signed,
                 lambda: open_archive(None, environ),
                 runtime if "runtime" in sections else None)


@contextlib.contextmanager
def app_target(path: str):
    """An app-only release (.app), checked whole first."""
    from dragonball.release.app_file import open_app
    from dragonball.upgrade.run import Target
    with open_app(path) as app:
        about = dict(app.about)
        images = [{"ref": ref, "image_id": ""} for ref in about.get("images") or []]
        manifest = {"name": about["name"], "version": about["version"], "images": images,
                    "left_out": about.get("left_out") or {}}
        yield Target("app", manifest, app.spec_text, False,
                     lambda: contextlib.nullcontext(app.archive))


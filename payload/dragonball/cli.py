"""The `dragonball` command.

    dragonball module check DIR [--json]   check a module folder against the spec
    dragonball images list|push ...        the release's images; push them to a registry
    dragonball portal serve | enroll       the portal service; a code to add a server
    dragonball install | reset             install on this server; undo what install changed
    dragonball answers check FILE          check an answers file for an unattended install

One top-level handler (`run`) ends every command: a DragonBall error becomes its message
and hint (standard error) or, when the command was given --json, one JSON document on
standard output (`{"ok": false, "exit_status", "error", "hint", "category", ...}`), and the
exit status of its category (dragonball.errors), whichever path the command took (local, or
through the portal's API); Ctrl-C ends with 130; any other exception is a defect: "internal
error", exit 70. `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from rich.markup import escape
from rich.table import Table

from dragonball import __version__
from dragonball.commands import answers, apps, certs, data, images, install, portal, preflight
from dragonball.commands import release, upgrade
from dragonball.commands import account, deploy, module_run, remote, spec
from dragonball.console import console, err_console
from dragonball.errors import ClientError, DragonBallError, ExitStatus
from dragonball.module import scan, validate


def _module_check(args: argparse.Namespace) -> int:
    module, problems = validate(scan(args.dir))
    if args.json:
        console.print_json(json.dumps({
            "module_dir": args.dir, "ok": not problems,
            "problems": [{"path": p.path, "message": p.message, "hint": p.hint}
                         for p in problems]}))
    elif problems:
        table = Table(title=f"{args.dir}: {len(problems)} problem(s)", title_justify="left")
        for column in ("path", "problem", "how to fix"):
            table.add_column(column, overflow="fold")
        for p in problems:
            table.add_row(p.path, p.message, p.hint)
        console.print(table)
    else:
        counts = ", ".join(f"{event} {len(names)}" for event, names in module.scripts.items())
        console.print(f"[green]ok[/green] module [bold]{module.name}[/bold] follows the spec "
                      f"(scripts: {counts})")
    return ExitStatus.INVALID if problems else ExitStatus.OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dragonball", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"dragonball {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True)
    module = commands.add_parser("module", help="work with module folders")
    module_commands = module.add_subparsers(dest="module_command", required=True)
    check = module_commands.add_parser("check", help="check a module folder against the spec")
    check.add_argument("dir", help="the module folder (the one holding action/)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(handler=_module_check)
    module_run.register(module_commands)
    release.register(commands)
    upgrade.register(commands)
    preflight.register(commands)
    install.register(commands)
    images.add_images_commands(commands)
    portal.register(commands)
    answers.register(commands)
    spec.register(commands)
    apps.register(commands)
    deploy.register(commands)
    data.register(commands)
    remote.register(commands)
    account.register(commands)
    certs.register(commands)
    return parser


def main(argv: list | None = None) -> int:
    args = _parser().parse_args(argv)  # a wrong command line: argparse exits 2 (INVALID)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    return run(args.handler, args)


def run(handler, args) -> int:
    """The one top-level handler: `handler(args)`'s exit status, or its error's."""
    debug, as_json = getattr(args, "debug", False), getattr(args, "json", False)
    try:
        return handler(args)
    except DragonBallError as e:
        if debug:
            err_console.print_exception()
        report(e, as_json)
        return e.exit_status
    except KeyboardInterrupt as e:  # the wizard's Cancelled is one, with its own words
        err_console.print(escape(str(e) or "interrupted"))
        return ExitStatus.INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the one place a defect becomes a report
        if debug:
            err_console.print_exception()
        err_console.print(f"[red]internal error:[/red] {escape(type(e).__name__)}: "
                          f"{escape(str(e)[:300])}")
        err_console.print("[dim]hint:[/dim] this is a defect of DragonBall: run the command "
                          "again with --debug (dragonball --debug ...) for the traceback, "
                          "and report it with that output")
        return ExitStatus.INTERNAL


def report(e: DragonBallError, as_json: bool = False) -> None:
    """An error for people (standard error: its message, which lists every problem, and its
    hint), or as the command's one JSON document (standard output)."""
    if as_json:
        console.print_json(json.dumps({"ok": False, "exit_status": int(e.exit_status)}
                                      | e.to_dict()))
        return
    err_console.print(f"[red]error:[/red] {escape(e.message)}")
    for problem in _unsaid_problems(e):
        err_console.print(f"  - {escape(problem)}")
    if e.hint:
        err_console.print(f"[dim]hint:[/dim] {escape(e.hint)}")


def _unsaid_problems(e: DragonBallError) -> list[str]:
    """A remote answer's problems its text does not say already (a local error's message
    lists them; the API's answer usually does too, but a short one leaves them apart)."""
    if not isinstance(e, ClientError):
        return []
    texts = [_problem_text(problem) for problem in e.problems]
    return [text for text in texts if text not in e.message]


def _problem_text(problem) -> str:
    if not isinstance(problem, dict):
        return str(problem)
    where = problem.get("where") or problem.get("path") or ""
    text = problem.get("problem") or problem.get("message") or json.dumps(problem)
    return f"{where}: {text}" if where else text


if __name__ == "__main__":
    sys.exit(main())

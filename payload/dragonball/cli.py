"""The `dragonball` command.

    dragonball module check DIR [--json]   check a module folder against the spec
    dragonball images list|push ...        the release's images; push them to a registry
    dragonball portal serve | enroll       the portal service; a code to add a server
    dragonball install | reset             install on this server; undo what install changed
    dragonball answers check FILE          check an answers file for an unattended install

One top-level handler maps DragonBall errors to a message and an exit code;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import enum
import json
import logging
import sys

from rich.table import Table

from dragonball import __version__
from dragonball.commands import answers, apps, images, install, portal, preflight, release
from dragonball.commands import remote, spec
from dragonball.console import console, err_console
from dragonball.errors import DragonBallError
from dragonball.module import scan, validate


class ExitStatus(enum.IntEnum):
    OK = 0
    ERROR = 1
    INVALID = 2  # bad input: an invalid module, a wrong command line
    INTERRUPTED = 130


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
    release.register(commands)
    preflight.register(commands)
    install.register(commands)
    images.add_images_commands(commands)
    portal.register(commands)
    answers.register(commands)
    spec.register(commands)
    apps.register(commands)
    remote.register(commands)  # after the local commands: it gives them --remote
    return parser


def main(argv: list | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)
    try:
        return args.handler(args)
    except DragonBallError as e:
        if args.debug:
            raise
        err_console.print(f"[red]error:[/red] {e}")
        return ExitStatus.ERROR
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return ExitStatus.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

"""`dragonball preflight`: check this server for the release and a role; change nothing.

    dragonball preflight [--json] [--data-dir DIR] [--role portal|device] [--portal ADDR]

Exit status: 0 no check failed, 1 a check failed, 2 wrong usage.
"""

from __future__ import annotations

import argparse
import json
import os

from dragonball.console import console
from dragonball.errors import ExitStatus, PreflightError
from dragonball.shared import ports
from dragonball.shared.paths import DATA_DIR
from dragonball.installer.preflight import default_paths, parse, report, run
from dragonball.installer.preflight.requirements import load_manifest
from dragonball.installer.preflight.system import LiveSystem


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `preflight` command to the `dragonball` parser's subparsers."""
    parser = subparsers.add_parser(
        "preflight", help="check this server before install (changes nothing)",
        description="Check this server against the release and its role. Changes nothing. "
                    "Exit status: 0 no check failed, 1 a check failed, 2 wrong usage.")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--data-dir", default=DATA_DIR, metavar="DIR",
                        help=f"where DragonBall will keep its data (default {DATA_DIR})")
    parser.add_argument("--role", choices=ports.ROLES,
                        help="portal (the first server) or device; default: device when "
                             "--portal is given, else portal")
    parser.add_argument("--portal", metavar="ADDR",
                        help="the portal to join (HOST or HOST:PORT): checks it answers")
    parser.add_argument("--manifest", metavar="FILE",
                        help="a release's manifest.json, when not run from the .bin "
                             "(which reads its own)")
    parser.set_defaults(handler=preflight)
    return parser


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the command line, or None (pure)."""
    if not os.path.isabs(args.data_dir):
        return f"--data-dir {args.data_dir}: give an absolute path"
    if args.portal is not None:
        if args.role == "portal":
            return "--portal is for a device joining a portal: drop it, or use --role device"
        try:
            parse.address(args.portal, ports.PORTAL)
        except ValueError as e:
            return f"--portal: {e}"
    return None


def _manifest(path: str | None) -> dict | None:
    if path is None:
        return load_manifest(os.environ)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise PreflightError(f"cannot read the manifest {path}: {e}",
                             "give the manifest.json written next to the .bin by build.py") from e


def preflight(args: argparse.Namespace) -> int:
    problem = usage_problem(args)
    if problem:
        raise PreflightError(problem)
    role = args.role or ("device" if args.portal else "portal")
    result = run(LiveSystem(), _manifest(args.manifest), role,
                 default_paths(os.path.normpath(args.data_dir)), portal=args.portal)
    if args.json:
        console.print_json(json.dumps(report.document(result)))
    else:
        console.print(report.table(result))
        console.print(report.summary_line(result))
    return ExitStatus.OK if result.ok else ExitStatus.FAILED  # FAILED: install would stop

"""`dragonball plan SPEC [--json] [--observed FILE] [--offline] [--remote]`: what apply
would do. Changes nothing.

Where a portal is at hand (on the portal as root, or logged in: `reaches_a_cluster`) the
portal plans it against what the cluster holds and runs, as `apply --dry-run` does: a
missing image, an unknown server, a host port another app holds are problems
(commands/apps.py, `plan_remote`). Elsewhere, or with `--offline` or `--observed FILE`, a
pure check of the spec (against that observed state, else an empty cluster), which says
that the cluster was not asked."""

from __future__ import annotations

import argparse
import json

from dragonball.app import observed as observed_file
from dragonball.app import render, spec as app_spec
from dragonball.app.model import Observed
from dragonball.app.plan import plan
from dragonball.commands import apps
from dragonball.commands.app_access import reaches_a_cluster
from dragonball.console import console
from dragonball.errors import Category, DragonBallError, ExitStatus


def register(subparsers) -> argparse.ArgumentParser:
    """Add `plan` to the `dragonball` parser's subparsers."""
    parser = subparsers.add_parser(
        "plan", help="check an app spec and print what would start, change or stop",
        description="Check an app spec (docs/app-spec.md) and print its plan: waves of "
                    "starts (leaves first) and stops (roots first). Changes nothing. "
                    "Exit status: 0 valid, 2 invalid (every problem listed).")
    parser.add_argument("spec", help="the app spec (YAML), e.g. examples/notes.app.yaml")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--observed", metavar="FILE",
                        help="observed state as JSON (images, servers, labels, running); "
                             "default: nothing runs, nothing else is known")
    parser.add_argument("--offline", action="store_true",
                        help="check the spec alone, even on the portal: no image, server "
                             "or port of the cluster is looked at")
    parser.add_argument("--remote", action="store_true",
                        help="the portal plans it against the cluster, through its API "
                             "(dragonball login first)")
    parser.add_argument("--config", default=None, metavar="FILE", help=argparse.SUPPRESS)
    parser.set_defaults(handler=plan_command)
    return parser


def plan_command(args: argparse.Namespace) -> int:
    unanswered = ""
    if not (args.offline or args.observed) and reaches_a_cluster(args):
        try:
            return apps.plan_remote(args)
        except DragonBallError as e:   # a saved login whose portal is gone: checked alone
            if args.remote or e.category is not Category.UNAVAILABLE:
                raise
            unanswered = f"the portal did not answer ({e.message}); "
    observed, running = observed_file.read(args.observed) if args.observed else (Observed(), {})
    found, problems = app_spec.check_file(args.spec, observed)
    if problems:
        _print_problems(args, problems)
        return ExitStatus.INVALID
    result = plan(found, running)
    if args.json:
        console.print_json(render.to_json(result))
    else:
        render.print_plan(result, console)
        if not args.observed:
            console.print(f"note: {unanswered}checked alone, not against a cluster (no "
                          "image, server or port was looked at): run it on the portal, or "
                          "log in first", markup=False)
    return ExitStatus.OK


def _print_problems(args: argparse.Namespace, problems: list) -> None:
    if args.json:
        console.print_json(json.dumps({"spec": args.spec, "ok": False,
                                       "problems": [p.to_dict() for p in problems]}))
        return
    console.print(f"{args.spec}: {len(problems)} problem(s)", markup=False)
    for problem in problems:  # file:line first, so editors and terminals can jump there
        console.print(str(problem), markup=False)

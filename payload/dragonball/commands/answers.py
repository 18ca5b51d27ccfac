"""`dragonball answers check FILE [--json]`: check an answers file on the server it is for.

The file is checked as `install --answers FILE` would check it, against this server
(its addresses and hostname), without remote checks and without changing anything.
Exit status: 0 valid, 2 invalid (every problem listed).
"""

from __future__ import annotations

import argparse
import json

from dragonball.console import console
from dragonball.errors import ExitStatus
from dragonball.wizard import answers_file, host, summary
from dragonball.wizard.options import problem_table


def register(subparsers) -> argparse.ArgumentParser:
    """Add `answers check` to the `dragonball` parser's subparsers."""
    answers = subparsers.add_parser("answers", help="install answers files (docs/answers.md)")
    commands = answers.add_subparsers(dest="answers_command", required=True)
    check = commands.add_parser(
        "check", help="check an answers file against this server (changes nothing)",
        description="Check an answers file as 'install --answers FILE' would, against this "
                    "server. Exit status: 0 valid, 2 invalid.")
    check.add_argument("file", help="the answers file (YAML; examples in wizard/)")
    check.add_argument("--json", action="store_true", help="print one JSON document")
    check.set_defaults(handler=check_command)
    return answers


def check_command(args: argparse.Namespace, facts=None, out=None) -> int:
    facts = facts or host.live_facts()
    out = out or console
    answers, problems = answers_file.check(args.file, facts)
    if args.json:
        out.print_json(json.dumps({
            "file": args.file, "ok": not problems,
            "problems": [{"field": p.field, "line": p.line, "message": p.message}
                         for p in problems],
            "answers": answers.masked() if answers else None}))
    elif problems:
        out.print(problem_table(args.file, problems))
    else:
        out.print(summary.table(answers, facts, title=f"{args.file}: valid"))
    return ExitStatus.INVALID if problems else ExitStatus.OK

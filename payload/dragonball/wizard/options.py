"""The answers as command-line options, and the table of an answers file's problems:
shared by `dragonball install`, `dragonball answers check` and `python -m dragonball.wizard`."""

from __future__ import annotations

import argparse

from rich.table import Table


def add_answer_options(parser: argparse.ArgumentParser, data_dir: bool = True) -> None:
    """The answers an installer's command line may carry (collect.COMMAND_LINE): what
    'dragonball enroll' prints for a device. Never the password (ps shows arguments)."""
    group = parser.add_argument_group("answers on the command line (docs/answers.md)")
    group.add_argument("--role", choices=("portal", "device"),
                       help="portal (the first server) or device (join a portal)")
    group.add_argument("--address", metavar="IP", help="this server's address")
    group.add_argument("--portal", metavar="HOST[:PORT][,HOST...]",
                       help="device: the portal to join; every manager's, comma separated, "
                            "are tried in order")
    group.add_argument("--ca-fingerprint", metavar="SHA256:HEX",
                       help="device: the portal CA's fingerprint 'dragonball enroll' printed")
    group.add_argument("--code", metavar="CODE",
                       help="device: the enrollment code (every user of the server sees a "
                            "command line: better asked, or --code-file)")
    group.add_argument("--code-file", metavar="FILE",
                       help="device: a file holding the enrollment code")
    if data_dir:
        group.add_argument("--data-dir", metavar="DIR",
                           help="where DragonBall keeps its data (default /var/lib/dragonball)")


def problem_table(path: str, problems: list) -> Table:
    table = Table(title=f"{path}: {len(problems)} problem(s)", title_justify="left")
    table.add_column("line", justify="right")
    table.add_column("answer")
    table.add_column("problem and how to fix it", overflow="fold")
    for p in problems:
        table.add_row(str(p.line or "-"), p.field, p.message)
    return table

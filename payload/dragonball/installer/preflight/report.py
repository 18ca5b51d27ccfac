"""Preflight's output: a rich table with a one-line summary, or one JSON document.

The JSON shape is fixed (docs/preflight.md, `SCHEMA`): consumers read "ok",
"summary" and "checks"; "facts" is informative and may gain keys.
"""

from __future__ import annotations

from rich.table import Table

from dragonball import __version__
from dragonball.installer.preflight.check import FAIL, PASS, SKIP, STATUSES, WARN

SCHEMA = 1
MARKS = {PASS: "[green]✓[/green]", WARN: "[yellow]![/yellow]", FAIL: "[red]✗[/red]",
         SKIP: "[dim]-[/dim]"}


def summary(checks: list) -> dict:
    """How many checks have each status: {"pass": n, "warn": n, "fail": n, "skip": n}."""
    return {status: sum(1 for c in checks if c.status == status) for status in STATUSES}


def document(result) -> dict:
    """The --json document of a preflight `result`."""
    return {
        "schema": SCHEMA, "dragonball": __version__, "release": result.requirements.release,
        "role": result.requirements.role, "ok": result.ok, "summary": summary(result.checks),
        "checks": [c.to_dict() for c in result.checks], "facts": result.facts.to_dict(),
    }


def table(result) -> Table:
    title = f"preflight of {result.facts.hostname or 'this server'} as {result.requirements.role}"
    if result.requirements.release:
        title += f" for {result.requirements.release}"
    grid = Table(title=title, title_justify="left")
    grid.add_column("", width=1)
    grid.add_column("check", no_wrap=True)
    grid.add_column("detail", overflow="fold")
    grid.add_column("how to fix", overflow="fold")
    for c in result.checks:
        grid.add_row(MARKS[c.status], c.name, c.detail, c.hint)
    return grid


def summary_line(result) -> str:
    counts = summary(result.checks)
    parts = [f"{counts[PASS]} passed", _plural(counts[WARN], "warning"),
             f"{counts[FAIL]} failed"]
    if counts[SKIP]:
        parts.append(f"{counts[SKIP]} skipped")
    verdict = ("[green]ready to install[/green]" if result.ok else
               "[red]install would stop here: fix what failed, then run preflight again[/red]")
    return f"preflight: {', '.join(parts)}: {verdict}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"

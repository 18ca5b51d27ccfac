"""A plan for people (a table per wave) and for programs (JSON: `Plan.to_dict`)."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from dragonball.app.plan import Plan

_STYLE = {"start": "green", "change": "yellow", "keep": "dim", "stop": "red", "run": "cyan",
          "skip": "dim"}


#: An image column is as wide as its longest name, up to this.
IMAGE_WIDTH_MAX = 60


def to_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2)


def summary(plan: Plan) -> str:
    waves = len(plan.stop_waves) + len(plan.start_waves)
    jobs = (f", {plan.count('run')} job(s) to run, {plan.count('skip')} skipped"
            if plan.count("run") or plan.count("skip") else "")
    return (f"{plan.app}: {plan.count('start')} to start, {plan.count('change')} to change, "
            f"{plan.count('keep')} unchanged, {plan.count('stop')} to stop{jobs}, in {waves} "
            f"wave{'s' if waves != 1 else ''}")


def print_plan(plan: Plan, console: Console) -> None:
    """Stop waves first (roots first), then start waves (leaves first), as they would run."""
    number = 0
    for title, waves in (("stop", plan.stop_waves), ("start", plan.start_waves)):
        for wave in waves:
            number += 1
            verb = "run" if title == "start" and all(s.kind == "job" for s in wave) else title
            console.print(_table(f"wave {number}: {verb} "
                                 f"{', '.join(s.service for s in wave)}", wave))
    for note in plan.notes:
        console.print(f"note: {note}")
    console.print(summary(plan))


def _table(title: str, wave: tuple) -> Table:
    table = Table(title=title, title_justify="left")
    widest = min(max((len(step.image or "") for step in wave), default=5), IMAGE_WIDTH_MAX)
    for column in ("service", "kind", "action", "image", "replicas", "why"):
        # an image name is read whole (issue 15: tables wrapped them): its column is as wide
        # as the longest, up to IMAGE_WIDTH_MAX; the reasons wrap instead
        table.add_column(column, overflow="fold", no_wrap=column == "image",
                         min_width=widest if column == "image" else None)
    for step in wave:
        style = _STYLE[step.action]
        table.add_row(step.service, step.kind, f"[{style}]{step.action}[/{style}]", step.image,
                      "" if step.replicas is None else str(step.replicas),
                      "; ".join(step.reasons))
    return table

"""What the app commands (commands/apps.py) print for people, the same on the portal and
through its API: a job's event lines, the services table, a service's parameters, the
config_change result of each task, the notifications, the tasks' log lines.

Rows are the REST API's JSON documents (which both transports answer with: Control.status,
orchestrator.answers, TaskResult.to_dict); every text from them is escaped as markup.
"""

from __future__ import annotations

import json
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

_MARK = {"starting": "[cyan]…[/cyan]", "healthy": "[green]✓[/green]",
         "failed": "[red]✗[/red]", "stopping": "[cyan]…[/cyan]",
         "stopped": "[green]■[/green]", "removed": "[green]■[/green]",
         "running": "[cyan]…[/cyan]", "done": "[green]✓[/green]", "skipped": "[dim]–[/dim]"}
_COLOUR = {"healthy": "green", "degraded": "yellow", "down": "red", "waiting": "red",
           "stopped": "dim", "absent": "dim"}


def event_line(service: str, state: str, detail: str = "", t: float | None = None) -> str:
    """One state change of a service: ``  12.3s ✓ api healthy (detail)``; no time if None."""
    when = f"{t:6.1f}s " if isinstance(t, (int, float)) else ""
    more = f" ({escape(str(detail))})" if detail else ""
    return f"{when}{_MARK.get(state, '·')} {escape(str(service))} {state}{more}"


def print_services(app: str, rows: list[dict], console: Console) -> None:
    """A row per service (a slot of one with storage: its own row, with the server its
    data pins it to): kind, state in its colour, healthy/desired, needs, its tasks; then a
    line for each slot that waits for its server."""
    table = Table(title=f"app {app}", title_justify="left")
    for column in ("service", "kind", "state", "healthy", "pinned to", "needs", "tasks"):
        table.add_column(column, overflow="fold")
    for row in rows:
        tasks = ", ".join(f"{t.get('slot')}@{t.get('server')} {t.get('state')}"
                          for t in row.get("tasks", []))
        style = _COLOUR.get(row.get("state"), "white")
        table.add_row(escape(str(row.get("service"))), str(row.get("kind")),
                      f"[{style}]{row.get('state')}[/{style}]",
                      f"{row.get('healthy')}/{row.get('desired')}",
                      escape(str(row.get("server") or "")),
                      ", ".join(row.get("needs", [])), escape(tasks))
    console.print(table)
    for row in rows:
        if row.get("address"):
            console.print(address_line(row))
    for row in rows:
        if row.get("waiting"):
            console.print(f"[red]{escape(str(row['service']))} waits for "
                          f"{escape(str(row['waiting']))}, which is down[/red]: its data is "
                          "there; it starts when the server is back (or move it: "
                          f"dragonball move {escape(str(row['service']))} --to SERVER)")


def address_line(row: dict) -> str:
    """'web answers at 10.0.0.100 (moves between s2, s3)', or why it does not yet."""
    found = row["address"]
    name, where = escape(str(row.get("service"))), escape(str(found.get("address")))
    if not found.get("deployed"):
        return f"[yellow]{name}'s address {where} is not on the cluster yet[/yellow]: apply"
    peers = ", ".join(found.get("peers") or []) or "no server yet"
    return f"[bold]{name} answers at {where}[/bold] (moves between {escape(peers)})"


def print_params(found: dict, console: Console) -> None:
    """A service's parameters in force ({app, service, revision, parameters}), as given; a
    shared one says its shared name, the app's shared ones (`@shared`) who takes each."""
    items = found.get("parameters", {})
    where = ("used by" if any("used_by" in i for i in items.values()) else
             "shared" if any("shared" in i for i in items.values()) else None)
    table = Table(title=f"{found.get('app')}/{found.get('service')} parameters "
                        f"(revision {found.get('revision')})", title_justify="left")
    for column in ("key", "type", "value", "set on the portal") + ((where,) if where else ()):
        table.add_column(column, overflow="fold")
    for key, item in items.items():
        row = [escape(key), item.get("type", "") + (" secret" if item.get("secret") else ""),
               escape(json.dumps(item.get("value"))), "yes" if item.get("set") else "default"]
        if where == "used by":
            row.append(escape(", ".join(item.get("used_by") or [])) or "[dim]nobody[/dim]")
        elif where:
            row.append(f"@shared {escape(item['shared'])}" if item.get("shared") else "")
        table.add_row(*row)
    console.print(table)
    if where == "shared":
        console.print("a shared value is set once for every service taking it: "
                      "dragonball params set @shared KEY=VALUE")


def print_task_results(app: str, service: str, tasks: list[dict], console: Console) -> None:
    """What each task answered to config_change ({task, server, ok, detail})."""
    table = Table(title=f"{app}/{service}: config_change in each task", title_justify="left")
    for column in ("task", "server", "result"):
        table.add_column(column, overflow="fold")
    for t in tasks:
        mark = "[green]ok[/green]" if t.get("ok") else "[red]failed[/red]"
        table.add_row(str(t.get("task")), str(t.get("server")),
                      f"{mark} {escape(str(t.get('detail', '')))}")
    console.print(table)
    if not tasks:
        console.print("no task runs now: new tasks start with these parameters")


def print_notifications(app: str, rows: list[dict], console: Console) -> None:
    """The latest notifications, newest first, and how their delivery went."""
    table = Table(title=f"app {app}: notifications, newest first", title_justify="left")
    for column in ("to", "seq", "about", "event", "delivered", "attempts / last error"):
        table.add_column(column, overflow="fold")
    for r in rows:
        when = (time.strftime("%H:%M:%S", time.localtime(r["delivered"]))
                if r["delivered"] else "[yellow]pending[/yellow]")
        table.add_row(escape(str(r["to"])), str(r["seq"]), escape(str(r["payload"]["service"])),
                      escape(str(r["payload"]["event"])), when,
                      f"{r['attempts']} {escape(r['last_error'] or '')}")
    console.print(table)


def print_logs(tasks: list[dict], console: Console) -> None:
    """Each task's last log lines under a ``== task on server ==`` heading, as they are (a
    job's last run: ``== migrate.1 on s2 (complete) ==``)."""
    for task in tasks:
        ended = f" ({escape(str(task['state']))})" if task.get("state") else ""  # a job's
        console.print(f"[bold]== {escape(str(task.get('task')))} on "
                      f"{escape(str(task.get('server')))}{ended} ==[/bold]")
        if task.get("error"):
            console.print(f"[yellow]{escape(str(task['error']))}[/yellow]")
        for line in task.get("lines", []):
            console.print(line, markup=False, highlight=False)

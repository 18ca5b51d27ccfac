#!/usr/bin/env python3
"""How long the portal takes to make its dashboard for a big cluster, in one run:
100 devices and 1,000 containers against 10 devices and 100 containers (the ratio).

    .venv/bin/python bench/dashboard_render.py [--rounds N]

What is timed is what the dashboard route does once its data is in hand: the pure view
models (web/views.py: device rows with each agent's metrics, counts, alerts; and
web/views_apps.py: every app's service tree and its alerts) and the Jinja2 templates
(dashboard.html in base.html, through pages.render, the same call the route makes).
The data is generated: devices as the store returns them, agents' metrics dicts, and
`Control.status` rows whose tasks are the containers, spread over the devices, some of
them degraded. No store, no agent, no network: the data sources are what the route asks
over the network, and bench/portal_api.py measures a served page.

Prints the median and the 95th percentile per render, the page's size, and the ratios.
Asserts nothing about wall times.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "payload"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from starlette.requests import Request  # noqa: E402

from dragonball.portal.auth import Principal  # noqa: E402
from dragonball.portal.store import Device  # noqa: E402
from dragonball.portal.web import pages, views, views_apps  # noqa: E402

SERVICES_PER_APP = 10  # each app: a root service over a chain of backends


def devices(count: int) -> list[Device]:
    """The portal and count-1 devices; every 20th one still enrolling."""
    found = [Device(1, "portal", "10.0.0.1", "portal", "joined", None, "n1", {}, 1e9, 1e9)]
    for i in range(2, count + 1):
        state = "enrolled" if i % 20 == 0 else "joined"
        found.append(Device(i, f"server-{i:03d}", f"10.0.{i // 250}.{i % 250}", "device",
                            state, i, f"n{i}" if state == "joined" else None,
                            {"io.dragonball.device-id": str(i), "zone": f"z{i % 3}"},
                            1e9 + i, 1e9 + i if state == "joined" else None))
    return found


def metrics(rows: list[Device]) -> dict:
    """Each joined device's agent metrics; every 25th agent does not answer, a few hot."""
    found = {}
    for d in rows:
        if d.state != "joined":
            continue
        if d.id % 25 == 0:
            found[d.address] = ConnectionRefusedError("connection refused")
            continue
        busy = 95.0 if d.id % 33 == 0 else 10.0 + d.id % 60
        found[d.address] = {
            "schema": 1, "hostname": d.hostname, "cpu": {"cores": 8, "busy_percent": busy},
            "memory": {"total_bytes": 32 * 2 ** 30, "used_bytes": (8 + d.id % 16) * 2 ** 30,
                       "used_percent": (8 + d.id % 16) / 32 * 100},
            "io": {"read_bytes_per_s": 4096.0 * d.id, "written_bytes_per_s": 1e6 + d.id},
            "connections": {"total": 40 + d.id, "established": 12 + d.id % 9},
            "load": {"1m": 0.4 + d.id % 4}}
    return found


def status_rows(app: int, containers: int, servers: list[str]) -> list[dict]:
    """`Control.status` rows of one app whose tasks number `containers`."""
    replicas = max(1, containers // SERVICES_PER_APP)
    rows = []
    for s in range(SERVICES_PER_APP):
        name = f"svc{s}"
        healthy = replicas - 1 if (app + s) % 7 == 0 else replicas
        tasks = [{"slot": r + 1, "server": servers[(app * 31 + s * 7 + r) % len(servers)],
                  "state": "running" if r < healthy else "failed"} for r in range(replicas)]
        rows.append({"service": name, "kind": "service" if s == 0 else "backend",
                     "image": f"app{app}/{name}:1.0", "needs": [f"svc{s + 1}"]
                     if s + 1 < SERVICES_PER_APP else [], "deployed": True,
                     "desired": replicas, "healthy": healthy,
                     "state": "healthy" if healthy == replicas else "degraded",
                     "tasks": tasks})
    return rows


def cluster(device_count: int, containers: int) -> tuple:
    found = devices(device_count)
    servers = [d.hostname for d in found if d.state == "joined"]
    apps = max(1, containers // (SERVICES_PER_APP * 10))  # 10 tasks a service
    per_app = containers // apps
    return found, metrics(found), {f"app{a}": status_rows(a, per_app, servers)
                                   for a in range(apps)}


def request() -> Request:
    app = types.SimpleNamespace(state=types.SimpleNamespace(
        settings=types.SimpleNamespace(cluster_name="plant-a")))
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": b"",
                    "headers": [], "app": app})


def render_dashboard(data: tuple, principal: Principal) -> bytes:
    """What the dashboard route does with its sources' answers (web/routes.py)."""
    found, agent_metrics, statuses = data
    rows = views.device_rows(found, agent_metrics)
    services = [row for app, s in statuses.items() for row in views_apps.tree(app, s)]
    return pages.render(request(), "dashboard.html", principal,
                        counts=views.state_counts(rows),
                        answering=sum(1 for r in rows if r.metrics is not None),
                        alerts=views.alerts(rows), services=services, services_error=None,
                        service_alerts=views_apps.service_alerts(services)).body


def render_devices(data: tuple, principal: Principal) -> bytes:
    """The Devices page: a row per device with its agent's metrics (web/routes.py)."""
    found, agent_metrics, _ = data
    return pages.render(request(), "devices.html", principal,
                        rows=views.device_rows(found, agent_metrics),
                        lifetimes=("24h", "1h", "7d"), enrollment=None, error=None).body


def measure(page, devices_n: int, containers: int, rounds: int) -> dict:
    data = cluster(devices_n, containers)
    principal = Principal("admin", "session")
    assert sum(len(t["tasks"]) for rows in data[2].values() for t in rows) == containers
    page(data, principal)  # warm: templates compiled once per process
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        html = page(data, principal)
        times.append(time.perf_counter() - began)
    times.sort()
    return {"devices": devices_n, "containers": containers, "services": sum(
        len(rows) for rows in data[2].values()), "median_ms": statistics.median(times) * 1e3,
        "p95_ms": times[int(len(times) * 0.95) - 1] * 1e3, "bytes": len(html)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="renders per size (200)")
    args = parser.parse_args()
    table = Table(title=f"page render (views + templates), {args.rounds} rounds each",
                  title_justify="left")
    for column in ("page", "devices / containers", "services", "median", "p95", "HTML"):
        table.add_column(column, justify="right")
    for name, page in (("dashboard", render_dashboard), ("devices", render_devices)):
        small = measure(page, 10, 100, args.rounds)
        big = measure(page, 100, 1000, args.rounds)
        for r in (small, big):
            table.add_row(name, f"{r['devices']} / {r['containers']}",
                          str(r["services"]), f"{r['median_ms']:.2f} ms",
                          f"{r['p95_ms']:.2f} ms", f"{r['bytes'] / 1024:.0f} KiB")
        table.add_row(name, "ratio",
                      f"{big['services'] / small['services']:.0f}×",
                      f"{big['median_ms'] / small['median_ms']:.1f}×",
                      f"{big['p95_ms'] / small['p95_ms']:.1f}×",
                      f"{big['bytes'] / small['bytes']:.1f}×", end_section=True)
    Console(highlight=False).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

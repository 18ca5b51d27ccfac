#!/usr/bin/env python3
"""The portal's API and pages under load, in one run: p50/p99 latency and throughput at 1
and at 50 concurrent clients, side by side with the ratios.

    .venv/bin/python bench/portal_api.py [--seconds S] [--clients N] [--devices N]

A real `dragonball portal serve` over HTTPS on 127.0.0.1, started by tests/portal_lab.py (a
throw-away CA, a store on disk with the admin and --devices devices, no Docker engine: the
agents and the Swarm do not answer, as on a portal whose devices are down, which the pages
show quickly). The load is
`wrk` (Debian's package; it keeps each connection alive, as the CLI's session and a
browser do), authenticated with an API token from POST /api/v1/tokens (what the CLI
sends; basic auth would time scrypt, ~80 ms a call, on purpose slow). Measured:

    GET /healthz            no auth, no store: the server's own floor
    GET /api/v1/devices     the token checked in the store, every device as JSON
    GET /events             a page: token, store, Jinja2 (50 audit-log rows)

Everything runs on this machine's cores (2 here): the load generator shares them with
the portal, so the numbers are the portal's on a busy small server. Asserts nothing.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "payload"))

import requests  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from dragonball import pki  # noqa: E402
from tests.portal_lab import serve, stop, write_portal  # noqa: E402

PASSWORD = "Bench-Passphrase-" + pki.new_secret()[:12]
TARGETS = ("/healthz", "/api/v1/devices", "/events")
console = Console(highlight=False)


def token(url: str, ca: str) -> str:
    session = requests.Session()
    session.trust_env = False
    answer = session.post(url + "/api/v1/tokens", auth=("admin", PASSWORD), json={},
                          verify=ca, timeout=10)
    answer.raise_for_status()
    return answer.json()["token"]


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, clients: int, seconds: float, bearer: str | None) -> dict:
    """One wrk run: {p50, p99 (ms), rps, errors}."""
    argv = ["wrk", f"-t{min(clients, 2)}", f"-c{clients}", f"-d{seconds:g}s", "--latency",
            "--timeout", "10s"]
    if bearer:
        argv += ["-H", f"Authorization: Bearer {bearer}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    found = {}
    for label, key in (("50%", "p50"), ("99%", "p99")):
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        found[key] = float(value) * _UNITS[unit]
    found["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    found["errors"] = (int(bad.group(1)) if bad else 0, errors.group(1) if errors else "")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per run (default 5)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent (default 50)")
    parser.add_argument("--devices", type=int, default=100, help="in the store (100)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    folder = pathlib.Path(tempfile.mkdtemp(prefix="dragonball-bench-"))
    proc = None
    try:
        # enrolled, not joined: no agent is asked for metrics
        devices = [(f"server-{i:03d}", f"10.0.{i // 250}.{i % 250}", "10.0.0.1")
                   for i in range(2, args.devices + 1)]
        proc, url = serve(folder, write_portal(folder, PASSWORD, "bench", "bench", devices,
                                               actor="bench"))
        bearer = token(url, str(folder / "ca.crt"))
        results = {}
        for path in TARGETS:
            auth = None if path == "/healthz" else bearer
            wrk(url + path, 2, 1, auth)  # warm: connections, templates, SQLite pages
            results[path] = [wrk(url + path, n, args.seconds, auth)
                             for n in (1, args.clients)]
        show(results, args)
    finally:
        if proc:
            stop(proc)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def show(results: dict, args) -> None:
    table = Table(title=f"portal over HTTPS on loopback, {args.devices} devices, "
                        f"{args.seconds:g} s a run, wrk (keep-alive)", title_justify="left")
    for column in ("GET", "clients", "p50", "p99", "req/s", "non-2xx"):
        table.add_column(column, justify="right")
    for path, (one, many) in results.items():
        for n, r in ((1, one), (args.clients, many)):
            table.add_row(path, str(n), f"{r['p50']:.1f} ms", f"{r['p99']:.1f} ms",
                          f"{r['rps']:.0f}", f"{r['errors'][0]} {r['errors'][1]}".strip())
        table.add_row(path, f"{args.clients} vs 1", f"{many['p50'] / one['p50']:.1f}×",
                      f"{many['p99'] / one['p99']:.1f}×", f"{many['rps'] / one['rps']:.2f}×",
                      "", end_section=True)
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())

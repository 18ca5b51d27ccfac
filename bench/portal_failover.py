#!/usr/bin/env python3
"""What losing each server costs, the portal's included (issue 12, docs/portal-ha.md): the
app at its moving address, the portal's function (a read and a write through the API, asked
of every manager in turn as the CLI does), and task starts (refused for a missing image).

    .venv/bin/python bench/portal_failover.py                   # a 3-server lab, built, installed
    .venv/bin/python bench/portal_failover.py --lab dbpha --rounds 2   # a lab installed already

The app: the notes example with web (2 tasks) on s2 and s3 behind the moving address
<lab subnet>.100, the store on s2, api x3 (tests/e2e/test_portal_failover.py's spec). Each
round kills (docker kill: a power cut) one server under a bounded load through the address
(tests/load.py), while a prober asks the portals every 0.5 s for the device list (a read)
and every 2 s for an enrollment code (a write: a quorum commit in etcd), each of s1, s2, s3
in turn until one answers; then brings the server back and waits for its portal.

Per round: the app's requests, failed requests, longest gap; the portal's longest stretch
without a read and without a write after the kill; tasks the engine refused for a missing
image meanwhile. Prints a table and its markdown (README's table; --markdown FILE too).
Traffic goes only to the lab's addresses from this machine. Run as root (scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import requests  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import vip_failover  # noqa: E402  (bring_up, stand_by, markdown)
from tests.address_lab import address_of, kill_under_load, put_and_apply  # noqa: E402
from tests.e2e.test_portal_failover import MANAGERS, failover_spec  # noqa: E402
from tests.lab.install import ADMIN_PASSWORD  # noqa: E402

console = Console(highlight=False, width=160)
COLUMNS = ("server killed", "app requests", "app failed", "app longest gap (s)",
           "portal: longest gap, reads (s)", "portal: longest gap, writes (s)",
           "tasks refused: missing image")


class Prober(threading.Thread):
    """Reads and writes through the portals' API, each manager in turn, until stopped."""

    def __init__(self, cluster, ca: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.ca, self.stop = cluster, ca, threading.Event()
        self.reads: list[tuple[float, bool]] = []
        self.writes: list[tuple[float, bool]] = []

    def ask(self, method: str, path: str) -> bool:
        for server in MANAGERS:
            try:
                answer = requests.request(
                    method, f"https://{self.cluster.lab.ip(server)}:8443{path}",
                    auth=("admin", ADMIN_PASSWORD), verify=self.ca, timeout=3,
                    json={"ttl": "10m"} if method == "POST" else None)
            except requests.RequestException:
                continue
            if answer.status_code == 200:
                return True
            if answer.status_code < 500 and answer.status_code != 429:
                return False
        return False

    def run(self) -> None:
        last_write = 0.0
        while not self.stop.is_set():
            self.reads.append((time.monotonic(), self.ask("GET", "/api/v1/devices")))
            if time.monotonic() - last_write >= 2:
                last_write = time.monotonic()
                self.writes.append((last_write, self.ask("POST", "/api/v1/codes")))
            time.sleep(0.5)


def longest_gap(samples: list[tuple[float, bool]], since: float) -> float:
    """The longest stretch after `since` between two good answers (or since the last one)."""
    good = [t for t, ok in samples if ok and t >= since - 2]
    ends = [since, *good] if not good or good[0] > since else good
    gaps = [b - a for a, b in zip(ends, ends[1:])]
    tail = samples[-1][0] - ends[-1] if samples else 0.0
    return round(max([*gaps, tail, 0.0]), 1)


def refused_for_image(cluster, survivor: str) -> int:
    errors = cluster.docker(survivor, "service", "ps", "--no-trunc", "--format", "{{.Error}}",
                            *services(cluster, survivor), check=False).stdout
    return sum("No such image" in line for line in errors.splitlines())


def services(cluster, server: str) -> list[str]:
    return cluster.docker(server, "service", "ls", "--format", "{{.Name}}",
                          check=False).stdout.split()


def round_of(cluster, server: str, ca: str, args) -> list:
    survivor = next(s for s in MANAGERS if s != server)
    before = refused_for_image(cluster, survivor)
    prober = Prober(cluster, ca)
    prober.start()
    killed = time.monotonic() + args.before
    result = kill_under_load(cluster, f"http://{address_of(cluster.lab)}:8080", server,
                             before=args.before, after=args.after, rate=args.rate)
    prober.stop.set()
    prober.join(timeout=30)
    refused = refused_for_image(cluster, survivor) - before
    console.print(f"{server} killed: {result}")
    vip_failover.stand_by(cluster, server, address_of(cluster.lab))
    return [server, result.requests, result.failed, result.longest_gap_s,
            longest_gap(prober.reads, killed), longest_gap(prober.writes, killed), refused]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", help="attach this lab, DragonBall installed already")
    parser.add_argument("--name", default="dbpha", help="the lab to bring up (no --lab)")
    parser.add_argument("--bin", help="install from this .bin (default: build one)")
    parser.add_argument("--skip-build", action="store_true", help="use dist/ as it is")
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    parser.add_argument("--rounds", type=int, default=1, help="kills of each server")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--before", type=float, default=8.0, help="load before the kill, s")
    parser.add_argument("--after", type=float, default=70.0, help="load after the kill, s")
    parser.add_argument("--markdown", help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    lab, cluster, made = vip_failover.bring_up(args)
    try:
        ca = pathlib.Path(tempfile.mkdtemp(prefix="dragonball-pha-")) / "ca.crt"
        ca.write_text(lab.exec("s1", ["cat", "/etc/dragonball/ca.crt"], check=True).stdout)
        run = put_and_apply(cluster, failover_spec(lab), check=False)
        if run.returncode != 0:
            console.print(run.stdout + run.stderr)
            return 1
        rows = [round_of(cluster, server, str(ca), args)
                for _ in range(args.rounds) for server in MANAGERS]
    finally:
        if made and not args.keep:
            lab.down()
    table = Table(title="each server killed under load", title_justify="left")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(c) for c in row])
    console.print(table)
    text = vip_failover.markdown(rows, COLUMNS)
    print(text)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

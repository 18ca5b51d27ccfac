#!/usr/bin/env python3
"""What losing a server costs the clients of an app: at its moving address, and at a
single server's address (docs/app-address.md).

    .venv/bin/python bench/vip_failover.py                    # a 3-server lab, built, installed
    .venv/bin/python bench/vip_failover.py --lab dbvip --rounds 3   # a lab installed already

The app: the notes example with web (2 tasks) on s2 and s3 and the moving address
<lab subnet>.100 (tests/address_lab.py), the store on s1. Each round runs a bounded load
(tests/load.py: 4 workers, --rate requests/s, a read every 4th, the rest writes) for
--before s, kills (docker kill: a power cut) a server, keeps the load --after s more, then
brings the server back and waits until it stands by again:

- **address**: the load goes to the moving address; the server holding it is killed;
- **server**: the same app, the load sent to one web server's own address; that server is
  killed (what a client pinned to one server sees; it answers again only when the server
  is back, so its gap is the whole --after window).

Per round: requests, failed requests, the longest stretch without a good answer, the
seconds without an answer (stretches over 1 s, summed) and when the clients were answered
again for good (the end of the longest gap after the kill; none while the server is off).
Prints a table and its markdown (README's table; --markdown FILE writes it too).
Traffic goes only to the lab's addresses from this machine. Run as root (scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import install_cluster  # noqa: E402  (bench/: the .bin build it does)
from tests.address_lab import (WEB_SERVERS, address_of, address_spec,  # noqa: E402
                               kill_under_load, put_and_apply, wait_holders)
from tests.lab import Lab  # noqa: E402
from tests.lab.faults import bring_back  # noqa: E402
from tests.lab.install import LabCluster  # noqa: E402

console = Console(highlight=False, width=160)
COLUMNS = ("clients reach", "server killed", "requests", "failed", "longest gap (s)",
           "s without an answer", "answering again after the kill (s)")


def bring_up(args) -> tuple[Lab, LabCluster, bool]:
    """(lab, cluster, made here): attached, or brought up and installed now."""
    if args.lab:
        lab = Lab.attach(args.lab)
        return lab, LabCluster(lab, args.bin or "DragonBall.bin"), False
    with tempfile.TemporaryDirectory(prefix="dragonball-vip-") as folder:
        bin_path = pathlib.Path(args.bin) if args.bin else install_cluster.build(
            args.skip_build, folder)
        lab = Lab(args.name, servers=3, internal=True).up()
        try:
            cluster = LabCluster(lab, bin_path)
            cluster.install_cluster()
        except BaseException:
            if not args.keep:
                lab.down()
            raise
    return lab, cluster, True


def stand_by(cluster: LabCluster, server: str, address: str) -> None:
    """`server` powered on again, and the address held by exactly one server."""
    bring_back(cluster.lab, server)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        web = cluster.docker("s1", "service", "ps", "notes_web", "--filter",
                             "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}",
                             check=False).stdout
        if sum(line.split()[1:2] == ["Running"] for line in web.splitlines()) == 2:
            break
        time.sleep(2)
    found, waited = wait_holders(cluster.lab, address, lambda h: len(h) == 1, 60)
    if waited is None:
        raise RuntimeError(f"after {server} came back the address is held by {found}")
    time.sleep(5)   # its keepalived standing by


def round_of(cluster: LabCluster, how: str, args) -> list:
    lab, address = cluster.lab, address_of(cluster.lab)
    found, _ = wait_holders(lab, address, lambda h: len(h) == 1, 60)
    if how == "address":
        server, url = found[0], f"http://{address}:8080"
    else:   # a web server's own address (the other one, so both get killed over the rounds)
        server = next(s for s in WEB_SERVERS if s not in found)
        url = f"http://{lab.ip(server)}:8080"
    result = kill_under_load(cluster, url, server, before=args.before, after=args.after,
                             rate=args.rate)
    console.print(f"{how}: {server} killed: {result}")
    stand_by(cluster, server, address)
    back = result.answering_again_s
    return [f"{address} (moving)" if how == "address" else f"{lab.ip(server)} (one server)",
            server, result.requests, result.failed, result.longest_gap_s,
            result.without_answer_s,
            f"{back:.2f}" if back is not None else f"not within {args.after:.0f}"]


def summary(rows: list) -> list:
    """Per kind, the median of each number over the rounds."""
    found = []
    for kind in ("moving", "one server"):
        mine = [r for r in rows if kind in r[0]]
        if not mine:
            continue
        numbers = [statistics.median(r[i] for r in mine) for i in (2, 3, 4, 5)]
        firsts = [float(r[6]) for r in mine if not str(r[6]).startswith("not")]
        first = f"{statistics.median(firsts):.2f}" if firsts else mine[0][6]
        found.append([f"{kind}: median of {len(mine)}", "", *[f"{n:g}" for n in numbers],
                      first])
    return found


def markdown(rows: list, columns=COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", help="attach this lab, DragonBall installed already")
    parser.add_argument("--name", default="dbvip", help="the lab to bring up (no --lab)")
    parser.add_argument("--bin", help="install from this .bin (default: build one)")
    parser.add_argument("--skip-build", action="store_true", help="use dist/ as it is")
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    parser.add_argument("--rounds", type=int, default=2, help="kills of each kind")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--before", type=float, default=8.0, help="load before the kill, s")
    parser.add_argument("--after", type=float, default=25.0, help="load after the kill, s")
    parser.add_argument("--markdown", help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    lab, cluster, made = bring_up(args)
    try:
        run = put_and_apply(cluster, address_spec(lab), check=False)
        if run.returncode != 0:
            console.print(run.stdout + run.stderr)
            return 1
        rows = [round_of(cluster, how, args)
                for _ in range(args.rounds) for how in ("address", "server")]
    finally:
        if made and not args.keep:
            lab.down()
    rows += summary(rows)
    table = Table(title="a server killed under load", title_justify="left")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(c) for c in row])
    console.print(table)
    text = markdown(rows)
    print(text)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

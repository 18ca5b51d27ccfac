"""The replicated notes store: what a write costs, and what losing the primary costs.

    .venv/bin/python bench/store_ha.py                    # ~6 minutes on the 2-core VM
    .venv/bin/python bench/store_ha.py --rounds 5 --writes 500

On this machine's engine (no Swarm), the layout of tests/notes_ha.py: store slots on one
bridge network with the aliases store-<n> and the slot variables, one api container, one
client on loopback calling the api directly (no web in front: the web's eviction has its own
bench, service_eviction.py). It measures:

1. **write cost**: `--writes` sequential POST /api/notes, one client, in four layouts: a single
   store with appendfsync everysec (the store as it was) and always (the new default); three
   slots (the api acknowledges after WAIT 1) with everysec and always. Latency percentiles and
   writes per second.
2. **primary killed** (`--rounds` times, three slots, always): one client POSTs and GETs in a
   loop for 20 s; 3 s in, `docker kill` of the primary. Seconds without an acknowledged write
   (from the last one before the first failure to the first one after), acknowledged notes
   missing from the new primary (must be 0),
   GETs that returned an empty list after the first acknowledged note (must be 0). The killed
   slot is started again (it rejoins as a replica) before the next round.
3. **primary stopped** (same, `docker stop`): the stopping primary hands over (ha.py handover).

Lab "power loss" is `docker kill` (MACHINE.md): the page cache survives it, so (2) proves the
failover, not fsync durability; that rests on appendfsync always (measured in (1)).
Everything it starts carries the test label and is removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import docker  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from notes_ha import Client, HaStore, build_images, http, remove_images  # noqa: E402

console = Console(highlight=False)


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def write_cost(client, images, folder: pathlib.Path, slots: int, fsync: str, writes: int) -> dict:
    group = HaStore(client, images, folder / f"{slots}-{fsync}", slots=slots,
                    prefix=f"bench-{slots}-{fsync}", params={"appendfsync": fsync})
    try:
        for name in group.names:
            group.start_slot(name)
        group.start_api()
        group.wait_ready()
        url = f"{group.api_url}/api/notes"
        times, failed = [], 0
        started = time.monotonic()
        for n in range(writes):
            t = time.perf_counter()
            status, _ = http("POST", url, {"text": f"cost {n}"})
            times.append((time.perf_counter() - t) * 1000)
            failed += status != 201
        elapsed = time.monotonic() - started
    finally:
        group.remove()
    return {"layout": f"{'single store' if slots == 1 else f'{slots} slots, WAIT 1'}",
            "appendfsync": fsync, "p50": percentile(times, 0.5), "p90": percentile(times, 0.9),
            "p99": percentile(times, 0.99), "per_s": writes / elapsed, "failed": failed}


def losing_the_primary(group: HaStore, how: str) -> dict:
    primary = group.primary()
    client = Client(group.api_url, seconds=20, label=how)
    client.start()
    time.sleep(3)
    at = client.now()
    container = group.containers[primary]
    container.kill() if how == "kill" else container.stop(timeout=10)
    client.join(timeout=60)
    refused, resumed = client.refused_window(at)
    new = group.primary()
    missing = set(client.acknowledged()) - group.note_ids(new)
    container.start()
    group.wait_ready(primary)
    return {"how": how, "from": primary, "to": new, "refused_s": refused,
            "resumed_s": (resumed - at) if resumed else None, "writes": len(client.writes()),
            "failed": len(client.failures()), "lost": len(missing),
            "empty_reads": client.empty_reads_after_first_write()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--writes", type=int, default=300)
    args = parser.parse_args(argv)
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock", version="1.41")
    images = build_images(client)
    try:
        with tempfile.TemporaryDirectory(prefix="dragonball-bench-ha-") as tmp:
            folder = pathlib.Path(tmp)
            costs = [write_cost(client, images, folder, slots, fsync, args.writes)
                     for slots, fsync in ((1, "everysec"), (1, "always"), (3, "everysec"),
                                          (3, "always"))]
            table = Table(title=f"write cost: {args.writes} sequential POST /api/notes, one client")
            for column in ("layout", "appendfsync", "p50 ms", "p90 ms", "p99 ms", "writes/s",
                           "failed"):
                table.add_column(column)
            for c in costs:
                table.add_row(c["layout"], c["appendfsync"], f"{c['p50']:.1f}", f"{c['p90']:.1f}",
                              f"{c['p99']:.1f}", f"{c['per_s']:.0f}", str(c["failed"]))
            console.print(table)

            group = HaStore(client, images, folder / "failover", prefix="bench-failover")
            try:
                for name in group.names:
                    group.start_slot(name)
                group.start_api()
                group.wait_ready()
                results = [losing_the_primary(group, how)
                           for how in ("kill", "stop") for _ in range(args.rounds)]
            finally:
                group.remove()
    finally:
        remove_images(client, images)
    table = Table(title="losing the primary under one client (POST + GET loop, 20 s)")
    for column in ("how", "primary", "new", "s without a write", "writes", "failed",
                   "acknowledged lost", "empty reads"):
        table.add_column(column)
    for r in results:
        table.add_row(r["how"], r["from"], r["to"], f"{r['refused_s']:.2f}", str(r["writes"]),
                      str(r["failed"]), str(r["lost"]), str(r["empty_reads"]))
    console.print(table)
    for how in ("kill", "stop"):
        refused = [r["refused_s"] for r in results if r["how"] == how]
        console.print(f"{how}: seconds without an acknowledged write: median "
                      f"{statistics.median(refused):.2f} s, max {max(refused):.2f} s")
    bad = [r for r in results if r["lost"] or r["empty_reads"] or r["resumed_s"] is None]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

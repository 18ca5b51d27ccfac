#!/usr/bin/env python3
"""Bench: what the upgrade's backup snapshot of a store costs the store (issue 18, DESIGN:
"the pre-upgrade backup includes a snapshot of every stateful slot's volume").

    .venv/bin/python bench/snapshot_pause.py [MB ...]       # default: 1 100 300

On this machine's engine, the real node agent (its image, as its Swarm service runs it) and
a "store": a container appending a timestamp line to its volume every 20 ms. For each size,
side by side in one run, the longest gap between two of its writes (what a client of the
store waits) while the volume is copied two ways:

    paused    the upgrade's way: the agent's export with ?pause=1 (the store frozen only
              while its files are read, upgrade/snapshots.py)
    stopped   the only way before: stop the store, export, start it again (what `dragonball
              move` does, and what a copy "at rest" needs)

and prints a table with the ratio stopped / paused. Everything carries a test label and is
removed at the end. Nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "payload"), str(ROOT / "tests")]

import docker  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agent_lab import agent_container, answering_client, write_agent_pem  # noqa: E402
from builder.pipeline import BuildEnv  # noqa: E402
from builder.engine import Engine  # noqa: E402
from builder.platform_images import build_agent_image  # noqa: E402
from builder.progress import Reporter  # noqa: E402
from support import BASE_IMAGE, LABELS, RUN_ID  # noqa: E402

console = Console(highlight=False, width=120)
APP = f"dbbench-snap-{RUN_ID}"
WRITER = ("while :; do date +%s.%N >> /v/writes; sleep 0.02; done")


def longest_gap(container, since: float) -> float:
    """The longest time between two of the writer's lines written after `since`."""
    out = container.exec_run(["cat", "/v/writes"]).output.decode().split()
    stamps = [float(s) for s in out if s and float(s) >= since]
    return max((b - a for a, b in zip(stamps, stamps[1:])), default=0.0)


def one_size(client, agents, mb: int) -> dict:
    name = f"{APP}_store_storage.{mb}"
    labels = {**LABELS, "io.dragonball.app": APP, "io.dragonball.service": "store",
              "io.dragonball.slot": "store-1"}
    client.volumes.create(name, labels=labels)
    client.containers.run(BASE_IMAGE, ["-c", f"head -c {mb << 20} /dev/urandom > /v/data"],
                          entrypoint=["sh"], remove=True, labels=LABELS,
                          network_disabled=True, volumes={name: {"bind": "/v", "mode": "rw"}})
    store = client.containers.run(BASE_IMAGE, ["-c", WRITER], entrypoint=["sh"], detach=True,
                                  labels=LABELS, network_disabled=True,
                                  volumes={name: {"bind": "/v", "mode": "rw"}})
    try:
        time.sleep(1)
        began = time.time()
        snapshot = agents.export_volume("127.0.0.1", name, pause=True)
        agents.delete_transfer("127.0.0.1", snapshot["id"])
        time.sleep(0.5)
        paused = longest_gap(store, began)
        began = time.time()
        store.stop(timeout=10)
        done = agents.export_volume("127.0.0.1", name)
        store.start()
        agents.delete_transfer("127.0.0.1", done["id"])
        time.sleep(1)
        stopped = longest_gap(store, began)
        return {"mb": mb, "paused": paused, "agent_paused_s": snapshot["paused_s"],
                "stopped": stopped, "ratio": stopped / paused if paused else float("inf")}
    finally:
        store.remove(force=True)
        client.volumes.get(name).remove(force=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1, 100, 300])
    args = parser.parse_args()
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock", version="1.41")
    engine = Engine()
    try:
        with console.status("building the agent image (cached when unchanged)"):
            image = build_agent_image(BuildEnv(reporter=Reporter(), engine=engine))
    finally:
        engine.close()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pem = write_agent_pem(pathlib.Path(tmp))
        staging = client.volumes.create(f"dbbench-transfers-{RUN_ID}", labels=LABELS)
        try:
            with agent_container(client, image, pem, f"dbbench-agent-{RUN_ID}",
                                 {staging.name: {"bind": "/host/transfers", "mode": "rw"}}) \
                    as agent, answering_client(pem, agent, timeout=60) as agents:
                for mb in args.sizes:
                    with console.status(f"{mb} MB: paused snapshot, then stop/export/start"):
                        rows.append(one_size(client, agents, mb))
        finally:
            staging.remove(force=True)
    table = Table(title="the store's longest wait between two writes while its volume is "
                        "copied (this machine, one run)")
    for column in ("volume", "paused (upgrade's snapshot)", "the agent's paused_s",
                   "stopped, copied, started", "stopped / paused"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(f"{r['mb']} MB", f"{r['paused']:.2f} s", f"{r['agent_paused_s']:.2f} s",
                      f"{r['stopped']:.2f} s", f"{r['ratio']:.1f}x")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Time from start to all servers joined, installing a cluster from the real .bin in the lab.

    .venv/bin/python bench/install_cluster.py 1 3         # what docs/install-cluster.md shows
    .venv/bin/python bench/install_cluster.py 10          # by hand: ~10 servers on 2 cores
    .venv/bin/python bench/install_cluster.py 3 --skip-build --keep
    .venv/bin/python bench/install_cluster.py 10 --app     # bare servers to the app healthy

For each count N: an internal lab of N bare servers (tests/lab), the .bin copied to
each, s1 installed as the portal from an answers file, then s2..sN as devices at once
(each with its own code from `dragonball enroll` on s1). The clock starts when s1's
install starts and stops when the last server's install has finished (its join
reported to the portal), codes included. Copying the .bin and the lab itself are not
counted. With --app, the notes app (examples/notes.app.yaml, web on s1, store on s2) is
then applied from the portal, and the clock runs on until `dragonball apply` reports every
service healthy: bare servers to the app answering.

Each server's time is split into phases, read from its install journal (the servers
share this machine's clock, so journal times and ours compare):

    verify     the .bin checking its own size and SHA-256s (`--verify`, timed alone on s1)
    preflight  the rest before the first step: unpacking the runtime, the answers and
               their checks with the portal, preflight
    engine     OS preparation and the offline engine (os.*, engine.* steps)
    images     the release's images into the portal's registry (portal steps about images)
    join       the rest of the role's steps: the portal's bootstrap, or the device's join
    end        after the last step: the summary, the runtime's clean-up

Run as root (scripts/setup.sh); builds the .bin into a temporary folder of its own
unless --skip-build (then dist/ is used). Nothing leaves this machine: the lab is internal,
and the leak counter is printed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tests.lab import Lab  # noqa: E402
from tests.lab.install import LabCluster, step_times  # noqa: E402

PHASES = ("verify", "preflight", "engine", "images", "join", "end")
console = Console(highlight=False, width=120)


def build(skip: bool, folder: str) -> pathlib.Path:
    dist = ROOT / "dist" if skip else pathlib.Path(folder)
    if not skip:
        subprocess.run([sys.executable, str(ROOT / "build.py"), "--dist", str(dist)],
                       check=True, cwd=ROOT)
    manifest = json.loads((dist / "manifest.json").read_text())
    return dist / f"DragonBall-{manifest['version']}.bin"


def phase_of(step_id: str) -> str:
    if step_id.startswith(("os.", "engine.")):
        return "engine"
    if "image" in step_id:
        return "images"
    return "join"


def phases(run, journal: dict, verify_s: float) -> dict:
    """Seconds per phase of one server's install run (pure)."""
    times = step_times(journal)
    spent = dict.fromkeys(PHASES, 0.0)
    if not times:
        spent["preflight"] = run.seconds
        return spent
    first = min(start for start, _ in times.values())
    last = max(end for _, end in times.values())
    spent["verify"] = min(verify_s, first - run.started)
    spent["preflight"] = max(0.0, first - run.started - spent["verify"])
    for step_id, (start, end) in times.items():
        spent[phase_of(step_id)] += end - start
    spent["end"] = max(0.0, run.started + run.seconds - last)
    return spent


def apply_app(cluster) -> float:
    """Seconds of `dragonball apply` of the notes app on the portal, to every service healthy."""
    from tests.e2e.apps import lab_spec, put_spec
    spec = lab_spec()
    if len(cluster.lab.servers) < 2:   # the lab spec puts the store on s2
        spec["services"]["store"]["placement"] = {"servers": ["s1"]}
    spec = put_spec(cluster, spec, "/root/notes.app.yaml")
    began = time.monotonic()
    done = cluster.dragonball("apply", spec, check=False, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"apply failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return time.monotonic() - began


def bench(count: int, bin_path: pathlib.Path, keep: bool, app: bool = False) -> dict:
    lab = Lab(f"dbbench{count}", servers=count, internal=True)
    lab.up()
    try:
        cluster = LabCluster(lab, bin_path)
        cluster.copy_bin()
        began = time.monotonic()
        lab.exec("s1", [cluster.bin, "--verify"], check=True, timeout=300)
        verify_s = time.monotonic() - began
        runs = {"s1": cluster.install("s1", cluster.portal_answers("s1"))}
        if not runs["s1"].ok:
            raise SystemExit(f"the portal's install failed:\n{runs['s1'].output[-3000:]}")
        devices = lab.servers[1:]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # one code per device
            codes = dict(zip(devices, pool.map(lambda _: cluster.enroll(), devices)))
        runs.update(cluster.install_many({s: cluster.device_answers(s, codes[s])
                                          for s in devices}))
        failed = [s for s, r in runs.items() if not r.ok]
        if failed:
            raise SystemExit(f"install failed on {', '.join(failed)}:\n"
                             + runs[failed[0]].output[-3000:])
        wall = max(r.started + r.seconds for r in runs.values()) - runs["s1"].started
        journals = {s: cluster.journal(s) for s in runs}
        rows = {s: phases(r, journals[s], verify_s) for s, r in runs.items()}
        slowest = sorted(((end - start, f"{s} {step}") for s, j in journals.items()
                          for step, (start, end) in step_times(j).items()), reverse=True)
        nodes = cluster.docker("s1", "node", "ls", "--format", "{{.Status}}").stdout.split()
        apply_s = apply_app(cluster) if app else None
        return {"servers": count, "wall": wall, "apply": apply_s, "rows": rows, "totals": {
            s: r.seconds for s, r in runs.items()}, "ready": nodes.count("Ready"),
            "slowest": slowest[:5],
            "leaks": lab.leak_packets()}
    finally:
        if not keep:
            lab.down()


def show(result: dict) -> None:
    table = Table(title=f"{result['servers']} server(s): all joined in {result['wall']:.1f} s "
                        f"({result['ready']} Ready; leak counter {result['leaks']})",
                  title_justify="left")
    table.add_column("server")
    for phase in PHASES:
        table.add_column(phase, justify="right")
    table.add_column("install", justify="right")
    for server, spent in result["rows"].items():
        table.add_row(server + (" (portal)" if server == "s1" else ""),
                      *(f"{spent[p]:.1f}" for p in PHASES), f"{result['totals'][server]:.1f}")
    console.print(table)
    console.print("slowest steps: " + ", ".join(f"{name} {seconds:.1f} s"
                                                for seconds, name in result["slowest"]))


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("counts", nargs="*", type=int, default=[1, 3],
                        help="cluster sizes to install (default: 1 3)")
    parser.add_argument("--skip-build", action="store_true", help="use dist/ as it is")
    parser.add_argument("--keep", action="store_true", help="leave the labs up afterwards")
    parser.add_argument("--app", action="store_true",
                        help="then apply the notes app and time it to every service healthy")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dragonball-bench-") as folder:
        bin_path = build(args.skip_build, folder)
        results = [bench(n, bin_path, args.keep, args.app) for n in args.counts]
    for result in results:
        show(result)
    summary = Table(title="start to all servers joined", title_justify="left")
    for column in ("servers", "seconds", "portal install", "slowest device install",
                   "engine steps, slowest server", "app apply", "bare to app healthy"):
        summary.add_column(column, justify="right")
    for r in results:
        devices = [t for s, t in r["totals"].items() if s != "s1"]
        engine = max(spent["engine"] for spent in r["rows"].values())
        summary.add_row(str(r["servers"]), f"{r['wall']:.1f}", f"{r['totals']['s1']:.1f}",
                        f"{max(devices):.1f}" if devices else "-", f"{engine:.1f}",
                        f"{r['apply']:.1f}" if r["apply"] is not None else "-",
                        f"{r['wall'] + r['apply']:.1f}" if r["apply"] is not None else "-")
    console.print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

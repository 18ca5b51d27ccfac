#!/usr/bin/env python3
"""An upgrade of the notes app's release beside a fresh install of the same release (issue 18).

    .venv/bin/python bench/upgrade.py            # 3 servers: ~20 minutes on the 2-core VM
    .venv/bin/python bench/upgrade.py 3 10       # by hand: 10 servers take much longer

Builds, under the build lock, the default release (0.1.0) and its variant 0.2.0
(tests/releases.py: api changed, a new parameter). For each count N, on internal labs of N
bare servers, one after the other (never two labs at once on 2 cores):

    fresh     0.2.0 installed on bare servers (the portal, then every device at once) and
              its app applied (web on s1, store on s2, api x3) until every service is
              healthy: the clock of bench/install_cluster.py --app
    upgrade   on a cluster installed from 0.1.0 with its app applied: `DragonBall-0.2.0.bin
              upgrade --yes` under a bounded load through the web Service (tests/load.py),
              to its exit
    rollback  then `dragonball rollback --yes` under the same load, to its exit

and prints a table: seconds of each, the ratio upgrade / fresh (target: at most 1 on 10
servers), the failed requests during the upgrade and the rollback (target: none), and the
rollback against its target (60 s on 3 servers). Nothing leaves this machine: the labs are
internal and the load talks to the lab only.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tests import releases  # noqa: E402
from tests.e2e.apps import lab_spec, put_spec  # noqa: E402
from tests.lab import Lab  # noqa: E402
from tests.lab.install import LabCluster  # noqa: E402
from tests.ledger import Ledger  # noqa: E402
from tests.load import Load, NotesWorkload  # noqa: E402
from tests.upgrade_lab import put_bin, upgrade  # noqa: E402

console = Console(highlight=False, width=120)
ROLLBACK_TARGET_S = 60


SETTLE_S = 15


def placed(spec: dict, servers: int) -> dict:
    """The lab's placement (tests/e2e/apps.py lab_spec) on `spec`'s services."""
    where = lab_spec()["services"]
    for name, service in spec["services"].items():
        for key in ("placement", "replicas"):
            if key in where[name]:
                service[key] = where[name][key]
    if servers < 2:
        spec["services"]["store"]["placement"] = {"servers": ["s1"]}
    return spec


def installed(name: str, servers: int, bin_path: pathlib.Path, spec: dict) -> tuple:
    """A lab of `servers` installed from `bin_path` with `spec` applied: (lab, cluster,
    seconds from the portal's install to every service healthy)."""
    lab = Lab(name, servers=servers, internal=True)
    lab.up()
    try:
        cluster = LabCluster(lab, bin_path)
        cluster.copy_bin()
        began = time.monotonic()
        cluster.install_cluster()
        on_portal = put_spec(cluster, spec, "/root/notes.app.yaml")
        done = cluster.dragonball("apply", on_portal, check=False, timeout=1800)
        if done.returncode != 0:
            raise SystemExit(f"apply failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
        return lab, cluster, time.monotonic() - began
    except BaseException:
        lab.down()
        raise


def under_load(cluster, step) -> tuple[float, int, int]:
    """Run `step()` under a bounded load: (its seconds, failed requests, requests); the
    failures' reasons and times are printed (what a person would look at first)."""
    load = Load(f"http://{cluster.lab.ip('s1')}:8080", NotesWorkload(), Ledger(), threads=2,
                rate=4, seconds=3600, budget=50_000, allowed=[cluster.lab.subnet]).start()
    try:
        began = time.monotonic()
        step()
        seconds = time.monotonic() - began
    finally:
        time.sleep(2)
        load.stop()
    for attempt in load.ledger.failed:
        console.print(f"  failed request at +{attempt.sent - began:.1f} s: {attempt.reason}")
    return seconds, len(load.ledger.failed), len(load.ledger.attempts)


def checked(run, what: str) -> None:
    if run.returncode != 0:
        raise SystemExit(f"{what} exited {run.returncode}:\n{run.stdout[-3000:]}"
                         f"{run.stderr[-3000:]}")


def bench(servers: int, old_bin: pathlib.Path, new_bin: pathlib.Path, keep: bool) -> dict:
    new_spec = placed(releases.app_spec(releases.VARIANTS["0.2.0"], "0.2.0"), servers)
    lab, _, fresh_s = installed(f"dbupf{servers}", servers, new_bin, new_spec)
    if not keep:
        lab.down()
    lab, cluster, _ = installed(f"dbupu{servers}", servers, old_bin, placed(lab_spec(), servers))
    time.sleep(SETTLE_S)   # the app just became healthy: its Service's first resolve, etc.
    try:
        on_portal = put_bin(cluster, new_bin)
        up = under_load(cluster, lambda: checked(upgrade(cluster, on_portal, "--yes"),
                                                 "the upgrade"))
        back = under_load(cluster, lambda: checked(cluster.dragonball(
            "rollback", "--yes", check=False, timeout=1800), "the rollback"))
        return {"servers": servers, "fresh": fresh_s, "upgrade": up, "rollback": back,
                "leaks": lab.leak_packets()}
    finally:
        if not keep:
            lab.down()


def show(results: list[dict]) -> None:
    table = Table(title="0.1.0 -> 0.2.0 (api changed, a new parameter) beside a fresh install "
                        "of 0.2.0 to its app healthy", title_justify="left")
    for column in ("servers", "fresh install s", "upgrade s", "upgrade / fresh",
                   "failed requests (upgrade)", "rollback s", f"rollback / {ROLLBACK_TARGET_S} s",
                   "failed requests (rollback)", "leak counter"):
        table.add_column(column, justify="right")
    for r in results:
        (up_s, up_failed, up_all), (back_s, back_failed, back_all) = r["upgrade"], r["rollback"]
        table.add_row(str(r["servers"]), f"{r['fresh']:.1f}", f"{up_s:.1f}",
                      f"{up_s / r['fresh']:.2f}", f"{up_failed} of {up_all}", f"{back_s:.1f}",
                      f"{back_s / ROLLBACK_TARGET_S:.2f}", f"{back_failed} of {back_all}",
                      str(r["leaks"]))
    console.print(table)


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("counts", nargs="*", type=int, default=[3],
                        help="cluster sizes (default: 3)")
    parser.add_argument("--keep", action="store_true", help="leave the labs up afterwards")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dragonball-bench-upgrade-") as folder:
        folder = pathlib.Path(folder)
        old_bin, _ = releases.build_bin(ROOT / "release.yaml", folder / "dist-0.1.0")
        new_bin, _ = releases.build_variant(folder, "0.2.0")
        results = [bench(n, old_bin, new_bin, args.keep) for n in args.counts]
    show(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Start of a 20-service, depth-4 app tree on Swarm against its critical path.

    sudo .venv/bin/python bench/app_start.py            # ~1-2 minutes on the 2-core VM

Builds a tiny module image FROM dragonballbase whose start action sleeps `start_delay`
seconds (seeded, 0-3 s, different per service), puts the host's engine in a single-node
Swarm (left again at the end if this run made it), and applies a 20-service tree of depth 4
(1 root Service, 3 Services under it, 6 under those, 10 leaf Backends) with the real
orchestrator (dragonball.orchestrator.control.Control: the same scheduler, Swarm adapter and
health gates; only the registry lookup is replaced by the local image, and the node agent's
parameter write by a local one). It measures, in the same run, from the rollout's own events:

- each service's own start: from its launch to Swarm reporting every task healthy;
- the critical path: the longest chain of those durations through the tree;
- what a wave-by-wave start would take with the same durations (sum over levels of the
  slowest service of each level), and a one-by-one start (their sum).

and prints the measured total against each: the eager start should be close to 1.0 of the
critical path. Nothing leaves this machine.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "payload"))

from dragonball.app import graph  # noqa: E402
from dragonball.orchestrator import naming  # noqa: E402
from dragonball.orchestrator.control import Control  # noqa: E402
from dragonball.orchestrator.observe import Observer  # noqa: E402
from dragonball.orchestrator.state import AppStore  # noqa: E402
from dragonball.portal.store import Store  # noqa: E402
from dragonball.swarm import Swarm  # noqa: E402

DOCKER = "/usr/bin/docker"
IMAGE = "dragonball-bench/sleeper:1"
APP = "benchtree"
SEED = 7


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def build_image(folder: pathlib.Path) -> None:
    module = folder / "sleeper"
    for event in ("config_change", "info", "start", "status", "stop"):
        (module / "action" / event).mkdir(parents=True)
    for rel, body in {"start/1_sleep.sh": 'sleep "${PARAM_START_DELAY:-0}"',
                      "status/1_ok.sh": "exit 0", "stop/1_ok.sh": "exit 0"}.items():
        path = module / "action" / rel
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(0o755)
    for name in ("log", "module", "storage"):
        (module / name).mkdir()
    (folder / "Dockerfile").write_text("FROM dragonballbase:bookworm\n"
                                       "ADD sleeper /opt/dragon_ball/service/sleeper\n")
    sh(DOCKER, "build", "-q", "-t", IMAGE, str(folder))


def tree_spec() -> tuple[dict, dict]:
    """(the app spec as data, name -> level): 1 + 3 + 6 + 10 services, depth 4."""
    rng = random.Random(SEED)
    levels = [["root"], [f"mid{i}" for i in range(3)], [f"low{i}" for i in range(6)],
              [f"leaf{i}" for i in range(10)]]
    children = {"root": levels[1], **{m: levels[2][2 * i:2 * i + 2] for i, m in
                                      enumerate(levels[1])}}
    for i, low in enumerate(levels[2]):
        children[low] = levels[3][i * 10 // 6:(i + 1) * 10 // 6] or [levels[3][i]]
    services = {}
    for depth, names in enumerate(levels):
        for name in names:
            below = children.get(name, [])
            services[name] = {
                "kind": "service" if below else "backend", "image": IMAGE,
                **({"backends": below} if below else {}),
                "parameters": {"start_delay": {"type": "float",
                                               "default": round(rng.uniform(0, 3), 1)}}}
    return {"app": APP, "services": services}, {n: d for d, ns in enumerate(levels) for n in ns}


class LocalAgents:
    """The node agent's parameter write, on this machine (one node)."""

    def put_params(self, address, app, service, revision, params):
        folder = pathlib.Path(naming.params_dir(app, service))
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (folder / "params.json").write_text(json.dumps(params))


class LocalObserver(Observer):
    """The images are this engine's own: each is "pinned" as itself, no registry."""

    def pin(self, images):
        return {i: i for i in images}


def longest_path(needs: dict, duration: dict) -> float:
    memo: dict = {}

    def finish(name: str) -> float:
        if name not in memo:
            memo[name] = duration[name] + max((finish(n) for n in needs[name]), default=0.0)
        return memo[name]
    return max(finish(n) for n in needs)


def main() -> int:
    if os.geteuid() != 0:
        print("run as root (it uses the Docker engine and /var/lib/dragonball)")
        return 2
    state = sh(DOCKER, "info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    made_swarm = state != "active"
    work = pathlib.Path(tempfile.mkdtemp(prefix="db-bench-app-"))
    params_root = pathlib.Path(naming.params_dir(APP, "x")).parent
    try:
        print("building the sleeper module image ...", flush=True)
        build_image(work)
        if made_swarm:
            address = sh("hostname", "-I").stdout.split()[0]
            sh(DOCKER, "swarm", "init", "--advertise-addr", address)
        data, level = tree_spec()
        spec_path = work / "tree.app.yaml"
        spec_path.write_text(json.dumps(data))
        events: list = []
        began = time.monotonic()

        def progress(service, state, detail):
            events.append((service, state, time.monotonic() - began))
        control = Control(Swarm(), AppStore(Store.open(str(work / "portal.db"))),
                          LocalAgents(), None, "", progress=progress, wait_s=180)
        control.observer = LocalObserver(control.engine, None, "")
        print("applying 20 services, depth 4 ...", flush=True)
        control.apply(str(spec_path))
        total = time.monotonic() - began
        start = {s: t for s, st, t in events if st == "starting"}
        healthy = {s: t for s, st, t in events if st == "healthy"}
        duration = {s: healthy[s] - start[s] for s in healthy}
        needs = {n: s.get("backends", []) for n, s in data["services"].items()}
        critical = longest_path(needs, duration)
        waves = sum(max(duration[n] for n in wave) for wave in graph.waves(needs))
        one_by_one = sum(duration.values())
        first_launch = min(start.values())
        print(f"\n{len(duration)} services, {len(graph.waves(needs))} levels; each service's "
              f"own start {min(duration.values()):.1f}-{max(duration.values()):.1f} s "
              f"(start_delay 0-3 s + the first health check)")
        print(f"{'':28} {'seconds':>8} {'measured / this':>16}")
        rows = [("measured (eager, this run)", total - first_launch),
                ("critical path", critical), ("wave by wave (same durations)", waves),
                ("one by one (same durations)", one_by_one)]
        for label, seconds in rows:
            print(f"{label:28} {seconds:8.1f} {(total - first_launch) / seconds:16.2f}")
        return 0
    finally:
        for name in sh(DOCKER, "service", "ls", "--filter", f"label={naming.APP_LABEL}={APP}",
                       "-q", check=False).stdout.split():
            sh(DOCKER, "service", "rm", name, check=False)
        if made_swarm:
            time.sleep(2)
            sh(DOCKER, "swarm", "leave", "--force", check=False)
        shutil.rmtree(params_root, ignore_errors=True)
        for folder in (params_root.parent, params_root.parent.parent):  # if made here
            try:
                folder.rmdir()
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Driving an upgrade on an installed lab cluster (tests/lab/install.py LabCluster), for the
upgrade tests (tests/e2e/test_release_upgrade.py) and bench/upgrade.py:

    on_portal = put_bin(cluster, bin_path)              # to /root on the portal
    run = upgrade(cluster, on_portal, "--yes", "--json")
    show = release_show(cluster)                        # `dragonball release show --json`
    before = app_state(cluster)                         # each notes service's version, image
    kill_upgrade(cluster, on_portal)                    # kill -9 the run and its children

The .bin runs as the contract says: `<bin> --target /root upgrade ...` as root on the portal,
with no stdin (not a terminal).
"""

from __future__ import annotations

import json

from tests.e2e.apps import get
from tests.lab.docker_cli import Outcome

TARGET = "/root"
STATE_FILE = "/var/lib/dragonball/upgrade/state.json"
SERVICES = ("notes_web", "notes_api", "notes_store-1")
IMAGE_LABEL = "io.dragonball.image"


def put_bin(cluster, bin_path, name: str | None = None) -> str:
    """`bin_path` copied to /root on the portal (as `name` if given); its path there."""
    if name is None:
        return cluster.lab.copy_in(cluster.portal, str(bin_path), TARGET)
    on_portal = cluster.lab.copy_in(cluster.portal, str(bin_path), TARGET)
    renamed = f"{TARGET}/{name}"
    cluster.lab.exec(cluster.portal, ["mv", on_portal, renamed], check=True)
    return renamed


def upgrade_argv(on_portal: str, *args: str) -> list[str]:
    return [on_portal, "--target", TARGET, "upgrade", *args]


def upgrade(cluster, on_portal: str, *args: str, timeout: float = 1800) -> Outcome:
    """Run the .bin's upgrade on the portal; never raises on a non-zero status."""
    return cluster.lab.exec(cluster.portal, upgrade_argv(on_portal, *args), timeout=timeout)


def json_of(outcome: Outcome) -> dict:
    """The JSON document a --json command printed (AssertionError with its output if none)."""
    try:
        return json.loads(outcome.stdout)
    except ValueError:
        raise AssertionError(f"not a JSON document (exit {outcome.returncode}):\n"
                             f"{outcome.stdout}\n{outcome.stderr}") from None


def release_show(cluster) -> dict:
    run = cluster.dragonball("release", "show", "--json", check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return json_of(run)


def current_version(cluster) -> str:
    return release_show(cluster)["current"]["version"]


def upgrade_state(cluster) -> dict | None:
    """The upgrade's journal on the portal (None when there is none)."""
    run = cluster.lab.exec(cluster.portal, ["cat", STATE_FILE])
    return json.loads(run.stdout) if run.ok and run.stdout.strip() else None


def service_image(cluster, service: str) -> str:
    return cluster.docker(cluster.portal, "service", "inspect", "--format",
                          f'{{{{index .Spec.Labels "{IMAGE_LABEL}"}}}}', service).stdout.strip()


def app_state(cluster) -> dict:
    """{service: (its Swarm version index, its image label)}: what an upgrade changes."""
    found = {}
    for service in SERVICES:
        out = cluster.docker(cluster.portal, "service", "inspect", "--format",
                             f'{{{{.Version.Index}}}} {{{{index .Spec.Labels "{IMAGE_LABEL}"}}}}',
                             service).stdout.split()
        found[service] = tuple(out)
    return found


def running_tasks(cluster, service: str) -> list[str]:
    """The servers of `service`'s running tasks."""
    out = cluster.docker(cluster.portal, "service", "ps", service, "--filter",
                         "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}")
    return [line.split()[0] for line in out.stdout.splitlines() if " Running" in line]


def api_info(cluster) -> dict | None:
    """/api/info through the web Service on the portal (what the running api code says)."""
    status, body = get(f"http://{cluster.lab.ip(cluster.portal)}:8080/api/info")
    return body if status == 200 else None


def processes(cluster, server: str) -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process on `server`, from /proc (the bare
    server has no procps)."""
    script = ('for d in /proc/[0-9]*; do p=${d#/proc/}; '
              'pp=$(cut -d" " -f4 "$d/stat" 2>/dev/null) || continue; '
              'c=$(tr "\\000" " " <"$d/cmdline" 2>/dev/null); echo "$p $pp $c"; done')
    rows = []
    for line in cluster.lab.exec(server, ["sh", "-c", script]).stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            rows.append((int(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else ""))
    return rows


def upgrade_processes(cluster, on_portal: str) -> list[int]:
    """The pids of the running `<on_portal> ... upgrade` (the .bin's stub) and all its
    descendants (the runtime and whatever it started)."""
    rows = processes(cluster, cluster.portal)
    marker = " ".join(upgrade_argv(on_portal))
    roots = {pid for pid, _, cmd in rows if marker in cmd}
    found, grown = set(roots), True
    while grown:
        more = {pid for pid, ppid, _ in rows if ppid in found} - found
        found |= more
        grown = bool(more)
    return sorted(found)


def kill_upgrade(cluster, on_portal: str) -> list[int]:
    """kill -9 of the upgrade running from `on_portal` and every process it started, at
    once (what a power cut of the command does); the pids killed."""
    pids = upgrade_processes(cluster, on_portal)
    if pids:
        cluster.lab.exec(cluster.portal, ["sh", "-c", "kill -9 " + " ".join(map(str, pids))
                                          + " 2>/dev/null; true"])
    return pids


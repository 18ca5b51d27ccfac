"""The example app on the installed lab cluster, shared by the e2e tests that need it
applied (test_app_cluster, test_app_browser): the spec as placed on the lab, and how to
run the installed `dragonball` on the portal."""

from __future__ import annotations

import json
import tempfile
import urllib.error
import urllib.request

import yaml

from support import ROOT

SPEC = "/root/notes.app.yaml"
API_REPLICAS = 3


def lab_spec() -> dict:
    """The example spec, placed: web on the portal (its port), the store on s2."""
    spec = yaml.safe_load((ROOT / "examples" / "notes.app.yaml").read_text())
    spec["services"]["web"]["placement"] = {"servers": ["s1"]}
    spec["services"]["store"]["placement"] = {"servers": ["s2"]}
    spec["services"]["api"]["replicas"] = API_REPLICAS
    return spec


def put_spec(cluster, spec: dict, path: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        local = f"{folder}/{path.rsplit('/', 1)[-1]}"
        with open(local, "w") as f:
            yaml.safe_dump(spec, f, sort_keys=False)
        return cluster.lab.copy_in("s1", local, "/root")


def db(cluster, *args: str, check: bool = True, timeout: float = 600):
    return cluster.dragonball(*args, check=check, timeout=timeout)


def get(url: str, timeout: float = 5.0) -> tuple[int, dict | None]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the lab only
    try:
        with opener.open(url, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return 0, None


def task_containers(cluster, service: str) -> list[tuple[str, str]]:
    """(server, container id) of each running task."""
    out = cluster.docker("s1", "service", "ps", f"notes_{service}", "--filter",
                         "desired-state=running", "--format", "{{.Node}} {{.ID}}").stdout
    found = []
    for line in out.splitlines():
        node, task = line.split()
        container = cluster.docker("s1", "inspect", "--format",
                                   "{{.Status.ContainerStatus.ContainerID}}", task).stdout.strip()
        found.append((node, container))
    return found

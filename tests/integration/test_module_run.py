"""A module author's inner loop on this machine's engine (issue 15: no single-module build,
no local runner): `build.py module DIR`, then `dragonball module run DIR` until the module's
own status passes, its parameters as given; a module whose start fails says why; `module
stop` removes it. The example store (redis) and a module that cannot start."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support import ROOT, write_module

DRAGONBALL = [sys.executable, "-m", "dragonball"]


def build(folder) -> None:
    subprocess.run([sys.executable, str(ROOT / "build.py"), "module", str(folder)],
                   check=True, cwd=ROOT, timeout=900)


def dragonball(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*DRAGONBALL, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def store_image(docker_client):
    build(ROOT / "examples" / "store")
    yield "dragonball-module/store:latest"
    dragonball("module", "stop", "store")
    subprocess.run(["docker", "volume", "rm", "-f", "dragonball-run-store-storage",
                    "dragonball-run-store-log"], capture_output=True)


def test_run_waits_for_its_status_with_the_parameters_given(store_image):
    run = dragonball("module", "run", "examples/store", "--param", "maxmemory=64mb",
                     "--fresh", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    done = json.loads(run.stdout)
    assert done["ok"] and done["container"] == "dragonball-run-store"
    assert "maxmemory 64.00M" in done["info"], done["info"]
    # a second run replaces the first (the inner loop), its storage kept
    again = dragonball("module", "run", "examples/store", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "maxmemory 128.00M" in json.loads(again.stdout)["info"]   # the default again
    listed = subprocess.run(["docker", "ps", "-q", "--filter", "label=io.dragonball.run=store"],
                            capture_output=True, text=True).stdout.split()
    assert len(listed) == 1
    stop = dragonball("module", "stop", "store")
    assert stop.returncode == 0 and "stopped store" in stop.stdout
    assert dragonball("module", "stop", "store").returncode == 3   # nothing runs now


def test_a_module_that_cannot_start_says_why(docker_client, tmp_path):
    folder = tmp_path / "cannotstart"
    write_module(folder, "cannotstart", {"start/1_run.sh": "echo 'the disk is on fire'\nexit 3",
                                         "status/1_ok.sh": "exit 0"})
    for part in ("log", "module", "storage"):
        (folder / "cannotstart" / part).mkdir(exist_ok=True)
    (folder / "Dockerfile").write_text("FROM dragonballbase:bookworm\n"
                                       "ADD cannotstart /opt/dragon_ball/service/cannotstart\n")
    build(folder)
    try:
        run = dragonball("module", "run", str(folder), timeout=200)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "exited" in run.stderr and "the disk is on fire" in run.stderr, run.stderr
    finally:
        dragonball("module", "stop", "cannotstart")
        subprocess.run(["docker", "rmi", "-f", "dragonball-module/cannotstart:latest"],
                       capture_output=True)


def test_no_image_is_said_with_the_build_command(tmp_path):
    run = dragonball("module", "run", str(tmp_path / "neverbuilt"))
    assert run.returncode == 3 and "build.py module" in run.stderr, run.stderr
    assert dragonball("module", "run", "examples/store", "--param", "novalue").returncode == 2


def test_a_service_built_from_the_built_in_one_runs_with_its_log_mounted(docker_client):
    """examples/web holds no module folder of its own: it is the built-in Service (docs/
    service.md), whose folder is `service`; module run mounts log/ and storage/ there (a
    mount at .../web would make a second module folder, which the supervisor refuses)."""
    build(ROOT / "examples" / "web")
    try:
        run = dragonball("module", "run", "examples/web", "--param", "backends=[]", "--json")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "route /api/ answers 503: no backend is configured" in json.loads(run.stdout)["info"]
        mounts = subprocess.run(["docker", "inspect", "--format",
                                 "{{range .Mounts}}{{.Destination}} {{end}}", "dragonball-run-web"],
                                capture_output=True, text=True).stdout.split()
        assert "/opt/dragon_ball/service/service/log" in mounts, mounts
    finally:
        dragonball("module", "stop", "web")
        subprocess.run(["docker", "volume", "rm", "-f", "dragonball-run-web-storage",
                        "dragonball-run-web-log"], capture_output=True)

"""Fixtures for tests on the multi-node lab (tests/lab, docs/lab.md).

`make_lab(servers, internal)` brings up a lab of bare servers, labelled with
support.LABELS; a lab is taken down when its test module ends (installed_cluster's
after the last e2e test), and at the session's end anything else carrying this run's
label is removed too, even when a test failed.
The up() times are printed in pytest's summary. `release_bin` builds the real .bin
(`python build.py`, cached) into a folder of the session's own, so a build someone
else runs meanwhile cannot swap it under the tests.
"""

from __future__ import annotations

import itertools
import json
import pathlib
import subprocess
import sys
import time

import pytest

from support import LABELS, ROOT, RUN_ID, TEST_LABEL
from tests.lab import Lab, LabError
from tests.lab.docker_cli import Docker
from tests.lab.plan import BARE_IMAGE

_up_times: list[tuple[int, bool, float]] = []
# Every lab made, and those of the running module. A lab left up costs the machine: its
# servers' engines and apps keep running their health checks (four labs left up until the
# session's end took a loaded 2-core machine to a load average over 100).
_session_labs: list[Lab] = []
_module_labs: list[Lab] = []


@pytest.fixture(scope="module", autouse=True)
def _down_the_module_s_labs():
    """A module's own labs are taken down when it ends (after its fixtures' teardown)."""
    yield
    while _module_labs:
        _module_labs.pop().down()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After the last e2e test, every lab goes (installed_cluster's too): the tiers after
    this one run on a quiet machine."""
    yield
    if nextitem is None or pathlib.Path(nextitem.path).parent != pathlib.Path(__file__).parent:
        while _session_labs:
            _session_labs.pop().down()


@pytest.fixture(scope="session")
def docker_cli() -> Docker:
    docker = Docker()
    try:
        docker("info", "--format", "{{.ServerVersion}}", timeout=20)
    except LabError as e:
        pytest.fail(f"no Docker engine answers ({e.message}); run 'sudo bash scripts/setup.sh'",
                    pytrace=False)
    return docker


@pytest.fixture(scope="session")
def bare_image(docker_cli) -> str:
    """dragonball-bare:bookworm, built by `build.py bare` (cached: under a second)."""
    subprocess.run([sys.executable, str(ROOT / "build.py"), "bare"], check=True, cwd=ROOT)
    assert docker_cli.inspect("image", BARE_IMAGE), f"build.py bare made no {BARE_IMAGE}"
    return BARE_IMAGE


@pytest.fixture(scope="session")
def release_bin(docker_cli, tmp_path_factory):
    """`python build.py --dist DIR` of the default release: (path of the .bin, manifest)."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(ROOT / "build.py"), "--dist", str(dist)], check=True,
                   cwd=ROOT)
    manifest = json.loads((dist / "manifest.json").read_text())
    return dist / f"DragonBall-{manifest['version']}.bin", manifest


@pytest.fixture(scope="session")
def make_lab(docker_cli, bare_image):
    """`make_lab(servers=3, internal=False)` -> a Lab that is up; its up() time is recorded."""
    made = _session_labs
    numbers = itertools.count(1)

    def make(servers: int = 3, internal: bool = False, session: bool = False,
             **options) -> Lab:
        """`session`: the lab lives until the last e2e test (installed_cluster's); any
        other is taken down when its test module ends."""
        lab = Lab(f"dbt{RUN_ID}-{next(numbers)}", servers, internal, labels=LABELS,
                  docker=docker_cli, **options)
        made.append(lab)
        if not session:
            _module_labs.append(lab)
        started = time.monotonic()
        lab.up()
        _up_times.append((servers, internal, time.monotonic() - started))
        return lab

    yield make
    for lab in made:
        lab.down()
    _remove_labelled(docker_cli)


@pytest.fixture(scope="session")
def installed_cluster(make_lab, release_bin):
    """Three servers on an internal lab with DragonBall installed from the real .bin:
    s1 the portal, s2 and s3 devices joined at once. Shared by the agent and the app
    tests (the install is most of their time); tests that break a server run last."""
    from tests.lab.install import LabCluster

    started = time.monotonic()
    lab = make_lab(servers=3, internal=True, session=True)
    path, _ = release_bin
    cluster = LabCluster(lab, path)
    cluster.copy_bin()
    portal = cluster.install("s1", cluster.portal_answers("s1"))
    assert portal.ok, portal.output
    codes = {s: cluster.enroll() for s in ("s2", "s3")}
    runs = cluster.install_many({s: cluster.device_answers(s, codes[s]) for s in codes})
    for run in runs.values():
        assert run.ok, run.output
    cluster.times = {"lab": started, "portal": portal.seconds,
                     "devices": max(r.seconds for r in runs.values())}
    return cluster


@pytest.fixture(scope="session")
def applied(installed_cluster):
    """The example app applied on the installed cluster (`dragonball apply --json` on the
    portal): its JSON document."""
    from tests.e2e.apps import SPEC, db, lab_spec, put_spec

    put_spec(installed_cluster, lab_spec(), SPEC)
    began = time.monotonic()
    run = db(installed_cluster, "apply", SPEC, "--json", check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    print(f"\napply of the notes app on 3 servers: {time.monotonic() - began:.1f} s")
    return json.loads(run.stdout)


@pytest.fixture(scope="session")
def web_url(installed_cluster) -> str:
    return f"http://{installed_cluster.lab.ip('s1')}:8080"


def _remove_labelled(docker: Docker) -> None:
    label = f"{TEST_LABEL}={RUN_ID}"
    containers = docker.names("container", label)
    if containers:
        docker("rm", "-f", "-v", *containers)
    for network in docker.names("network", label):
        docker("network", "rm", network)
    volumes = docker.names("volume", label)
    if volumes:
        docker("volume", "rm", "-f", *volumes)


def pytest_terminal_summary(terminalreporter) -> None:
    if _up_times:
        times = ", ".join(f"{n} server{'s' * (n > 1)}{' internal' * internal}: {s:.1f} s"
                          for n, internal, s in _up_times)
        terminalreporter.write_line(f"lab up() times: {times}")

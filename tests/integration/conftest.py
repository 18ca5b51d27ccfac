"""Fixtures for tests against the real Docker engine.

Everything a test creates carries the label ``io.dragonball.test`` (support.LABELS)
and is removed at the end of the session, even when the test fails. No test here
skips when the engine is missing: the engine is part of what these tests prove.
"""

from __future__ import annotations

import subprocess
import sys

import docker
import pytest

from builder.engine import Engine
from builder.pipeline import BuildEnv
from builder.platform_images import build_agent_image
from builder.progress import Reporter
from support import BASE_IMAGE, LABELS, ROOT, RUN_ID, TEST_LABEL, build_module_image  # noqa: F401


@pytest.fixture(scope="session")
def docker_client():
    try:
        client = docker.DockerClient(base_url="unix:///var/run/docker.sock", version="1.41")
        client.ping()
    except docker.errors.DockerException as e:
        pytest.fail(f"no Docker engine answers on /var/run/docker.sock ({e}); "
                    "run 'sudo bash scripts/setup.sh' first", pytrace=False)
    yield client
    _remove_labelled(client)
    client.close()


def _remove_labelled(client) -> None:
    selector = {"label": f"{TEST_LABEL}={RUN_ID}"}
    for container in client.containers.list(all=True, filters=selector):
        container.remove(force=True, v=True)
    for network in client.networks.list(filters=selector):
        network.remove()
    for image in client.images.list(filters=selector):
        client.images.remove(image.id, force=True)


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    """dragonballbase:bookworm, built by `build.py base` (cached: seconds when unchanged)."""
    subprocess.run([sys.executable, str(ROOT / "build.py"), "base"], check=True, cwd=ROOT)
    docker_client.images.get(BASE_IMAGE)
    return BASE_IMAGE


@pytest.fixture(scope="session")
def agent_image(docker_client, base_image) -> str:
    """dragonball/agent, built by builder.platform_images (cached when unchanged)."""
    engine = Engine()
    try:
        return build_agent_image(BuildEnv(reporter=Reporter(), engine=engine))
    finally:
        engine.close()


@pytest.fixture(scope="session")
def bare_server_image(docker_client) -> str:
    """dragonball-bare:bookworm: a bare Debian 12 server (no python3, no docker)."""
    subprocess.run([sys.executable, str(ROOT / "build.py"), "bare"], check=True, cwd=ROOT)
    docker_client.images.get("dragonball-bare:bookworm")
    return "dragonball-bare:bookworm"


@pytest.fixture(scope="session")
def release_bin(docker_client):
    """`python build.py` of the default release: (path of the .bin, manifest dict)."""
    import json
    subprocess.run([sys.executable, str(ROOT / "build.py")], check=True, cwd=ROOT)
    manifest = json.loads((ROOT / "dist" / "manifest.json").read_text())
    return ROOT / "dist" / f"DragonBall-{manifest['version']}.bin", manifest

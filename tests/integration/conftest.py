"""Fixtures for tests against the real Docker engine.

Everything a test creates carries the label ``io.dragonball.test`` and is removed
at the end of the session, even when the test fails. No test here skips when the
engine is missing: the engine is part of what these tests prove.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile
import uuid

import docker
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BASE_IMAGE = "dragonballbase:bookworm"
TEST_LABEL = "io.dragonball.test"
RUN_ID = uuid.uuid4().hex[:8]
LABELS = {TEST_LABEL: RUN_ID}


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


def build_module_image(client, module_dir: pathlib.Path, dockerfile_extra: str = "") -> str:
    """Build an image holding one module folder, FROM the base image; return its tag."""
    tag = f"dragonball-test/{module_dir.name.replace('_', '-')}:{RUN_ID}"
    with tempfile.TemporaryDirectory() as ctx:
        subprocess.run(["cp", "-a", str(module_dir), ctx], check=True)
        pathlib.Path(ctx, "Dockerfile").write_text(
            f"FROM {BASE_IMAGE}\n{dockerfile_extra}\n"
            f"ADD {module_dir.name} /opt/dragon_ball/service/{module_dir.name}\n")
        client.images.build(path=ctx, tag=tag, labels=LABELS, rm=True, forcerm=True)
    return tag

"""The runtime carried by the agent's image (issue 18, docs/agent.md "The runtime"), for real:
the image built with a runtime tarball on top (builder.platform_images.with_runtime), its start
action run in a container with a host folder mounted as /opt/dragonball is: the runtime is put
in place and the previous one kept; run again, nothing changes."""

from __future__ import annotations

import io
import tarfile

import pytest

from builder.engine import Engine
from builder.pipeline import BuildEnv
from builder.platform_images import RUNTIME_IN_AGENT, with_runtime
from builder.progress import Reporter
from support import RUN_ID

ACTION = "/opt/dragon_ball/service/agent/action/start/0_runtime.sh"


def runtime_tarball(path, text: str) -> None:
    """A runtime.tar.gz as build.py makes it: its top folder dragonball/."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data, mode in (("dragonball/dragonball", f"#!/bin/sh\necho {text}\n", 0o755),
                                 ("dragonball/_internal/base_library.zip", text, 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data.encode()), mode
            tar.addfile(info, io.BytesIO(data.encode()))


@pytest.fixture(scope="module")
def carried_image(agent_image, docker_client, tmp_path_factory):
    tarball = tmp_path_factory.mktemp("rt") / "runtime.tar.gz"
    runtime_tarball(tarball, f"new runtime {RUN_ID}")
    ref = f"dragonball-test/agent-runtime:{RUN_ID}"
    engine = Engine()
    try:
        with_runtime(BuildEnv(reporter=Reporter(), engine=engine), agent_image, tarball, ref)
    finally:
        engine.close()
    yield ref
    docker_client.images.remove(ref, force=True)


def run_action(docker_client, image: str, host_dir) -> str:
    return docker_client.containers.run(
        image, [f"cd /opt/dragon_ball/service/agent && {ACTION}"], entrypoint=["sh", "-c"],
        remove=True,
        volumes={str(host_dir): {"bind": "/host/opt-dragonball", "mode": "rw"}},
        labels={"io.dragonball.test": RUN_ID}).decode()


def test_the_agent_puts_the_runtime_its_image_carries_in_place(carried_image, docker_client,
                                                               tmp_path):
    host = tmp_path / "opt-dragonball"
    (host / "runtime").mkdir(parents=True)
    (host / "runtime" / "dragonball").write_text("old runtime")
    (host / "runtime" / ".sha256").write_text("0" * 64 + "\n")
    said = run_action(docker_client, carried_image, host)
    assert "put" in said and "in place" in said, said
    assert f"new runtime {RUN_ID}" in (host / "runtime" / "dragonball").read_text()
    assert (host / "runtime" / "_internal" / "base_library.zip").is_file()
    assert (host / "runtime.previous" / "dragonball").read_text() == "old runtime"
    image_sha = docker_client.containers.run(
        carried_image, [f"{RUNTIME_IN_AGENT}/runtime.sha256"], entrypoint=["cat"],
        remove=True).decode()
    assert (host / "runtime" / ".sha256").read_text().strip() == image_sha.strip()
    again = run_action(docker_client, carried_image, host)
    assert "nothing to do" in again, again
    assert (host / "runtime.previous" / "dragonball").read_text() == "old runtime"


def test_an_agent_image_without_a_runtime_changes_nothing(agent_image, docker_client,
                                                          tmp_path):
    host = tmp_path / "opt-dragonball"
    (host / "runtime").mkdir(parents=True)
    (host / "runtime" / "dragonball").write_text("old runtime")
    assert "nothing to do" in run_action(docker_client, agent_image, host)
    assert (host / "runtime" / "dragonball").read_text() == "old runtime"
    assert not (host / "runtime.previous").exists()

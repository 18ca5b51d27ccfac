"""Helpers shared by every test tier: module folders, labels, waiting.

Everything a test creates in the engine carries `LABELS`, so the session
fixture in tests/integration/conftest.py finds and removes it.
"""

from __future__ import annotations

import pathlib
import subprocess
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
EVENTS = ("config_change", "info", "start", "status", "stop")
BASE_IMAGE = "dragonballbase:bookworm"
TEST_LABEL = "io.dragonball.test"
RUN_ID = uuid.uuid4().hex[:8]
LABELS = {TEST_LABEL: RUN_ID}


def write_module(parent: pathlib.Path, name: str, scripts: dict | None = None,
                 manifest: str | None = None) -> pathlib.Path:
    """Create a module folder: `scripts` maps "event/file" to a sh body.

    Each body gets a ``#!/bin/sh`` line and mode 0755; every event folder exists.
    """
    root = parent / name
    for event in EVENTS:
        (root / "action" / event).mkdir(parents=True, exist_ok=True)
    for rel, body in (scripts or {}).items():
        path = root / "action" / rel
        path.write_text("#!/bin/sh\n" + body.strip("\n") + "\n")
        path.chmod(0o755)
    if manifest is not None:
        (root / "module.json").write_text(manifest)
    return root


def wait_for(predicate, timeout: float, describe=None, interval: float = 0.25):
    """Poll `predicate` until it is truthy; fail with `describe()` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    detail = f"\n{describe()}" if describe else ""
    raise AssertionError(f"condition not met within {timeout:.0f} s{detail}")


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

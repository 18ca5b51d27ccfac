"""engine.tar is complete: its .debs install with no network on a minbase Debian 12.

The packages are fetched once (cached under $DRAGONBALL_CACHE) from the mirror of
this host's apt sources; the install runs in a container with no network at all.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile

import pytest
from rich.console import Console

from builder import cache, images, packages, rootfs
from builder.apt_sources import debian_mirror
from builder.progress import Reporter
from builder.recipe import load_recipe, recipe_hash
from support import LABELS, ROOT

INSTALL = r"""set -e
mkdir /engine && cd /engine && tar -xf /engine.tar
# As on a server mid-install: maintainer scripts must not start services here.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
dpkg -i ./*.deb >/dpkg.log 2>&1 || { tail -n 30 /dpkg.log; exit 1; }
dpkg --audit
dockerd --version
"""


def quiet() -> Reporter:
    return Reporter(Console(file=io.StringIO(), force_terminal=False))


@pytest.fixture(scope="module")
def minbase_image(base_image) -> str:
    """dragonballbase's root filesystem: minbase + python3, tini, procps (no engine)."""
    recipe = load_recipe(ROOT / images.BASE_DIR / "recipe.json")
    return f"{images.ROOTFS_REPOSITORY}:" \
           f"{images.rootfs_tag(recipe_hash(recipe, rootfs.debootstrap_version()))}"


@pytest.fixture(scope="module")
def bare_image(docker_client) -> str:
    subprocess.run([sys.executable, str(ROOT / "build.py"), "bare"], check=True, cwd=ROOT)
    return "dragonball-bare:bookworm"


def fetch(image: str) -> packages.PackageSet:
    return packages.fetch_engine_packages(packages.ENGINE_PACKAGES, image, cache.cache_dir(),
                                          debian_mirror("bookworm"), quiet())


def test_the_closure_does_not_depend_on_the_image_it_was_computed_in(minbase_image, bare_image):
    from_bare, from_minbase = fetch(bare_image), fetch(minbase_image)
    assert from_bare.sha256 == from_minbase.sha256
    names = {p["name"] for p in from_bare.packages}
    # iptables is on the bare image, tini on the minbase one: both are in the tar all the same.
    assert set(packages.ENGINE_PACKAGES) <= names
    with tarfile.open(from_bare.path) as tar:
        listing = json.load(tar.extractfile("packages.json"))
        assert sorted(tar.getnames()) == sorted([p["filename"] for p in listing["packages"]] +
                                                ["packages.json"])
    assert listing["packages"] == from_bare.packages


def test_engine_tar_installs_offline_on_minbase(docker_client, minbase_image, bare_image):
    engine = fetch(bare_image)
    container = docker_client.containers.run(
        minbase_image, ["sh", "-c", INSTALL], detach=True, network_mode="none", labels=LABELS,
        volumes={str(engine.path): {"bind": "/engine.tar", "mode": "ro"}})
    try:
        status = container.wait(timeout=300)["StatusCode"]
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert status == 0, output
    assert "Docker version 20.10" in output

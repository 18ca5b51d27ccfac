"""The engine section: Debian's .debs (fetched once, cached under $DRAGONBALL_CACHE, from
the mirror of this host's apt sources) made into a private tree (builder/engine_tree.py)
that needs nothing of a server's libraries: checked by scanning its ELF files, and run
with no network on a minbase Debian 12 and on Debian 11 (glibc 2.31).
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile

import pytest
from rich.console import Console

from builder import cache, elf, engine_tree, images, loader, packages, rootfs
from builder.apt_sources import debian_mirror
from builder.progress import Reporter
from builder.recipe import load_recipe, recipe_hash
from dragonball.shared import paths
from support import LABELS, ROOT

#: Unpack the section's files (files/*.gz) where the installer puts them, then ask each
#: program its version.
RUN = r"""set -e
mkdir -p /opt/dragonball/engine && cd /tmp && tar -xf /engine.tar
for f in $(cd files && find . -name '*.gz'); do
  p=/opt/dragonball/engine/${f%.gz}; mkdir -p $(dirname $p); gzip -dc files/$f >$p; chmod 755 $p
done
B=/opt/dragonball/engine/bin
$B/dockerd --version; $B/docker --version; $B/containerd --version; $B/runc --version
$B/docker-init --version; $B/containerd-shim-runc-v2 -v; $B/docker-proxy --help 2>&1 | head -1
/opt/dragonball/engine/fallback/iptables --version
echo "host iptables: $(command -v iptables || echo none)"
getconf GNU_LIBC_VERSION
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


@pytest.fixture(scope="module")
def tree(bare_image, tmp_path_factory):
    """The engine section made from the package set, and the tree it holds, unpacked."""
    section = engine_tree.build_from_packages(fetch(bare_image), cache.cache_dir() / "engine")
    folder = tmp_path_factory.mktemp("engine")
    with tarfile.open(section.path) as tar:
        for entry in section.listing["files"]:
            target = folder / entry["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(gzip.decompress(tar.extractfile(entry["member"]).read()))
            target.chmod(entry["mode"])
    return section, folder


def test_the_tree_needs_nothing_of_the_servers_libraries(tree):
    """Issue 14's target: the engine needs no host libc at all. Every dynamic ELF file names
    only libraries the tree holds; every program's interpreter is the tree's own loader
    (where install puts it); what the files need of glibc is met by the tree's own."""
    section, folder = tree
    assert engine_tree.tree_problems(folder) == set()
    lib = {p.name for p in (folder / "lib").iterdir()}
    assert {"libc.so.6", "ld-linux-x86-64.so.2"} <= lib
    programs = sorted(p.name for p in (folder / "bin").iterdir())
    assert programs == sorted(engine_tree.BINARIES)
    assert sorted(p.name for p in (folder / "fallback").iterdir()) == sorted(
        [*engine_tree.IPTABLES_COMMANDS, "xtables-nft-multi"])
    for file in loader.elf_files(folder):
        if not elf.is_dynamic(file) or file.name == "ld-linux-x86-64.so.2":
            continue
        assert set(loader.needed(file)) <= lib, file
        if file.parent.name in ("bin", "fallback"):
            interpreter = subprocess.run(["patchelf", "--print-interpreter", str(file)],
                                         capture_output=True, text=True).stdout.strip()
            assert interpreter == paths.ENGINE_LOADER, file
    # The glibc symbols the programs ask for are all in the tree's libc (the build
    # machine's, 2.36): nothing is asked of the server's.
    floor, _ = elf.tree_floor(folder / "bin")
    assert (folder / "lib/xtables/libxt_conntrack.so").is_file()
    # the kernel runs an interpreter only if it may execute it (a 0644 loader: EACCES)
    modes = {f["path"]: f["mode"] for f in section.listing["files"]}
    assert modes["lib/ld-linux-x86-64.so.2"] == 0o755 and modes["lib/libc.so.6"] == 0o644
    assert all(modes[f"bin/{name}"] == 0o755 for name in engine_tree.BINARIES)
    tree_glibc = max((v for v in elf.glibc_versions(folder / "lib" / "libc.so.6") or []),
                     key=elf.version_key, default=None)
    assert floor and elf.version_key(floor) <= elf.version_key("2.36")
    assert section.listing["format"] == 1 and section.listing["version"].startswith("20.10")
    print(f"\nengine tree: {len(section.listing['files'])} files, "
          f"{sum(f['size'] for f in section.listing['files']) / 1e6:.0f} MB unpacked, "
          f"{section.size / 1e6:.0f} MB in the .bin; programs need GLIBC_{floor}, "
          f"met by the tree's own libc ({tree_glibc or 'no version section'})")


@pytest.mark.parametrize("image", ["minbase", "dragonball-bare:bullseye"])
def test_the_tree_runs_offline_on_minbase_and_on_debian_11(docker_client, tree, minbase_image,
                                                           image):
    if image != "minbase":
        subprocess.run([sys.executable, str(ROOT / "build.py"), "bare-bullseye"], check=True,
                       cwd=ROOT)
    section, _ = tree
    container = docker_client.containers.run(
        minbase_image if image == "minbase" else image, ["sh", "-c", RUN], detach=True,
        network_mode="none", labels=LABELS, entrypoint=[],
        volumes={str(section.path): {"bind": "/engine.tar", "mode": "ro"}})
    try:
        status = container.wait(timeout=300)["StatusCode"]
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert status == 0, output
    for expected in ("Docker version 20.10", "containerd github.com", "runc version",
                     "tini version", "Usage of", "iptables v1.8.9 (nf_tables)"):
        assert expected in output, output
    assert ("glibc 2.31" if image != "minbase" else "glibc 2.36") in output, output
    if image == "minbase":   # a server with no iptables of its own: the tree's works there
        assert "host iptables: none" in output, output

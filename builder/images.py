"""Which images the builder makes, under which names, from which files (pure).

Nothing here touches the disk or the engine: the caller passes in what it
observed (file lists, folder names) and gets plans back.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

BASE_DIR = "base_images/dragonballbase"
ROOTFS_REPOSITORY = "dragonball-rootfs"
EXAMPLE_REPOSITORY = "dragonball-example"

# The supervisor library the base image carries: stdlib-only by contract
# (payload/dragonball/__init__.py says so), so it runs on Debian's python3.
_LIBRARY_FILES = ("dragonball/__init__.py", "dragonball/errors.py")
_LIBRARY_PACKAGES = ("dragonball/module/", "dragonball/supervisor/")
# A Docker repository path component (distribution's reference grammar).
_REPOSITORY_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


@dataclasses.dataclass(frozen=True)
class ContextFile:
    """One file of a build context: where it comes from, where it goes, its mode."""

    source: str  # relative to the repository root
    dest: str    # relative to the build context
    mode: int


def base_image_name(suite: str) -> str:
    """The base image's name: ``dragonballbase:<suite>``."""
    return f"dragonballbase:{suite}"


def service_image_name(suite: str) -> str:
    """The built-in Service's image (docs/service.md): ``dragonballservice:<suite>``."""
    return f"dragonballservice:{suite}"


SERVICE_DIR = "base_images/service"
SERVICE_MODULE = "service"


def rootfs_tag(recipe_key: str) -> str:
    """The tag of the imported root filesystem: the recipe hash's first 12 digits."""
    return recipe_key[:12]


def library_files(payload_paths: Iterable[str]) -> list[str]:
    """Pick, from paths relative to ``payload/``, the supervisor library's files."""
    chosen = []
    for path in payload_paths:
        if "__pycache__" in path.split("/") or not path.endswith(".py"):
            continue
        if path in _LIBRARY_FILES or path.startswith(_LIBRARY_PACKAGES):
            chosen.append(path)
    return sorted(chosen)


def base_context(payload_paths: Iterable[str]) -> list[ContextFile]:
    """Every file of the base image's build context, given the files under ``payload/``."""
    plan = [ContextFile(f"{BASE_DIR}/Dockerfile", "Dockerfile", 0o644),
            ContextFile(f"{BASE_DIR}/bin/apt-install", "bin/apt-install", 0o755),
            ContextFile(f"{BASE_DIR}/bin/run.sh", "bin/run.sh", 0o755),
            ContextFile(f"{BASE_DIR}/bin/params", "bin/params", 0o755)]
    plan += [ContextFile(f"payload/{path}", f"lib/{path}", 0o644)
             for path in library_files(payload_paths)]
    return plan


def base_build_args(rootfs: str, mirror: str, version: str) -> dict[str, str]:
    """Build arguments of the base Dockerfile."""
    return {"ROOTFS_TAG": rootfs, "DEBIAN_MIRROR": mirror, "VERSION": version}


@dataclasses.dataclass(frozen=True)
class ExampleBuild:
    """One example module image: its folder under examples/ and its tag."""

    name: str
    context: str
    tag: str


def example_problems(names: Iterable[str]) -> list[str]:
    """Example folder names that cannot become image names, each with the reason."""
    return [f"examples/{name}: {name!r} is not a valid image name (use lower-case "
            f"letters, digits, and single '.', '_' or '-' between them)"
            for name in names if not _REPOSITORY_COMPONENT.fullmatch(name)]


def example_builds(names: Iterable[str]) -> list[ExampleBuild]:
    """One build per example folder that holds a Dockerfile, in name order."""
    return [ExampleBuild(name, f"examples/{name}", f"{EXAMPLE_REPOSITORY}/{name}:latest")
            for name in sorted(names)]

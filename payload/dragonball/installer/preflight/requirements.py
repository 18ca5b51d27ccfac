"""What a server must offer: from the release manifest, the role, and documented minimums.

The numbers are explained in docs/preflight.md; change them there too.
"""

from __future__ import annotations

import dataclasses
import json
import logging

from dragonball.shared import ports as ports_mod
from dragonball.release.sections import BinError, bin_sections, open_section

log = logging.getLogger(__name__)

GiB = 1 << 30
MIN_CPUS, RECOMMENDED_CPUS = 2, 4
MIN_MEMORY, RECOMMENDED_MEMORY = 2 * GiB, 4 * GiB
#: The oldest engine we use as it is: Swarm with `mode: host` ports and dnsrr, API 1.41.
DOCKER_MIN = "20.10"
#: The first engine DragonBall cannot adopt: Docker 29 refuses API versions below 1.44
#: ("client version 1.41 is too old"), and every call here speaks 1.41 (swarm/client.py).
#: So an engine already on a server is adopted from DOCKER_MIN up to 28.x (API minimum 1.24).
DOCKER_TOO_NEW = "29"
#: (distro id, major version) we test on; others run with a warning.
TESTED_DISTROS = (("debian", "12"),)
#: Layers unpacked by the engine take ~2.5x their gzip size (measured on the release's
#: images: 173 MB unpacked for 69.5 MB of gzip); a pull also holds the gzip blob while
#: it unpacks. So the engine's file system needs 4x the compressed images (3x on the
#: portal, which loads them from the .bin with no download) ...
ENGINE_FACTOR = {"portal": 3, "device": 4}
#: ... and the portal's registry keeps one compressed copy under the data directory.
REGISTRY_FACTOR = {"portal": 1, "device": 0}
#: Each file system involved also keeps this much free: the engine's packages, logs,
#: the portal's database, module storage to start with.
DISK_MARGIN = 2 * GiB
#: Free space below `RECOMMENDED_DISK_FACTOR` x the need is a warning (storage grows).
RECOMMENDED_DISK_FACTOR = 2
#: Clock skew against the portal: a warning from here (logs and metrics disagree) ...
SKEW_WARN_S = 5
#: ... and a failure from here: the portal CA's certificates start this far in the past
#: (dragonball.pki.CLOCK_SKEW), so a server further behind sees them as not yet valid.
SKEW_FAIL_S = 300


@dataclasses.dataclass(frozen=True)
class Requirements:
    """What the checks compare facts with; `None` where no release manifest says it."""

    role: str
    ports: tuple = ()
    arch: str | None = None
    glibc: str | None = None
    kernel: str | None = None
    images_bytes: int | None = None  # the compressed layers and configs, each stored once
    engine_version: str | None = None  # the bundled docker.io
    engine_glibc: str | None = None    # what its files need (dpkg installs it on the server)
    release: str | None = None         # "notes 0.1.0"


def requirements_for(manifest: dict | None, role: str) -> Requirements:
    """Requirements of a server of `role` for the release `manifest` (None: no release)."""
    wanted = ports_mod.ports_for(role)
    if not manifest:
        return Requirements(role=role, ports=wanted)
    floor = manifest.get("floor") or {}
    packages = (manifest.get("engine") or {}).get("packages") or []
    engine = next((p["version"] for p in packages if p.get("name") == "docker.io"), None)
    return Requirements(role=role, ports=wanted, arch=floor.get("arch"),
                        glibc=floor.get("glibc"), kernel=floor.get("kernel"),
                        images_bytes=images_bytes(manifest), engine_version=engine,
                        engine_glibc=(manifest.get("engine") or {}).get("glibc_floor"),
                        release=f"{manifest.get('name')} {manifest.get('version')}")


def images_bytes(manifest: dict) -> int | None:
    """The size of the release's images as stored: the images section of the .bin.

    Not the sum of the per-image sizes: images share layers (the base image's), which
    the archive, the registry and the engine each store once; the sum counts them
    once per image (211 MB against 73 MB for the three images of the first release).
    """
    section = (manifest.get("sections") or {}).get("images")
    if section:
        return int(section["size"])
    sizes = [int(i["size"]) for i in manifest.get("images") or []]
    return sum(sizes) if sizes else None


def disk_needs(req: Requirements, same_filesystem: bool) -> dict | None:
    """Free space needed, as {"data": (factor, bytes), "docker": (factor, bytes)}.

    bytes = images x factor + DISK_MARGIN. When the data directory and the engine's
    data root share one file system, only "data" is given, with both factors added.
    """
    if req.images_bytes is None:
        return None
    registry, engine = REGISTRY_FACTOR[req.role], ENGINE_FACTOR[req.role]
    shares = {"data": registry + engine} if same_filesystem else \
        {"data": registry, "docker": engine}
    return {key: (factor, req.images_bytes * factor + DISK_MARGIN)
            for key, factor in shares.items()}


def load_manifest(environ) -> dict | None:
    """The manifest of the .bin this runtime came from; None when not run from a .bin."""
    try:
        path, sections = bin_sections(environ)
    except BinError:
        return None
    if "manifest" not in sections:
        return None
    try:
        with open(path, "rb") as f:
            # The stub checked every section's SHA-256 before it started us.
            return json.loads(open_section(f, sections["manifest"]).read())
    except (OSError, ValueError) as e:
        raise BinError(f"cannot read the release manifest from {path}: {e}",
                       "run the .bin again; if it persists, copy it again and compare "
                       "it with SHA256SUMS") from e

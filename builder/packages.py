"""The Docker engine's Debian packages, with their dependency closure, for an offline install.

    fetch_engine_packages(names, rootfs_image_tag, cache_dir, mirror, reporter)
        -> PackageSet(path, sha256, size, packages)

The closure is computed for the target, a Debian 12 **minbase** server, not for
the build host: a throw-away container of a debootstrapped ``dragonball-rootfs``
image runs apt against a copy of its dpkg status cut down to the minbase set
(`minbase_packages`: Priority required or Essential, and what they depend on),
so whatever the image has on top of minbase (python3, tini, systemd,
iptables...) is downloaded too. That makes the result the same for any of our
root filesystems, and complete on the smallest server we support.

The container writes a sources.list from the mirror passed in its environment,
runs ``apt-get update``, then ``apt-get install --download-only`` with
``/var/cache/apt/archives`` bind-mounted to ``<cache>/engine/archives``; it is
removed afterwards, and nothing reaches an image. The package list is cached as
``<cache>/engine/<key>.json``, keyed by (names, suite, image): an unchanged key
runs no container. ``engine.tar`` (``<key>-<SOURCE_DATE_EPOCH>.tar``) is a
deterministic, uncompressed tar (.debs are compressed already): the sorted
.debs and ``packages.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import re
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence

from dragonball.errors import BuildError

from builder import cache, detar, process
from builder.errors import BuildInputInvalid
from builder.progress import Reporter, Step
from builder.recipe import canonical_json

log = logging.getLogger(__name__)

#: The engine and what it runs with; iptables too, which a minbase server lacks.
ENGINE_PACKAGES = ("docker.io", "containerd", "runc", "tini", "iptables")
ROOTFS_REPOSITORY = "dragonball-rootfs"
DOCKER_CLI = "/usr/bin/docker"  # Debian's client; /usr/local/bin may hold another
PACKAGES_FORMAT = 1
PRUNE_AFTER_S = 3600
CONTAINER_LABEL = "io.dragonball.builder"

_INST = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) .*\[([a-z0-9-]+)\]\)")
_PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")

# Runs inside the throw-away container. The mirror comes in through the
# environment, so its host name is never written into the repository.
CONTAINER_SCRIPT = r"""set -eu
printf 'deb %s %s main\n' "$DEBIAN_MIRROR" "$SUITE" >/etc/apt/sources.list
rm -f /etc/apt/sources.list.d/*
apt-get -q update
set -- -q -o APT::Sandbox::User=root -o Dir::State::status=/dragonball/status \
       install --no-install-recommends -y
apt-get "$@" -s $PACKAGES >/dragonball/plan.txt
apt-get "$@" --download-only $PACKAGES
"""


@dataclasses.dataclass(frozen=True)
class PackageSet:
    """engine.tar and the packages in it (each: name, version, sha256, size, filename)."""

    path: pathlib.Path
    sha256: str
    size: int
    packages: list[dict]


@dataclasses.dataclass(frozen=True)
class PlannedPackage:
    """One package apt will download: name, version, architecture."""

    name: str
    version: str
    arch: str

    @property
    def filename(self) -> str:
        """The file name apt gives the .deb (an epoch's ``:`` is written ``%3a``)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


def fetch_engine_packages(names: Sequence[str], rootfs_image_tag: str, cache_dir: pathlib.Path,
                          mirror: str, reporter: Reporter, suite: str = "bookworm",
                          environ: Mapping[str, str] = os.environ) -> PackageSet:
    """Return engine.tar with `names` and their closure for a `suite` minbase server.

    `rootfs_image_tag` is a tag of ``dragonball-rootfs`` (the recipe-hash tag that
    `builder.pipeline.rootfs_image` returns) or a whole ``repository:tag``.
    """
    names = _checked_names(names)
    image = rootfs_image_tag if ":" in rootfs_image_tag else \
        f"{ROOTFS_REPOSITORY}:{rootfs_image_tag}"
    folder = cache_dir / "engine"
    key = cache_key(names, suite, image)
    epoch = detar.source_date_epoch(environ)
    tar = folder / f"{key}-{epoch}.tar"
    with cache.locked(folder):
        packages = _cached_list(folder, key)
        if packages is None or not (tar.is_file() or _debs_intact(folder / "archives", packages)):
            packages = _download(names, image, suite, mirror, folder, key, reporter)
            tar.unlink(missing_ok=True)  # made from an older list: write it again
        else:
            reporter.note(f"engine packages {key[:12]} are cached: no container run")
        if not tar.is_file():
            detar.write_tar(tar, tar_entries(folder / "archives", packages, names, suite), epoch)
            _prune_other_epochs(folder, key, keep=tar)
    summary = detar.TarSummary(_sha256_file(tar), tar.stat().st_size)
    reporter.note(f"engine packages: {len(packages)} .debs, "
                  f"{sum(p['size'] for p in packages) / 1e6:.1f} MB")
    return PackageSet(tar, summary.sha256, summary.size, packages)


def cache_key(names: Iterable[str], suite: str, image: str) -> str:
    """sha256 (hex) of what decides the package list (pure)."""
    key = {"names": sorted(set(names)), "suite": suite, "image": image,
           "format": PACKAGES_FORMAT}
    return hashlib.sha256(canonical_json(key).encode("utf-8")).hexdigest()


# --- dpkg status: the minbase set -------------------------------------------------------

def parse_status(text: str) -> list[dict[str, str]]:
    """The paragraphs of a dpkg status file, field names as written (pure)."""
    paragraphs, current, field = [], {}, None
    for line in text.splitlines():
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, field = {}, None
        elif line[0] in " \t" and field:
            current[field] += "\n" + line
        else:
            field, _, value = line.partition(":")
            current[field] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def minbase_packages(paragraphs: Iterable[dict[str, str]]) -> set[str]:
    """The installed packages a debootstrap minbase system has (pure).

    Seeds: Priority required, or Essential. Then what they Depend or
    Pre-Depend on, recursively (of alternatives, the first one installed).
    """
    installed = {p["Package"]: p for p in paragraphs
                 if p.get("Status", "").endswith(" installed")}
    provides = _provided_by(installed.values())
    todo = [name for name, p in installed.items()
            if p.get("Priority") == "required" or p.get("Essential") == "yes"]
    chosen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in chosen:
            continue
        chosen.add(name)
        for group in _dependency_groups(installed[name]):
            found = next((p for alt in group for p in provides.get(alt, ())), None)
            if found:
                todo.append(found)
    return chosen


def render_status(paragraphs: Iterable[dict[str, str]], keep: set[str]) -> str:
    """A dpkg status file holding only the packages in `keep` (pure)."""
    blocks = ["\n".join(f"{field}: {value}" if not value.startswith("\n") else f"{field}:{value}"
                        for field, value in p.items())
              for p in paragraphs if p.get("Package") in keep]
    return "\n\n".join(blocks) + "\n"


def _provided_by(installed: Iterable[dict[str, str]]) -> dict[str, list[str]]:
    provides: dict[str, list[str]] = {}
    for p in installed:
        provides.setdefault(p["Package"], []).insert(0, p["Package"])
        for virtual in _split_names(p.get("Provides", "")):
            provides.setdefault(virtual, []).append(p["Package"])
    return provides


def _dependency_groups(paragraph: dict[str, str]) -> list[list[str]]:
    fields = ", ".join(v for v in (paragraph.get("Pre-Depends"), paragraph.get("Depends")) if v)
    return [_split_names(group.replace("|", ",")) for group in fields.split(",") if group.strip()]


def _split_names(text: str) -> list[str]:
    # "libc6 (>= 2.36), foo:any" -> ["libc6", "foo"]
    return [re.split(r"[\s(:]", item.strip(), maxsplit=1)[0]
            for item in text.split(",") if item.strip()]


# --- apt's plan, packages.json, engine.tar --------------------------------------------

def parse_plan(text: str) -> list[PlannedPackage]:
    """The packages ``apt-get install -s`` would install, sorted by name (pure)."""
    planned = [PlannedPackage(*m.groups()) for m in map(_INST.match, text.splitlines()) if m]
    return sorted(planned, key=lambda p: p.name)


def package_record(planned: PlannedPackage, deb: pathlib.Path) -> dict:
    """The packages.json entry of one downloaded .deb."""
    return {"name": planned.name, "version": planned.version, "sha256": _sha256_file(deb),
            "size": deb.stat().st_size, "filename": planned.filename}


def render_packages_json(packages: Iterable[dict], requested: Iterable[str], suite: str) -> bytes:
    """packages.json: what engine.tar holds, sorted, the same bytes for the same packages."""
    data = {"schema": 1, "suite": suite, "requested": sorted(set(requested)),
            "packages": sorted(packages, key=lambda p: p["name"])}
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def tar_entries(archives: pathlib.Path, packages: list[dict], requested: Iterable[str],
                suite: str) -> list[detar.Entry]:
    """The entries of engine.tar: every .deb at the top, and packages.json."""
    entries: list[detar.Entry] = [(p["filename"], archives / p["filename"], 0o644)
                                  for p in packages]
    entries.append(("packages.json", render_packages_json(packages, requested, suite), 0o644))
    return entries


# --- the container run (adapter) -------------------------------------------------------

def _download(names: list[str], image: str, suite: str, mirror: str, folder: pathlib.Path,
              key: str, reporter: Reporter) -> list[dict]:
    archives = folder / "archives"
    archives.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dragonball-engine-debs-") as temp:
        work = pathlib.Path(temp)
        paragraphs = parse_status(_image_status(image))
        (work / "status").write_text(render_status(paragraphs, minbase_packages(paragraphs)))
        with reporter.step(f"download {' '.join(names)} and their closure ({suite} minbase)") \
                as step:
            try:
                process.run_streaming(
                    docker_run_command(image, names, suite, mirror, archives, work),
                    _apt_sink(step), hint=f"check that {mirror} answers from a container "
                    "(apt-get update on this host), or set DRAGONBALL_DEBIAN_MIRROR")
            except BuildError as e:
                raise unknown_packages_error(e, suite) or e
        planned = parse_plan((work / "plan.txt").read_text(encoding="utf-8"))
    packages = [package_record(p, _downloaded(archives, p)) for p in planned]
    _write_list(folder, key, names, suite, image, packages)
    return packages


_UNKNOWN = re.compile(r"Unable to locate package (\S+)")


def unknown_packages_error(error: BuildError, suite: str) -> BuildError | None:
    """A clear error when apt failed because a named package does not exist (pure)."""
    missing = sorted(set(_UNKNOWN.findall(error.message)))
    if not missing:
        return None
    return BuildError(f"Debian {suite} has no package {', '.join(missing)} "
                      "(engine.packages in the release manifest)",
                      "fix the name in the release manifest; 'apt-cache search NAME' finds it")


def docker_run_command(image: str, names: Sequence[str], suite: str, mirror: str,
                       archives: pathlib.Path, work: pathlib.Path) -> list[str]:
    """The ``docker run`` of the throw-away apt container (pure)."""
    return [DOCKER_CLI, "run", "--rm", "--name", f"dragonball-engine-debs-{uuid.uuid4().hex[:8]}",
            "--label", f"{CONTAINER_LABEL}=engine-packages",
            "-e", f"DEBIAN_MIRROR={mirror}", "-e", f"SUITE={suite}",
            "-e", f"PACKAGES={' '.join(names)}",
            "-v", f"{archives}:/var/cache/apt/archives", "-v", f"{work}:/dragonball",
            image, "sh", "-c", CONTAINER_SCRIPT]


def _image_status(image: str) -> str:
    return process.run_capture(
        [DOCKER_CLI, "run", "--rm", "--label", f"{CONTAINER_LABEL}=engine-packages",
         image, "cat", "/var/lib/dpkg/status"],
        hint=f"build the root filesystem image first (python build.py bare), "
             f"or pass an existing {ROOTFS_REPOSITORY} tag")


def _apt_sink(step: Step) -> process.LineSink:
    return lambda line: step.line(line, keep=line.startswith(("W:", "E:", "Err:")))


def _downloaded(archives: pathlib.Path, planned: PlannedPackage) -> pathlib.Path:
    path = archives / planned.filename
    if not path.is_file():
        raise BuildError(f"apt planned {planned.name} {planned.version} but {path} is missing",
                         "rerun the build; if it persists, delete that folder's .debs")
    return path


def _write_list(folder: pathlib.Path, key: str, names: list[str], suite: str, image: str,
                packages: list[dict]) -> None:
    data = {"names": names, "suite": suite, "image": image, "packages": packages}
    partial = folder / f".{key}.json.partial"
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(folder / f"{key}.json")


def _cached_list(folder: pathlib.Path, key: str) -> list[dict] | None:
    """The cached package list for `key`, or None."""
    try:
        return json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))["packages"]
    except (OSError, ValueError, KeyError):
        return None


def _debs_intact(archives: pathlib.Path, packages: list[dict]) -> bool:
    """Whether every listed .deb is still in `archives`, unchanged."""
    for p in packages:
        deb = archives / p["filename"]
        if not deb.is_file() or deb.stat().st_size != p["size"] or _sha256_file(deb) != p["sha256"]:
            log.warning("cached %s is missing or changed; downloading again", deb)
            return False
    return True


def _prune_other_epochs(folder: pathlib.Path, key: str, keep: pathlib.Path) -> None:
    # Each SOURCE_DATE_EPOCH makes another 60 MB tar of the same .debs. Old ones go, but
    # only after an hour: a build running beside this one may not have read its tar yet.
    for other in folder.glob(f"{key}-*.tar"):
        if other != keep and time.time() - other.stat().st_mtime > PRUNE_AFTER_S:
            log.debug("removing %s, made for another SOURCE_DATE_EPOCH", other)
            other.unlink(missing_ok=True)


def _checked_names(names: Sequence[str]) -> list[str]:
    bad = [n for n in names if not _PACKAGE_NAME.fullmatch(n)]
    if bad or not names:
        raise BuildInputInvalid("not Debian package names: "
                                f"{', '.join(map(repr, bad)) or '(none given)'}",
                                f"name packages like {' '.join(ENGINE_PACKAGES)}")
    return sorted(set(names))


def _sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

"""Variant releases of the default one (release.yaml), for the upgrade tests
(tests/e2e/test_release_upgrade.py) and the upgrade bench (bench/upgrade.py).

    folder = write_variant(tmp, "0.2.0")          # release.yaml, notes.app.yaml, api/ copy
    bin_path, manifest = build_bin(folder / "release.yaml", tmp / "dist-0.2.0")

Each variant is the default release with its own name and version: web and store are
examples/web and examples/store as they are (their images change name, not content), api is a
copy of examples/api changed as `VARIANTS` says, and the app spec is examples/notes.app.yaml
naming the variant's images (`<name>/<module>:<version>`) plus the variant's parameters:

- 0.2.0: api answers version 2.0.0 and a new parameter `motd` (/api/info shows it);
- 0.3.0: 0.2.0 whose api cannot start (its start action exits 1): an upgrade to it fails;
- 0.4.0: 0.2.0 with version 4.0.0 and a new file in api: 0.1.0 -> 0.4.0 skips two versions;
- `other` 0.5.0: the default release under another product's name.

Builds run under flock(1) on BUILD_LOCK (others build on this machine too); most of a build
is cached (base, platform images, runtime, layer blobs), so a variant costs its changed
module image, the image archive and the .bin's assembly.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
import subprocess
import sys

import yaml

from support import ROOT

BUILD_LOCK = "/tmp/dragonball-build.lock"
EXAMPLES = ROOT / "examples"
MOTD = "notes 0.2.0: the motd parameter is new"
FAILED_START = "api 0.3.0 cannot start: this release is broken on purpose (tests/releases.py)"


@dataclasses.dataclass(frozen=True)
class Variant:
    """How a variant differs from the default release."""

    name: str = "notes"
    api_version: str = "1.0.0"     # notes_api.py's VERSION, shown by /api/info
    motd: str | None = None        # a new api parameter (string) with this default
    broken_start: bool = False     # api's start action exits 1
    extra_file: str | None = None  # a new file's text in api's module folder


VARIANTS = {
    "0.2.0": Variant(api_version="2.0.0", motd=MOTD),
    "0.3.0": Variant(api_version="3.0.0", motd=MOTD, broken_start=True),
    "0.4.0": Variant(api_version="4.0.0", motd=MOTD, extra_file="built for 0.4.0\n"),
    "other-0.5.0": Variant(name="other"),
}


def version_of(key: str) -> str:
    return key.rsplit("-", 1)[-1]


def write_variant(parent: pathlib.Path, key: str) -> pathlib.Path:
    """The variant `key` of VARIANTS as a release folder under `parent`; its path."""
    variant, version = VARIANTS[key], version_of(key)
    folder = parent / f"release-{key}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    _write_api(folder / "api", variant)
    spec = app_spec(variant, version)
    (folder / "notes.app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    release = {"name": variant.name, "version": version, "app": "notes.app.yaml",
               "modules": [{"name": "web", "path": str(EXAMPLES / "web")},
                           {"name": "api", "path": "api"},
                           {"name": "store", "path": str(EXAMPLES / "store")}],
               "engine": yaml.safe_load((ROOT / "release.yaml").read_text())["engine"]}
    (folder / "release.yaml").write_text(yaml.safe_dump(release, sort_keys=False))
    return folder


def app_spec(variant: Variant, version: str) -> dict:
    """examples/notes.app.yaml naming the variant's images, with its new parameter."""
    spec = yaml.safe_load((EXAMPLES / "notes.app.yaml").read_text())
    for name, service in spec["services"].items():
        service["image"] = f"{variant.name}/{name}:{version}"
    if variant.motd is not None:
        spec["services"]["api"]["parameters"]["motd"] = {"type": "string",
                                                         "default": variant.motd}
    return spec


def _write_api(context: pathlib.Path, variant: Variant) -> None:
    shutil.copytree(EXAMPLES / "api", context,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    module = context / "api" / "module"
    code = module / "notes_api.py"
    text = code.read_text()
    text = _replace(text, 'VERSION = "1.0.0"', f'VERSION = "{variant.api_version}"')
    if variant.motd is not None:
        text = _replace(text, '"greeting": p["greeting"], ',
                        '"greeting": p["greeting"], "motd": p.get("motd", ""), ')
        defaults = json.loads((module / "defaults.json").read_text())
        defaults["motd"] = variant.motd
        (module / "defaults.json").write_text(json.dumps(defaults, indent=2) + "\n")
    code.write_text(text)
    if variant.extra_file is not None:
        (module / "RELEASE.txt").write_text(variant.extra_file)
    if variant.broken_start:
        start = context / "api" / "action" / "start" / "1_start_api.sh"
        start.write_text(f'#!/bin/sh\necho "{FAILED_START}" >&2\nexit 1\n')
        start.chmod(0o755)


def _replace(text: str, old: str, new: str) -> str:
    """`text` with `old` replaced once; AssertionError when examples/api no longer has it."""
    if text.count(old) != 1:
        raise AssertionError(f"examples/api/api/module/notes_api.py changed: {old!r} is not "
                             "there exactly once; update tests/releases.py")
    return text.replace(old, new)


def build_bin(release: pathlib.Path, dist: pathlib.Path,
              timeout: float = 1800) -> tuple[pathlib.Path, dict]:
    """`build.py --release RELEASE --dist DIST` under the build lock: (the .bin, manifest)."""
    subprocess.run(["flock", BUILD_LOCK, sys.executable, str(ROOT / "build.py"), "--release",
                    str(release), "--dist", str(dist)], check=True, cwd=ROOT, timeout=timeout)
    manifest = json.loads((dist / "manifest.json").read_text())
    return dist / f"DragonBall-{manifest['version']}.bin", manifest


def build_variant(parent: pathlib.Path, key: str) -> tuple[pathlib.Path, dict]:
    """Write the variant `key` under `parent` and build it into parent/dist-<key>."""
    folder = write_variant(parent, key)
    return build_bin(folder / "release.yaml", parent / f"dist-{key}")


def image_ids(manifest: dict) -> dict[str, str]:
    """{module: image ID} of a manifest's app images (`<name>/<module>:<version>`)."""
    return {i["ref"].split("/", 1)[1].split(":")[0]: i["image_id"] for i in manifest["images"]
            if i["ref"].startswith(f"{manifest['name']}/")}


def truncated_copy(bin_path: pathlib.Path, out: pathlib.Path, keep: float = 0.6) -> pathlib.Path:
    """The first `keep` of `bin_path`'s bytes at `out`: what an interrupted copy leaves."""
    size = int(bin_path.stat().st_size * keep)
    with open(bin_path, "rb") as src, open(out, "wb") as dst:
        while size > 0:
            chunk = src.read(min(size, 1 << 20))
            if not chunk:
                break
            dst.write(chunk)
            size -= len(chunk)
    out.chmod(0o755)
    return out

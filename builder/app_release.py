"""`build.py app`: an app-only release, its own name and version, for a cluster already
installed (issue 15): only its module images and its app spec, no runtime, no engine.

    dist/<name>-<version>.app      an uncompressed tar (deterministic):
        app.json                   {"format": 1, "kind": "app", "name", "version",
                                    "spec": "app.yaml", "spec_sha256", "images": [refs],
                                    "images_sha256", "images_size", "since": {...} | null,
                                    "left_out": {digest: repository}}
        app.yaml                   the app spec, checked: every image it names is the
                                   release's, every module built
        images.tar                 the image archive (docs/bin-format.md), without the
                                   blobs of `--since`
    dist/<name>-<version>.app.sha256

`--since FILE` (a DragonBall .bin, or an earlier .app, the cluster already has) leaves out
every blob that release holds, and says in `left_out` which of its repositories had each:
the cluster's registry mounts it from there (an HTTP request, no bytes), so a release that
changes one module weighs that module's new layers. A blob left out that the registry does
not have after all is refused before any upload, naming it (`dragonball release add`).

On a manager, as root: `dragonball release add FILE [--apply]` (commands/release.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import re
import tarfile
import tempfile

from builder import archive, cache as build_cache, detar, pipeline
from builder.bundle import source_date_epoch
from builder.errors import BuildInputInvalid
from builder.release import app_text, load_release, spec_problems  # noqa: F401 (was here)

APP_FORMAT = 1
_SECTIONS = re.compile(rb'DB_SECTIONS="([^"]*)"')
STUB_SIZE = 16384


@dataclasses.dataclass(frozen=True)
class AppResult:
    path: pathlib.Path
    size: int
    sha256: str
    images: list
    left_out: int


def build_app(env, release_path: pathlib.Path, dist: pathlib.Path,
              since: pathlib.Path | None = None) -> AppResult:
    """Build `dist/<name>-<version>.app` from the app-only release at `release_path`."""
    release = load_release(release_path, need_engine=False)
    spec_text = app_text(release)        # checked against the release's images
    earlier = since_blobs(since) if since else ({}, None)
    plan = pipeline.plan_build(env, with_examples=False)
    epoch = source_date_epoch(env.root, env.environ)
    pipeline.build_base(env, plan)
    for module in release.modules:
        with env.reporter.step(f"build {module.ref}") as step:
            env.engine.build(module.context, module.ref, {"DEBIAN_MIRROR": plan.mirror},
                             pipeline.build_line_sink(step))
    dist.mkdir(parents=True, exist_ok=True)
    out = dist / f"{release.name}-{release.version}.app"
    with tempfile.TemporaryDirectory(prefix=".app-", dir=dist) as work:
        images_tar = pathlib.Path(work) / "images.tar"
        refs = [m.ref for m in release.modules]
        cache = build_cache.cache_dir(env.environ)
        with env.reporter.step(f"image archive: {len(refs)} images"):
            index = archive.export_images(env.engine, [archive.ImageSource(r, r) for r in refs],
                                          archive.BlobCache(cache / "blobs"), images_tar, epoch,
                                          skip=set(earlier[0]))
        left_out = {d: r for d, r in earlier[0].items() if d in blob_digests(index)}
        app_json = {"format": APP_FORMAT, "kind": "app", "name": release.name,
                    "version": release.version, "spec": "app.yaml",
                    "spec_sha256": hashlib.sha256(spec_text.encode()).hexdigest(),
                    "images": refs, "images_sha256": _sha256_file(images_tar),
                    "images_size": images_tar.stat().st_size, "since": earlier[1],
                    "left_out": left_out}
        detar.write_tar(out, [
            ("app.json", json.dumps(app_json, indent=1, sort_keys=True).encode(), 0o644),
            ("app.yaml", spec_text.encode(), 0o644), ("images.tar", images_tar, 0o644)], epoch)
    digest = _sha256_file(out)
    out.with_name(out.name + ".sha256").write_text(f"{digest}  {out.name}\n")
    return AppResult(out, out.stat().st_size, digest, refs, len(left_out))


def blob_digests(index: dict) -> set:
    """Every blob digest an image archive's index names (manifests, configs, layers)."""
    return {d for i in index["images"] for d in
            (i["manifest"]["digest"], i["config"]["digest"], *(l["digest"] for l in i["layers"]))}


def since_blobs(path: pathlib.Path) -> tuple[dict, dict]:
    """({digest: a repository that holds it}, {"name", "version"}) of an earlier release: a
    DragonBall .bin (its images section) or an .app (its images.tar)."""
    try:
        with open(path, "rb") as f:
            head = f.read(STUB_SIZE)
            found = _SECTIONS.search(head)
            if found:
                from dragonball.release.sections import parse_sections
                section = parse_sections(found.group(1).decode())["images"]
                offset, size = section.offset, section.size
                manifest = parse_sections(found.group(1).decode())["manifest"]
                f.seek(manifest.offset)
                about = json.loads(f.read(manifest.size))
            else:
                f.seek(0)
                with tarfile.open(fileobj=f, mode="r:") as tar:
                    about = json.load(tar.extractfile("app.json"))
                    member = tar.getmember("images.tar")
                    offset, size = member.offset_data, member.size
            f.seek(offset)
            with tarfile.open(fileobj=_Window(f, offset, size), mode="r:") as tar:
                index = json.load(tar.extractfile("index.json"))
    except (OSError, KeyError, ValueError, tarfile.TarError) as e:
        raise BuildInputInvalid(f"--since {path} is not a DragonBall release (.bin or .app): "
                                f"{e}", "give the .bin or .app the cluster was installed "
                                "or last updated from") from e
    holders = {}
    for image in index["images"]:
        for digest in (image["config"]["digest"], *(l["digest"] for l in image["layers"])):
            holders.setdefault(digest, image["repository"])
    return holders, {"name": about.get("name"), "version": about.get("version")}


class _Window:
    """A read-only view of `size` bytes at `offset` of an open file (for tarfile)."""

    def __init__(self, f, offset: int, size: int) -> None:
        self.f, self.offset, self.size, self.pos = f, offset, size, 0

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n < 0 else min(n, self.size - self.pos)
        self.f.seek(self.offset + self.pos)
        data = self.f.read(n)
        self.pos += len(data)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = {0: pos, 1: self.pos + pos, 2: self.size + pos}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos


def _sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

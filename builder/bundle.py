"""`python build.py` (target `bin`): one DragonBall-<version>.bin and its release artifacts.

Order: read and check release.yaml and every input (nothing long yet), then
images, runtime, engine packages, the image archive, the manifest, the file.
Every long step is cached, so a rebuild with nothing changed is quick.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import tempfile

from builder import archive, binfile, cache as build_cache, manifest as manifest_mod, packages, pipeline, runtime
from builder.release import load_release

STUB = "scripts/stub.sh"


@dataclasses.dataclass(frozen=True)
class BinResult:
    path: pathlib.Path
    manifest: dict
    sha256: str


def source_date_epoch(root: pathlib.Path, environ) -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time, else 0: never the clock."""
    if environ.get("SOURCE_DATE_EPOCH"):
        return int(environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%ct"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return int(out)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def git_state(root: pathlib.Path) -> dict:
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True).stdout.strip()
    commit = git("rev-parse", "HEAD")
    return {"commit": commit or None, "dirty": bool(git("status", "--porcelain")) if commit
            else None}


def build_bin(env: pipeline.BuildEnv, release_path: pathlib.Path, dist: pathlib.Path) -> BinResult:
    """Build the .bin of the release at `release_path` into `dist`."""
    release = load_release(release_path)
    plan = pipeline.plan_build(env, with_examples=False)
    epoch = source_date_epoch(env.root, env.environ)
    environ = {**env.environ, "SOURCE_DATE_EPOCH": str(epoch)}  # one epoch for every part
    cache = build_cache.cache_dir(env.environ)
    pipeline.build_base(env, plan)
    for module in release.modules:
        with env.reporter.step(f"build {module.ref}") as step:
            env.engine.build(module.context, module.ref, {"DEBIAN_MIRROR": plan.mirror},
                             pipeline.build_line_sink(step))
    rt = runtime.build_runtime(cache, env.reporter, environ=environ)
    engine_set = packages.fetch_engine_packages(
        list(release.engine_packages), pipeline.rootfs_image(env, plan.recipe, plan.mirror),
        cache, plan.mirror, env.reporter, suite=release.engine_suite, environ=environ)
    dist.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".work-", dir=dist) as work:
        work = pathlib.Path(work)
        images_tar = work / "images.tar"
        with env.reporter.step(f"image archive: {len(release.modules)} images") as step:
            index = archive.export_images(
                env.engine, [archive.ImageSource(m.ref, m.ref) for m in release.modules],
                archive.BlobCache(cache / "blobs"), images_tar, epoch,
                lambda name, size, blob: step.line(
                    f"layer {name.split('/')[0][:12]}: {size / 1e6:.0f} MB, "
                    f"{blob.size / 1e6:.0f} MB gzip", keep=size > 1e6))
        files = {"runtime": pathlib.Path(rt.path), "engine": pathlib.Path(engine_set.path),
                 "images": images_tar}
        digests = {name: binfile.sha256_file(path) for name, path in files.items()}
        manifest = manifest_mod.make_manifest(
            release, epoch, git_state(env.root), _runtime_info(rt), _engine_info(engine_set,
                                                                                  release),
            index["images"], {n: {"size": files[n].stat().st_size, "sha256": digests[n]}
                              for n in files})
        files["manifest"] = work / "manifest.json"
        files["manifest"].write_bytes(manifest_mod.manifest_bytes(manifest))
        digests["manifest"] = binfile.sha256_file(files["manifest"])
        sections = binfile.layout({n: p.stat().st_size for n, p in files.items()}, digests)
        stub = binfile.render_stub((env.root / STUB).read_text(), release.version, sections,
                                   manifest_mod.list_lines(manifest))
        out = dist / f"DragonBall-{release.version}.bin"
        with env.reporter.step(f"write {out}"):
            binfile.assemble(out, stub, files)
            (dist / "manifest.json").write_bytes(files["manifest"].read_bytes())
    digest = binfile.sha256_file(out)
    (dist / "SHA256SUMS").write_text(manifest_mod.sha256sums(
        {out.name: digest, "manifest.json": digests["manifest"]}))
    return BinResult(out, manifest, digest)


def _runtime_info(rt) -> dict:
    return {"python": rt.python_version, "pyinstaller": rt.pyinstaller_version,
            "glibc_floor": rt.glibc_floor, "size": rt.size, "sha256": rt.sha256}


def _engine_info(engine_set, release) -> dict:
    return {"suite": release.engine_suite, "requested": list(release.engine_packages),
            "packages": [{k: p[k] for k in ("name", "version", "size", "sha256")}
                         for p in engine_set.packages]}

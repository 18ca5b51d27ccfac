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

import dragonball
from builder import (archive, binfile, cache as build_cache, engine_tree,
                     manifest as manifest_mod, packages, pipeline, platform_images, runtime)
from builder.errors import BuildInputInvalid
from builder.release import app_text, load_release
from dragonball.release import signing

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


def build_bin(env: pipeline.BuildEnv, release_path: pathlib.Path, dist: pathlib.Path,
              sign_key: pathlib.Path | None = None) -> BinResult:
    """Build the .bin of the release at `release_path` into `dist`, signed with `sign_key`."""
    release = load_release(release_path)
    app = app_text(release)    # the app spec it carries, checked before anything is built
    signer = signing_key(sign_key) if sign_key else None
    plan = pipeline.plan_build(env, with_examples=False)
    epoch = source_date_epoch(env.root, env.environ)
    environ = {**env.environ, "SOURCE_DATE_EPOCH": str(epoch)}  # one epoch for every part
    cache = build_cache.cache_dir(env.environ)
    # engine packages first (seconds): a package missing from the mirror fails the build
    # before the long image builds, not after them
    engine_set = packages.fetch_engine_packages(
        list(release.engine_packages), pipeline.rootfs_image(env, plan.recipe, plan.mirror),
        cache, plan.mirror, env.reporter, suite=release.engine_suite, environ=environ)
    with env.reporter.step("engine tree: the engine's programs with their own libraries"):
        tree = engine_tree.build_from_packages(engine_set, cache / "engine", epoch)
    pipeline.build_base(env, plan)
    rt = runtime.build_runtime(cache, env.reporter, environ=environ)
    platform = [platform_images.build_registry_image(env, plan.mirror)]
    # docs/agent.md: the agent carries the runtime to every server
    platform.append(platform_images.build_agent_image(env, plan.mirror, pathlib.Path(rt.path)))
    platform.append(platform_images.build_keepalived_image(env, plan.mirror))  # app-address
    platform.append(platform_images.build_etcd_image(env, plan.mirror))  # docs/portal-ha.md
    for module in release.modules:
        with env.reporter.step(f"build {module.ref}") as step:
            env.engine.build(module.context, module.ref, {"DEBIAN_MIRROR": plan.mirror},
                             pipeline.build_line_sink(step))
    dist.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".work-", dir=dist) as work:
        work = pathlib.Path(work)
        images_tar = work / "images.tar"
        refs = platform + [m.ref for m in release.modules]
        with env.reporter.step(f"image archive: {len(refs)} images") as step:
            index = archive.export_images(
                env.engine, [archive.ImageSource(ref, ref) for ref in refs],
                archive.BlobCache(cache / "blobs"), images_tar, epoch,
                lambda name, size, blob: step.line(
                    f"layer {name.split('/')[0][:12]}: {size / 1e6:.0f} MB, "
                    f"{blob.size / 1e6:.0f} MB gzip", keep=size > 1e6))
        files = {"runtime": pathlib.Path(rt.path), "engine": tree.path,
                 "images": images_tar}
        digests = {name: binfile.sha256_file(path) for name, path in files.items()}
        manifest = manifest_mod.make_manifest(
            release, epoch, git_state(env.root), _runtime_info(rt), _engine_info(engine_set, tree,
                                                                                  release),
            index["images"], {n: {"size": files[n].stat().st_size, "sha256": digests[n]}
                              for n in files}, manifest_mod.app_entry(release.app, app))
        files["manifest"] = work / "manifest.json"
        files["manifest"].write_bytes(manifest_mod.manifest_bytes(manifest))
        digests["manifest"] = binfile.sha256_file(files["manifest"])
        if signer:
            files["signature"] = work / "manifest.json.sig"
            files["signature"].write_bytes(signer.sign(files["manifest"].read_bytes()))
            digests["signature"] = binfile.sha256_file(files["signature"])
        sections = binfile.layout({n: p.stat().st_size for n, p in files.items()}, digests)
        stub = binfile.render_stub((env.root / STUB).read_text(), release.version, sections,
                                   manifest_mod.list_lines(manifest), rt.glibc_floor)
        out = dist / f"DragonBall-{release.version}.bin"
        with env.reporter.step(f"write {out}"):
            binfile.assemble(out, stub, files)
            (dist / "manifest.json").write_bytes(files["manifest"].read_bytes())
    digest = binfile.sha256_file(out)
    sums = manifest_mod.sha256sums({out.name: digest, "manifest.json": digests["manifest"]})
    (dist / "SHA256SUMS").write_text(sums)
    signature = dist / "SHA256SUMS.sig"
    if signer:
        signature.write_bytes(signer.sign(sums.encode()))
        env.reporter.note(f"signed by {signing.fingerprint(signer.public_key())}; operators "
                          "check it with: " + signing.openssl_verify_command(
                              "release.pub", "SHA256SUMS", "SHA256SUMS.sig"))
    elif signature.exists():
        signature.unlink()  # a stale signature of another build would mislead
    return BinResult(out, manifest, digest)


def signing_key(path: pathlib.Path):
    """The Ed25519 private key at `path`; it must be readable by its owner only."""
    try:
        mode = path.stat().st_mode & 0o077
        pem = path.read_bytes()
    except OSError as e:
        raise BuildInputInvalid(f"cannot read the signing key {path}: {e.strerror}",
                                "make one with: python build.py keygen") from e
    if mode:
        raise BuildInputInvalid(f"the signing key {path} is readable by others "
                                f"(mode {oct(mode)})", f"chmod 600 {path}")
    return signing.load_private(pem, str(path))


def write_key_pair(folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A new Ed25519 key pair in `folder`: release-signing.key (0600) and .pub."""
    private, public = signing.new_key_pair()
    folder.mkdir(parents=True, exist_ok=True)
    key, pub = folder / "release-signing.key", folder / "release-signing.pub"
    if key.exists():
        raise BuildInputInvalid(f"{key} exists already",
                                "move it away first: it may sign releases")
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    pub.write_bytes(public)
    return key, pub


def _runtime_info(rt) -> dict:
    """The runtime in the manifest; `version` is DragonBall's own (an upgrade compares it)."""
    return {"version": dragonball.__version__, "python": rt.python_version,
            "pyinstaller": rt.pyinstaller_version, "glibc_floor": rt.glibc_floor,
            "size": rt.size, "sha256": rt.sha256}


def _engine_info(engine_set, tree, release) -> dict:
    """The engine in the manifest: a private tree (builder/engine_tree.py) made from these
    Debian packages; it needs no glibc from the server ("none")."""
    return {"suite": release.engine_suite, "requested": list(release.engine_packages),
            "format": "tree", "glibc_floor": "none", "files": len(tree.listing["files"]),
            "packages": [{k: p[k] for k in ("name", "version", "size", "sha256")}
                         for p in engine_set.packages]}

#!/usr/bin/env python3
"""Side by side on this machine, in one run: the .bin's way with images against Docker's.

    .venv/bin/python bench/bin_images.py [--skip-build] [--workers N]

(a) size: the .bin's images section against `docker save IMAGES | gzip` of the same images
(b) time from an archive to the images in a fresh registry: `dragonball images push` (the
    .bin's images section, read in place) against `docker load` + `docker tag` +
    `docker push` (of a `docker save` tar made beforehand, not timed) into a fresh engine.
    Both registries are dragonball/registry, TLS from a throw-away CA, htpasswd, loopback.
(c) a cold `python build.py` (empty DRAGONBALL_CACHE for runtime, engine packages and
    layer blobs; the debootstrap root filesystem and the engine's build cache are reused)
    against a cached rebuild.

Builds dist/ first when it is missing. Only loopback is used; everything started here
(registries, a second dockerd on its own socket and data root, certs.d entries) is removed
at the end. Prints a table and the ratios; asserts nothing about wall times.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from builder.cache import cache_dir  # noqa: E402
from builder.engine import Engine  # noqa: E402
from builder.pipeline import BuildEnv  # noqa: E402
from builder.platform_images import build_registry_image, registry_ref  # noqa: E402
from builder.progress import Reporter  # noqa: E402
from dragonball import pki  # noqa: E402
from dragonball.registry import RegistryClient, RegistryError  # noqa: E402

DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
PYTHON = sys.executable
LABEL = "io.dragonball.bench"
RUN = uuid.uuid4().hex[:8]
USER = "dragonball"
console = Console(highlight=False, width=110)


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(map(str, argv))} failed ({done.returncode}):\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done


def timed(work) -> tuple:
    started = time.monotonic()
    value = work()
    return time.monotonic() - started, value


# -- the release in dist/ ---------------------------------------------------------------------

def release(dist: pathlib.Path) -> tuple:
    """(the .bin, its manifest, its DB_SECTIONS text); builds dist/ when missing."""
    if not (dist / "manifest.json").is_file():
        console.print("dist/ is missing: python build.py")
        subprocess.run([PYTHON, "build.py"], cwd=ROOT, check=True)
    manifest = json.loads((dist / "manifest.json").read_text())
    path = dist / f"DragonBall-{manifest['version']}.bin"
    with open(path, "rb") as f:
        stub = f.read(16384).decode(errors="replace")
    sections = re.search(r'^DB_SECTIONS="([^"]*)"', stub, re.M).group(1)
    return path, manifest, sections


def section_size(sections: str, name: str) -> int:
    return next(int(e.split(":")[2]) for e in sections.split() if e.startswith(name + ":"))


def docker_save_gzip_size(refs: list) -> tuple:
    """(seconds, bytes) of `docker save REFS | gzip` (gzip -6, the default), counted in a pipe."""
    def work():
        save = subprocess.Popen([DOCKER, "save", *refs], stdout=subprocess.PIPE)
        gzip = subprocess.Popen(["gzip", "-c"], stdin=save.stdout, stdout=subprocess.PIPE)
        save.stdout.close()
        size = 0
        while chunk := gzip.stdout.read(1 << 20):
            size += len(chunk)
        if gzip.wait() or save.wait():
            raise SystemExit("bench: docker save | gzip failed")
        return size
    return timed(work)


# -- registries ---------------------------------------------------------------------------------

def make_secrets(folder: pathlib.Path) -> str:
    ca = pki.create_ca("DragonBall bench CA")
    pair = pki.issue_server_cert(ca, "registry", ips=["127.0.0.1"], dns_names=["localhost"])
    pki.write_pem_files(pair, folder / "tls" / "server.crt", folder / "tls" / "server.key")
    pki.write_private(folder / "tls" / "ca.crt", ca.cert_pem, 0o644)
    password = pki.new_secret()
    for name in ("htpasswd", "push.htpasswd"):  # this account reads and writes
        pki.write_private(folder / "tls" / name, (pki.htpasswd_line(USER, password) + "\n").encode())
    pki.write_private(folder / "password", password.encode())
    return password


@contextlib.contextmanager
def registry(name: str, image: str, secrets: pathlib.Path, password: str):
    """A fresh registry container on 127.0.0.1; yields HOST:PORT once /v2/ accepts us."""
    cid = f"dbbench-{name}-{RUN}"
    try:  # the name, not the ID: a failed `docker run` may leave a created container behind
        run([DOCKER, "run", "-d", "--name", cid, "--label", f"{LABEL}={RUN}",
             "-v", f"{secrets / 'tls'}:/etc/dragonball/registry:ro", "-p", "127.0.0.1::5000", image])
        port = run([DOCKER, "port", cid, "5000/tcp"]).stdout.split(":")[-1].strip()
        host = f"127.0.0.1:{port}"
        with RegistryClient(host, secrets / "tls" / "ca.crt", USER, password) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.ping()
                    break
                except RegistryError:  # starting: poll until it answers
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
        yield host
    finally:
        subprocess.run([DOCKER, "rm", "-f", "-v", cid], capture_output=True)


@contextlib.contextmanager
def own_bridge():
    """A bridge of its own for the second dockerd, on TEST-NET-1 (never routed).

    Not `--bridge=none`: with it, dockerd deletes the interface named docker0 at start,
    which is the host engine's bridge (seen here: every later `docker run` failed).
    """
    name = f"dbb{RUN[:8]}"
    run(["ip", "link", "add", name, "type", "bridge"])
    try:
        run(["ip", "addr", "add", "192.0.2.1/24", "dev", name])
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


@contextlib.contextmanager
def fresh_engine(work: pathlib.Path):
    """A second dockerd with an empty data root, on its own socket and bridge, no iptables."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="dbbench-engine-", dir="/var/tmp"))
    sock = root / "docker.sock"
    with own_bridge() as bridge, open(work / "dockerd.log", "wb") as log:
        proc = subprocess.Popen([DOCKERD, "--data-root", str(root / "data"), "--exec-root",
                                 str(root / "exec"), "--pidfile", str(root / "dockerd.pid"),
                                 "-H", f"unix://{sock}", f"--bridge={bridge}", "--iptables=false",
                                 "--ip-masq=false", "--ip-forward=false"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_engine(proc, f"unix://{sock}", work)
            yield f"unix://{sock}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            shutil.rmtree(root, ignore_errors=True)


def wait_for_engine(proc: subprocess.Popen, url: str, work: pathlib.Path) -> None:
    deadline = time.monotonic() + 60
    while subprocess.run([DOCKER, "-H", url, "info"], capture_output=True).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench: the second dockerd did not start; see {work}/dockerd.log")
        time.sleep(0.3)


@contextlib.contextmanager
def engine_trusts(host: str, ca: pathlib.Path):
    certs = pathlib.Path("/etc/docker/certs.d") / host
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca, certs / "ca.crt")
    try:
        yield
    finally:
        shutil.rmtree(certs, ignore_errors=True)


def dragonball_push(bin_path: pathlib.Path, sections: str, host: str, secrets: pathlib.Path,
                    workers: int) -> float:
    """`dragonball images push` reading the images section of the .bin, as the stub runs it."""
    env = {**os.environ, "DRAGONBALL_BIN": str(bin_path), "DRAGONBALL_BIN_SECTIONS": sections,
           "DRAGONBALL_BIN_VERIFIED": "1"}
    seconds, _ = timed(lambda: run([PYTHON, "-m", "dragonball", "images", "push", "--registry",
                                    host, "--ca", str(secrets / "tls" / "ca.crt"), "--username",
                                    USER, "--password-file", str(secrets / "password"),
                                    "--workers", str(workers)], env=env, cwd=ROOT))
    return seconds


def docker_push_path(tar: pathlib.Path, refs: list, host: str, secrets: pathlib.Path,
                     work: pathlib.Path) -> dict:
    """docker load + tag + push into a fresh engine; seconds of each part."""
    config = work / "docker-config"
    config.mkdir(exist_ok=True)
    with fresh_engine(work) as engine, engine_trusts(host, secrets / "tls" / "ca.crt"):
        docker = [DOCKER, "--config", str(config), "-H", engine]
        run([*docker, "login", host, "--username", USER, "--password-stdin"],
            input=(secrets / "password").read_text())
        load, _ = timed(lambda: run([*docker, "load", "-i", str(tar)]))
        tag, _ = timed(lambda: [run([*docker, "tag", r, f"{host}/{r}"]) for r in refs])
        push, _ = timed(lambda: [run([*docker, "push", f"{host}/{r}"]) for r in refs])
    return {"load": load, "tag": tag, "push": push}


def check_registry(host: str, secrets: pathlib.Path, password: str, images: list) -> None:
    with RegistryClient(host, secrets / "tls" / "ca.crt", USER, password) as client:
        for image in images:
            repository, _, tag = image["ref"].rpartition(":")
            if client.tag_digest(repository, tag) is None:
                raise SystemExit(f"bench: {image['ref']} is not in the registry at {host}")


# -- builds ------------------------------------------------------------------------------------

def cold_and_cached_build(work: pathlib.Path) -> dict:
    cache = work / "cache"
    cache.mkdir()
    (cache / "rootfs").symlink_to(cache_dir(os.environ) / "rootfs")
    env = {**os.environ, "DRAGONBALL_CACHE": str(cache)}
    result = {}
    for name in ("cold", "cached"):
        dist = work / f"dist-{name}"
        seconds, _ = timed(lambda: run([PYTHON, "build.py", "--dist", str(dist)], env=env, cwd=ROOT))
        result[name] = seconds
        result[f"{name}_sha256"] = hashlib.sha256(next(dist.glob("*.bin")).read_bytes()).hexdigest()
    return result


# -- the report ---------------------------------------------------------------------------------

def report(sizes: dict, push: dict, build: dict | None, images: list) -> None:
    console.print(f"{len(images)} image(s): " + ", ".join(i["ref"] for i in images))
    table = Table(title="DragonBall .bin vs Docker", title_justify="left")
    for column in ("measure", "DragonBall", "Docker", "ratio"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    table.add_row("(a) images, compressed", mb(sizes["section"]), mb(sizes["save_gzip"]),
                  f"{sizes['save_gzip'] / sizes['section']:.2f}× smaller")
    docker_total = push["docker"]["load"] + push["docker"]["tag"] + push["docker"]["push"]
    table.add_row("(b) archive -> registry", f"{push['dragonball']:.1f} s",
                  f"{docker_total:.1f} s", f"{docker_total / push['dragonball']:.1f}× faster")
    if build:
        table.add_row("(c) build: cold vs cached", f"{build['cold']:.1f} s cold",
                      f"{build['cached']:.1f} s cached", f"{build['cold'] / build['cached']:.1f}×")
    console.print(table)
    d = push["docker"]
    console.print(f"(a) docker save alone: {mb(sizes['save_raw'])}; the whole .bin (runtime and "
                  f"engine packages too): {mb(sizes['bin'])}; docker save | gzip took "
                  f"{sizes['save_gzip_s']:.1f} s (the .bin's layers are gzip -9, made at build time)")
    console.print(f"(b) docker: load {d['load']:.1f} s + tag {d['tag']:.1f} s + push {d['push']:.1f} s, "
                  "into a fresh dockerd; dragonball: `images push` from the .bin's images section, "
                  "read in place (the stub's SHA-256 check of the .bin is not counted)")
    if build:
        same = build["cold_sha256"] == build["cached_sha256"]
        console.print("(c) cold = empty DRAGONBALL_CACHE (runtime freeze, engine packages, layer "
                      "compression); reused: the debootstrap root filesystem from the normal cache "
                      "and the engine's Docker build cache. The two .bin files are "
                      + ("byte-identical" if same else "DIFFERENT"))


def mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-build", action="store_true", help="skip (c), the two builds")
    parser.add_argument("--workers", type=int, default=4, help="parallel uploads for (b)")
    args = parser.parse_args(argv)
    bin_path, manifest, sections = release(ROOT / "dist")
    refs = [i["ref"] for i in manifest["images"]]
    with tempfile.TemporaryDirectory(prefix="dbbench-", dir="/var/tmp") as work:
        work = pathlib.Path(work)
        console.print(f"(a) docker save {' '.join(refs)} | gzip")
        seconds, gz = docker_save_gzip_size(refs)
        tar = work / "images.tar"
        console.print(f"(b) docker save to {tar} (not timed)")
        run([DOCKER, "save", "-o", str(tar), *refs])
        sizes = {"section": section_size(sections, "images"), "save_gzip": gz,
                 "save_gzip_s": seconds, "bin": bin_path.stat().st_size,
                 "save_raw": tar.stat().st_size}
        push = bench_push(bin_path, sections, manifest["images"], tar, refs, work, args.workers)
        build = None
        if not args.skip_build:
            console.print("(c) python build.py, cold then cached (a few minutes)")
            build = cold_and_cached_build(work)
    report(sizes, push, build, manifest["images"])
    return 0


def bench_push(bin_path, sections, images, tar, refs, work: pathlib.Path, workers: int) -> dict:
    engine = Engine()
    try:
        image = build_registry_image(BuildEnv(reporter=Reporter(), engine=engine))
    finally:
        engine.close()
    secrets = work / "secrets"
    password = make_secrets(secrets)
    with registry("ours", image, secrets, password) as ours, \
            registry("docker", image, secrets, password) as theirs:
        console.print(f"(b) dragonball images push -> {ours}")
        ours_s = dragonball_push(bin_path, sections, ours, secrets, workers)
        console.print(f"(b) docker load + tag + push -> {theirs}")
        docker = docker_push_path(tar, refs, theirs, secrets, work)
        check_registry(ours, secrets, password, images)
        check_registry(theirs, secrets, password, images)
    return {"dragonball": ours_s, "docker": docker}


if __name__ == "__main__":
    sys.exit(main())

"""The real DragonBall.bin of the default release: on a bare server, damaged, rebuilt."""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile

import pytest

from builder import archive as archive_mod
from builder import binfile
from dragonball.release.archive import ImageArchive
from dragonball.release.sections import SectionFile, parse_sections
from support import LABELS, ROOT


@pytest.fixture(scope="module")
def server(docker_client, bare_server_image, release_bin):
    """A bare server container (noexec /tmp, like Docker's default tmpfs) holding the .bin."""
    path, _ = release_bin
    container = docker_client.containers.run(
        bare_server_image, ["sleep", "infinity"], entrypoint=[], detach=True, labels=LABELS,
        tmpfs={"/tmp": "noexec"}, volumes={str(path.parent): {"bind": "/dist", "mode": "ro"}})
    container.exec_run(["cp", f"/dist/{path.name}", "/root/release.bin"])
    yield container
    container.remove(force=True)


def sh(container, script: str) -> tuple[int, str]:
    code, out = container.exec_run(["sh", "-c", script], demux=False)
    return code, out.decode(errors="replace")


def test_the_server_is_bare(server):
    code, _ = sh(server, "command -v python3 || command -v docker")
    assert code != 0


def test_verify_info_list_on_a_server_without_python(server, release_bin):
    _, manifest = release_bin
    code, out = sh(server, "sh /root/release.bin --verify")
    assert code == 0 and "is intact" in out
    code, out = sh(server, "/root/release.bin --info")
    assert code == 0 and json.loads(out) == manifest
    code, out = sh(server, "/root/release.bin --list")
    assert code == 0
    for image in manifest["images"]:
        assert f"image {image['ref']}" in out
    assert "package docker.io" in out


def test_extract_unpacks_every_section(server, release_bin):
    _, manifest = release_bin
    code, out = sh(server, "/root/release.bin --extract /root/x && ls /root/x /root/x/engine")
    assert code == 0, out
    code, listing = sh(server, "cat /root/x/engine/engine.json")
    tree = {f["path"] for f in json.loads(listing)["files"]}   # the engine's private tree
    assert {"bin/dockerd", "bin/containerd", "bin/runc", "lib/ld-linux-x86-64.so.2"} <= tree
    code, out = sh(server, "sha256sum /root/x/images.tar")
    assert out.split()[0] == manifest["sections"]["images"]["sha256"]
    sh(server, "rm -rf /root/x")


def test_noexec_tmp_is_refused_with_the_fix_then_target_works(server, docker_client, tmp_path):
    code, out = sh(server, "/root/release.bin module check /nowhere")
    assert code == 82 and "--target" in out and "noexec" in out  # the stub's E_SPACE
    code, out = sh(server, "ls -A /tmp")
    assert out.strip() == "", "the refused run must leave nothing behind"
    code, out = sh(server, "/root/release.bin --target /root module check /nowhere")
    assert code == 2 and "is not a folder" in out  # the frozen runtime answered
    code, out = sh(server, "ls -d /root/dragonball.* 2>/dev/null")
    assert out.strip() == "", "the runtime folder must be removed afterwards"


@pytest.mark.parametrize("how", ["truncate", "append", "concatenate", "manifest", "runtime",
                                 "engine", "images"])
def test_a_damaged_bin_changes_nothing(release_bin, tmp_path, how):
    path, _ = release_bin
    sections = parse_sections(_stub_sections(path))
    damaged = tmp_path / "damaged.bin"
    shutil.copyfile(path, damaged)
    _damage(damaged, how, sections)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(scratch)}
    for args in (["--extract", str(scratch / "out")], ["--target", str(scratch), "install"]):
        result = subprocess.run(["sh", str(damaged), *args], capture_output=True, text=True,
                                env=env, timeout=300)
        assert result.returncode == 81, (how, args, result.stderr)  # the stub's E_CORRUPT
        assert "SHA256SUMS" in result.stderr
    assert list(scratch.iterdir()) == []


def _stub_sections(path: pathlib.Path) -> str:
    head = path.read_bytes()[:binfile.STUB_SIZE].decode(errors="replace")
    line = next(l for l in head.splitlines() if l.startswith("DB_SECTIONS="))
    return line.split("=", 1)[1].strip('"')


def _damage(path: pathlib.Path, how: str, sections: dict) -> None:
    with open(path, "r+b") as f:
        if how == "truncate":
            f.truncate(path.stat().st_size - 4096)
        elif how == "append":
            f.seek(0, 2)
            f.write(b"\0garbage")
        elif how == "concatenate":
            f.seek(0, 2)
            f.write(path.read_bytes()[:binfile.STUB_SIZE * 2])
        else:
            section = sections[how]
            f.seek(section.offset + section.size // 2)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0x01]))


def test_rebuilding_gives_a_byte_identical_bin(release_bin):
    path, manifest = release_bin
    first = hashlib.sha256(path.read_bytes()).hexdigest()
    subprocess.run([sys.executable, str(ROOT / "build.py")], check=True, cwd=ROOT)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == first
    sums = (path.parent / "SHA256SUMS").read_text()
    assert f"{first}  {path.name}" in sums


def test_the_archive_holds_each_shared_layer_once_and_reads_in_place(release_bin):
    path, manifest = release_bin
    sections = parse_sections(_stub_sections(path))
    with open(path, "rb") as f:
        view = SectionFile(f, sections["images"].offset, sections["images"].size)
        archive = ImageArchive(view)
        refs = sorted(i.ref for i in archive.images)
        assert refs == sorted(i["ref"] for i in manifest["images"])
        layers = [l["digest"] for i in archive.images for l in i.layers]
        assert len(set(layers)) < len(layers), "the example images share their base layers"
        stored = archive.digests()
        assert {d.split(":")[1] for d in layers} <= stored
        for image in archive.images:
            data = archive.blob_bytes(image.manifest["digest"])
            assert "sha256:" + hashlib.sha256(data).hexdigest() == image.manifest["digest"]
            doc = json.loads(data)
            assert [l["digest"] for l in doc["layers"]] == [l["digest"] for l in image.layers]
            config = json.loads(archive.blob_bytes(image.config["digest"]))
            assert config["rootfs"]["diff_ids"] == [l["diff_id"] for l in image.layers]


def test_compression_from_an_empty_cache_is_deterministic(docker_client, tmp_path):
    """Two exports of the same image with two empty blob caches give the same bytes."""
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        for name, data in {"etc/hello": b"hello\n" * 1000, "bin/x": bytes(range(256)) * 50}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    ref = f"dragonball-test/tiny:{LABELS['io.dragonball.test']}"
    docker_client.api.import_image(src=tar.getvalue(), repository=ref.split(":")[0],
                                   tag=ref.split(":")[1])
    from builder.engine import Engine
    engine = Engine()
    try:
        outs = []
        for n in (1, 2):
            cache = archive_mod.BlobCache(tmp_path / f"cache{n}")
            out = tmp_path / f"images{n}.tar"
            archive_mod.export_images(engine, [archive_mod.ImageSource(ref, "x/tiny:1")],
                                      cache, out, mtime=1234567890)
            outs.append(out.read_bytes())
        assert outs[0] == outs[1]
    finally:
        engine.close()
        docker_client.images.remove(ref, force=True)


def test_a_signed_release_verifies_with_its_key_only(release_bin, tmp_path):
    keys = tmp_path / "keys"
    build = [sys.executable, str(ROOT / "build.py")]
    subprocess.run([*build, "keygen", "--keys", str(keys)], check=True, cwd=ROOT)
    subprocess.run([*build, "keygen", "--keys", str(tmp_path / "other")], check=True, cwd=ROOT)
    assert oct((keys / "release-signing.key").stat().st_mode & 0o777) == "0o600"
    dist = tmp_path / "dist"
    subprocess.run([*build, "--dist", str(dist), "--sign-key",
                    str(keys / "release-signing.key")], check=True, cwd=ROOT)
    openssl = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
                              str(keys / "release-signing.pub"), "-rawin", "-in", "SHA256SUMS",
                              "-sigfile", "SHA256SUMS.sig"], cwd=dist, capture_output=True,
                             text=True)
    assert openssl.returncode == 0, openssl.stdout + openssl.stderr
    path = dist / release_bin[0].name
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    good = subprocess.run([str(path), "release", "verify", "--key",
                           str(keys / "release-signing.pub")], capture_output=True, text=True,
                          env=env)
    assert good.returncode == 0 and "every section matches" in good.stdout, good.stderr
    bad = subprocess.run([str(path), "release", "verify", "--key",
                          str(tmp_path / "other" / "release-signing.pub")],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 6 and "does not match the key" in bad.stderr  # DENIED
    unsigned = subprocess.run([str(release_bin[0]), "release", "verify", "--key",
                               str(keys / "release-signing.pub")], capture_output=True,
                              text=True, env=env)
    assert unsigned.returncode == 2 and "is not signed" in unsigned.stderr  # INVALID


def test_a_signing_key_readable_by_others_is_refused(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "build.py"), "keygen", "--keys",
                    str(tmp_path)], check=True, cwd=ROOT)
    key = tmp_path / "release-signing.key"
    key.chmod(0o644)
    result = subprocess.run([sys.executable, str(ROOT / "build.py"), "--dist",
                             str(tmp_path / "dist"), "--sign-key", str(key)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "chmod 600" in result.stdout
    assert not (tmp_path / "dist").exists(), "nothing is built with an unsafe key"

"""The registry image and the archive push, for real: TLS from our CA, htpasswd, this engine.

One registry container (dragonball/registry, built by builder.platform_images) with a
certificate for 127.0.0.1 and htpasswd files mounted (the portal's account, which alone may
write, and a pull-only account as every server has), published on 127.0.0.1 only. An
archive of two small module images (sharing the base layers) is written by the builder's
own exporter, pushed with dragonball.registry, checked through the API, and pulled back by
this engine. Everything created is labelled and removed; certs.d and the login are undone.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from builder import archive as builder_archive
from builder.cache import cache_dir
from builder.engine import Engine
from builder.pipeline import BuildEnv
from builder.platform_images import build_registry_image
from builder.progress import Reporter
from dragonball import pki
from dragonball.registry import RegistryClient, RegistryError, push_archive
from dragonball.registry.load import write_load_tar
from dragonball.registry.plan import Action
from dragonball.release.archive import ImageArchive
from dragonball.release.sections import SectionFile
from support import LABELS, ROOT, RUN_ID, build_module_image, wait_for, write_module

DOCKER = "/usr/bin/docker"
USER = "dragonball"
PULLER = "pull"
HEALTHY_WITHIN = 60
REPOSITORIES = (f"dbtest-{RUN_ID}/alpha", f"dbtest-{RUN_ID}/beta")


@pytest.fixture(scope="module")
def registry_image(docker_client, base_image) -> str:
    engine = Engine()
    try:
        return build_registry_image(BuildEnv(reporter=Reporter(), engine=engine))
    finally:
        engine.close()


@pytest.fixture(scope="module")
def secrets(tmp_path_factory) -> pathlib.Path:
    """The mounted folder (server.crt, server.key, ca.crt, htpasswd) and a password file."""
    folder = tmp_path_factory.mktemp("registry")
    ca = pki.create_ca()
    server = pki.issue_server_cert(ca, "registry", ips=["127.0.0.1"], dns_names=["localhost"])
    pki.write_pem_files(server, folder / "tls" / "server.crt", folder / "tls" / "server.key")
    pki.write_private(folder / "tls" / "ca.crt", ca.cert_pem, 0o644)
    password, pull_password = pki.new_secret(), pki.new_secret()
    pki.write_private(folder / "tls" / "htpasswd", (pki.htpasswd_line(USER, password) + "\n" +
                                                    pki.htpasswd_line(PULLER, pull_password)
                                                    + "\n").encode())
    pki.write_private(folder / "tls" / "push.htpasswd",
                      (pki.htpasswd_line(USER, password) + "\n").encode())
    pki.write_private(folder / "password", password.encode())
    pki.write_private(folder / "pull-password", pull_password.encode())
    return folder


@pytest.fixture(scope="module")
def registry(docker_client, registry_image, secrets) -> str:
    """HOST:PORT of a healthy registry container on loopback."""
    container = docker_client.containers.run(
        registry_image, detach=True, name=f"dbtest-registry-{RUN_ID}", labels=LABELS,
        volumes={str(secrets / "tls"): {"bind": "/etc/dragonball/registry", "mode": "ro"}},
        ports={"5000/tcp": ("127.0.0.1", None)})
    try:
        def healthy():
            container.reload()
            return container.attrs["State"].get("Health", {}).get("Status") == "healthy"
        wait_for(healthy, HEALTHY_WITHIN, lambda: container.logs().decode(errors="replace"))
        port = container.attrs["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostPort"]
        yield f"127.0.0.1:{port}"
    finally:
        container.remove(force=True, v=True)


@pytest.fixture(scope="module")
def archive_file(docker_client, base_image, tmp_path_factory) -> pathlib.Path:
    """images.tar of two small module images, as build.py writes it (layers cached by diff_id)."""
    folder = tmp_path_factory.mktemp("archive")
    sources = []
    for repository in REPOSITORIES:
        name = repository.rsplit("/", 1)[1]
        module = write_module(folder / "modules", name, {"status/1_ok.sh": "exit 0"})
        (module / "module").mkdir()
        (module / "module" / "data.txt").write_text(f"{name} {RUN_ID}\n" * 1000)
        sources.append(builder_archive.ImageSource(build_module_image(docker_client, module),
                                                   f"{repository}:1.0"))
    engine = Engine()
    try:
        builder_archive.export_images(engine, sources,
                                      builder_archive.BlobCache(cache_dir(os.environ) / "blobs"),
                                      folder / "images.tar", mtime=0)
    finally:
        engine.close()
    for source in sources:  # the pull below must fetch their own layers from the registry
        docker_client.images.remove(source.source, force=True)
    return folder / "images.tar"


@pytest.fixture(scope="module")
def archive(archive_file):
    with open(archive_file, "rb") as f:
        yield ImageArchive(SectionFile(f, 0, archive_file.stat().st_size))


@pytest.fixture(scope="module")
def client(registry, secrets):
    with RegistryClient(registry, secrets / "tls" / "ca.crt", USER,
                        (secrets / "password").read_text()) as c:
        yield c


@pytest.fixture(scope="module")
def first_push(archive, client):
    return push_archive(archive, client, workers=4)


def test_first_push_uploads_each_blob_once_and_mounts_shared_layers(first_push, archive):
    plan = first_push.plan
    assert plan.steps(Action.SKIP) == []
    assert len(plan.steps(Action.MOUNT)) >= 1  # the base image's layers, for beta
    uploaded = {s.digest for s in plan.steps(Action.UPLOAD)}
    assert len(uploaded) == len(plan.steps(Action.UPLOAD))
    assert len(plan.manifests_to_put) == 2


def test_manifests_are_the_archive_bytes(first_push, archive, client):
    for image in archive.images:
        data, digest = client.get_manifest(image.repository, image.tag)
        assert data == archive.blob_bytes(image.manifest["digest"])
        assert digest == image.manifest["digest"]


def test_every_blob_is_in_its_repository(first_push, archive, client):
    for image in archive.images:
        for blob in (image.config, *image.layers):
            assert client.blob_exists(image.repository, blob["digest"]), blob


def test_second_push_sends_nothing(first_push, archive, client):
    again = push_archive(archive, client)
    assert again.plan.nothing_to_do
    assert again.plan.upload_bytes == 0


def test_the_cli_push_says_nothing_was_sent(first_push, archive_file, registry, secrets):
    done = _cli("images", "push", "--archive", str(archive_file), "--registry", registry,
                "--ca", str(secrets / "tls" / "ca.crt"), "--username", USER,
                "--password-file", str(secrets / "password"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing sent" in done.stdout


def test_wrong_password_is_a_clear_registry_error(first_push, archive, registry, secrets):
    with RegistryClient(registry, secrets / "tls" / "ca.crt", USER, "not-" + pki.new_secret()) as c:
        with pytest.raises(RegistryError, match="refused the credentials of user 'dragonball'"):
            push_archive(archive, c)


def test_the_cli_exits_6_on_a_wrong_password(archive_file, registry, secrets, tmp_path):
    (tmp_path / "wrong").write_text("wrong\n")
    done = _cli("images", "push", "--archive", str(archive_file), "--registry", registry,
                "--ca", str(secrets / "tls" / "ca.crt"), "--username", USER,
                "--password-file", str(tmp_path / "wrong"))
    assert done.returncode == 6  # DENIED
    assert "refused the credentials" in done.stderr


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dragonball", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


@pytest.fixture
def engine_trusts_registry(registry, secrets):
    """certs.d/<host:port>/ca.crt and a `docker login` with the pull account, as every
    server has; both undone afterwards."""
    certs = pathlib.Path("/etc/docker/certs.d") / registry
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(secrets / "tls" / "ca.crt", certs / "ca.crt")
    try:
        login = subprocess.run([DOCKER, "login", registry, "--username", PULLER,
                                "--password-stdin"],
                               input=(secrets / "pull-password").read_text(), capture_output=True,
                               text=True, timeout=60)
        assert login.returncode == 0, login.stderr
        yield registry
    finally:
        subprocess.run([DOCKER, "logout", registry], capture_output=True, timeout=60)
        shutil.rmtree(certs, ignore_errors=True)


def test_the_engine_pulls_the_pushed_image_with_the_same_id(first_push, archive, docker_client,
                                                              engine_trusts_registry):
    image = archive.images[0]
    name = f"{engine_trusts_registry}/{image.repository}:{image.tag}"
    pulled = subprocess.run([DOCKER, "pull", name], capture_output=True, text=True, timeout=300)
    try:
        assert pulled.returncode == 0, pulled.stderr
        assert docker_client.images.get(name).id == image.config["digest"]
    finally:
        subprocess.run([DOCKER, "rmi", "--force", name], capture_output=True, timeout=60)


# --- least privilege: every server pulls, only the portal writes (docs/security.md) ---------

@pytest.fixture
def puller(registry, secrets):
    with RegistryClient(registry, secrets / "tls" / "ca.crt", PULLER,
                        (secrets / "pull-password").read_text()) as c:
        yield c


def test_the_pull_account_reads_manifests_blobs_and_the_catalog(first_push, archive, puller):
    image = archive.images[0]
    assert puller.get_manifest(image.repository, image.tag)[1] == image.manifest["digest"]
    assert puller.blob_exists(image.repository, image.config["digest"])
    assert set(REPOSITORIES) <= set(puller.catalog())


def test_the_pull_account_can_neither_push_nor_overwrite_nor_delete(first_push, archive, puller,
                                                                      client, registry, secrets):
    """The attack of issue 13: a device's root, with the login every device has, tries to
    plant an image; every writing method is refused and the manifest stays the portal's."""
    image = archive.images[0]
    before = client.get_manifest(image.repository, image.tag)
    with pytest.raises(RegistryError):
        puller.start_upload(f"dbtest-{RUN_ID}/planted")
    with pytest.raises(RegistryError):  # a tag moved onto another manifest
        puller.put_manifest(image.repository, image.tag,
                            archive.blob_bytes(archive.images[1].manifest["digest"]))
    import requests
    auth = (PULLER, (secrets / "pull-password").read_text())
    ca = str(secrets / "tls" / "ca.crt")
    for method in ("DELETE", "PATCH", "POST", "PUT"):
        answer = requests.request(
            method, f"https://{registry}/v2/{image.repository}/manifests/{before[1]}",
            auth=auth, verify=ca, timeout=30)
        assert answer.status_code in (401, 403), (method, answer.status_code)
    assert client.get_manifest(image.repository, image.tag) == before
    assert f"dbtest-{RUN_ID}/planted" not in client.catalog()


def test_the_engine_cannot_push_with_the_pull_account(first_push, archive, docker_client,
                                                      engine_trusts_registry):
    image = archive.images[0]
    source = f"{engine_trusts_registry}/{image.repository}:{image.tag}"
    planted = f"{engine_trusts_registry}/dbtest-{RUN_ID}/planted:1"
    assert subprocess.run([DOCKER, "pull", source], capture_output=True,
                          timeout=300).returncode == 0
    try:
        subprocess.run([DOCKER, "tag", source, planted], check=True, timeout=60)
        pushed = subprocess.run([DOCKER, "push", planted], capture_output=True, text=True,
                                timeout=300)
        assert pushed.returncode != 0
        assert "unauthorized" in (pushed.stdout + pushed.stderr).lower() or \
            "denied" in (pushed.stdout + pushed.stderr).lower(), pushed.stdout + pushed.stderr
    finally:
        subprocess.run([DOCKER, "rmi", "--force", source, planted], capture_output=True,
                       timeout=60)


def test_docker_load_takes_archive_images_streamed_with_their_ids(archive, docker_client):
    """How the portal gets the registry image before a registry exists (dragonball.registry.load)."""
    image = archive.images[1]
    proc = subprocess.Popen([DOCKER, "load"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        write_load_tar(archive, [image], proc.stdin)
    finally:
        proc.stdin.close()
    output = proc.stdout.read().decode()
    assert proc.wait(timeout=300) == 0, output
    try:
        assert docker_client.images.get(image.ref).id == image.config["digest"]
    finally:
        docker_client.images.remove(image.ref, force=True)

def test_config_change_restarts_with_a_rotated_password(first_push, registry, secrets, docker_client):
    """Last in this file: it rotates the credential the fixtures above use."""
    container = docker_client.containers.get(f"dbtest-registry-{RUN_ID}")
    new_password = pki.new_secret()
    pki.write_private(secrets / "tls" / "htpasswd",
                      (pki.htpasswd_line(USER, new_password) + "\n").encode())
    pki.write_private(secrets / "tls" / "push.htpasswd",
                      (pki.htpasswd_line(USER, new_password) + "\n").encode())
    done = subprocess.run([DOCKER, "exec", "-i", container.id, "/opt/dragon_ball/bin/run.sh",
                           "config_change", "-"], input='{"log_level": "warn"}',
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    ca = secrets / "tls" / "ca.crt"
    with RegistryClient(registry, ca, USER, new_password) as c:
        c.ping()
        assert c.blob_exists(REPOSITORIES[0], first_push.plan.blobs[0].digest)
    with RegistryClient(registry, ca, USER, (secrets / "password").read_text()) as c:
        with pytest.raises(RegistryError, match="refused the credentials"):
            c.ping()
    status = container.exec_run(["/opt/dragon_ball/bin/run.sh", "status"])
    assert status.exit_code == 0, status.output.decode()

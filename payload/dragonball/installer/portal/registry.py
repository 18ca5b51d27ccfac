"""The portal's registry steps: portal.registry_image (load), portal.registry (run),
portal.registry_trust (trust and log in) and portal.images (push).

Why a container and not a Swarm service for the registry: see installer/portal/__init__.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
import time

from dragonball.errors import InstallerError
from dragonball.installer.apply import missing_dirs, write_file
from dragonball.installer.portal.cluster import docker_json, read_credentials
from dragonball.installer.portal.layout import (
    CA_CERT, CONFIG_LABEL, LOAD_TIMEOUT_S, REGISTRY_CONTAINER, REGISTRY_LOG_DIR,
    REGISTRY_REPOSITORY, REGISTRY_USER, WAIT_S, registry_address,
    registry_config_hash, registry_run_argv, registry_storage)
from dragonball.release.sections import BinError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def release_archive(environ=None):
    """The .bin's image archive, read in place (the stub passes where it is)."""
    from dragonball.release.archive import open_archive
    with open_archive(None, os.environ if environ is None else environ) as archive:
        yield archive


def registry_image_of(archive):
    image = next((i for i in archive.images if i.repository == REGISTRY_REPOSITORY), None)
    if image is None:
        raise BinError(f"this .bin holds no {REGISTRY_REPOSITORY} image",
                       "build the .bin again with build.py (it adds the registry image)")
    return image


def image_id(host, ref: str) -> str | None:
    done = host.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], check=False,
                    timeout=60)
    return done.out.strip() if done.ok else None


def load_registry_image(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.registry_image")
    with release_archive() as archive:
        image = registry_image_of(archive)
        if image_id(host, image.ref) == image.config["digest"]:
            return undo.entries()
        undo.note("image", {"kind": "portal_image", "ref": image.ref})
        ctx.progress.update(f"docker load of {image.ref} ({image.size / 1e6:.0f} MB)")
        docker_load(host, archive, [image])
    if image_id(host, image.ref) != image.config["digest"]:
        raise InstallerError(f"docker load did not give {image.ref} the image ID "
                             f"{image.config['digest'][:19]}", "run the install again")
    return undo.entries()


def docker_load(host, archive, images: list) -> None:
    """Stream `images` of the archive into `docker load` (registry.load.write_load_tar)."""
    from dragonball.registry.load import write_load_tar
    docker = host.which("docker")
    if docker is None:
        raise InstallerError("docker is not installed on this server", "run the install again")
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([host.path(docker), "load"], stdin=subprocess.PIPE, stdout=out,
                                stderr=subprocess.STDOUT, env=host.env)
        try:
            write_load_tar(archive, images, proc.stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # docker load stopped reading: its exit status and output say why
        finally:
            try:
                code = proc.wait(timeout=LOAD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = None
        out.seek(0)
        text = out.read().decode(errors="replace")
    log.debug("docker load: %s", text.strip())
    if code != 0:
        raise InstallerError(f"docker load failed ({'timed out' if code is None else code}): "
                             f"{text.strip()[-300:]}", "check the free space of /var/lib/docker")


def start_registry(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.registry")
    with release_archive() as archive:
        image = registry_image_of(archive)
    wanted = registry_config_hash(image.config["digest"], ctx.data_dir)
    # 0711: the registry runs as its own user inside and must pass through to the
    # storage/registry folder it owns (run.sh chowns that one, not the mount point).
    for folder, mode in ((registry_storage(ctx.data_dir), 0o711), (REGISTRY_LOG_DIR, 0o755)):
        if not host.exists(folder):
            undo.note(f"tree:{folder}", {"kind": "portal_tree", "path": folder,
                                         "created_dirs": missing_dirs(host, folder)})
        host.make_dirs(folder, mode=mode)
        os.chmod(host.path(folder), mode)  # whatever the installer's umask
    current = docker_json(host, ["docker", "inspect", "--format", "{{json .}}",
                                 REGISTRY_CONTAINER])
    if current and current.get("Image") == image.config["digest"] and \
            (current.get("Config", {}).get("Labels") or {}).get(CONFIG_LABEL) == wanted:
        if not current.get("State", {}).get("Running"):
            host.run(["docker", "start", REGISTRY_CONTAINER], timeout=120)
    else:
        undo.note("container", {"kind": "portal_container", "name": REGISTRY_CONTAINER})
        if current:
            host.run(["docker", "rm", "--force", REGISTRY_CONTAINER], timeout=120)
        ctx.progress.update(f"docker run {REGISTRY_CONTAINER}")
        # by its image ID (what the .bin said and the load checked), never a tag a push could move
        host.run(registry_run_argv(image.config["digest"], ctx.data_dir, wanted), timeout=120)
    user, password = read_credentials(host) or (None, None)
    ctx.progress.update(f"waiting for the registry on {registry_address(ctx.answers.address)}")
    wait_registry(host, registry_address(ctx.answers.address), user, password)
    return undo.entries()


def wait_registry(host, address: str, user: str, password: str, timeout: float = WAIT_S) -> None:
    """Until the registry answers /v2/ over TLS (our CA) with our credentials."""
    from dragonball.registry import RegistryClient, RegistryError
    deadline = time.monotonic() + timeout
    with RegistryClient(address, host.path(CA_CERT), user, password) as client:
        while True:
            try:
                client.ping()
                return
            except RegistryError as e:
                if time.monotonic() > deadline:
                    logs = host.run(["docker", "logs", "--tail", "20", REGISTRY_CONTAINER],
                                    check=False)
                    raise InstallerError(f"the registry does not answer on {address} after "
                                         f"{timeout:.0f} s: {e.message}",
                                         "its last lines: " + " / ".join(
                                             (logs.out + logs.err).strip().splitlines()[-5:]))
                time.sleep(0.5)


def trust_registry(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.registry_trust")
    address = registry_address(ctx.answers.address)
    ca_pem = host.read_text(CA_CERT)
    write_file(host, undo, f"/etc/docker/certs.d/{address}/ca.crt", ca_pem, 0o644)
    # the portal's own account: an operator's `docker push` here works as on any registry.
    # What reaches other servers is the pull account: the portal's Swarm adapter gives
    # services that one (portal.wiring), and devices log in with it (join.registry).
    user, password = read_credentials(host) or (REGISTRY_USER, "")
    undo.note("login", {"kind": "portal_login", "registry": address})
    host.run(["docker", "login", address, "--username", user, "--password-stdin"],
             stdin=password.encode(), timeout=60,
             hint="the registry refused the login: see 'docker logs dragonball-registry'")
    return undo.entries()


def push_images(ctx) -> dict:
    from dragonball.registry import RegistryClient, push_archive
    host = ctx.host
    user, password = read_credentials(host) or (REGISTRY_USER, "")
    sent = [0]

    def progress(nbytes: int) -> None:
        sent[0] += nbytes
        ctx.progress.update(f"{sent[0] / 1e6:.0f} MB sent")
    with release_archive() as archive, \
            RegistryClient(registry_address(ctx.answers.address), host.path(CA_CERT), user,
                           password) as client:
        result = push_archive(archive, client, progress=progress)
    log.info("pushed %d image(s) in %.1f s (%d bytes uploaded)",
             len(result.plan.manifests_to_put), result.seconds, result.plan.upload_bytes)
    return {}

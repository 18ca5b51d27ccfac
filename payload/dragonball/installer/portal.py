"""The portal's install steps (role portal): from a server with a running engine to a
cluster of one, with its registry, its images and its HTTPS portal.

    portal.swarm           docker swarm init on the answered address (a manager already: done)
    portal.pki             the cluster CA, the portal's and the registry's certificates, the
                           portal's ssh key, under /etc/dragonball (keys 0600; kept on re-run)
    portal.registry_auth   the registry's machine credential (pki.new_secret, bcrypt cost 5)
    portal.registry_image  dragonball/registry from the .bin's images section into the engine
                           (streamed into `docker load`; nothing when the engine has that ID)
    portal.registry        the registry container: restart=always, host network (port 5000),
                           storage in <data_dir>/registry, the secrets folder read-only
    portal.registry_trust  /etc/docker/certs.d/<address>:5000/ca.crt and `docker login`
    portal.images          every image of the .bin pushed to the registry (push_archive)
    portal.runtime         the .bin's runtime unpacked to /opt/dragonball/runtime, and
                           /usr/local/bin/dragonball pointing at it
    portal.config          /etc/dragonball/portal/portal.yaml
    portal.store           the portal's database: the admin account, the portal as device 1
                           (its node labelled)
    portal.service         dragonball-portal.service (systemd), else a detached process with
                           /run/dragonball/portal.pid; then /healthz answers over HTTPS
    portal.first_code      a first enrollment code, printed with the URL, the CA fingerprint
                           and the join command (never logged)

Why a container and not a Swarm service for the registry: it must serve before anything
can be pulled, on the portal only, whatever the Swarm's state (a lost quorum must not take
the images away); `--restart always` brings it back with the engine. Host networking: no
NAT and no docker-proxy in the way, one port on every address of the portal.

Every step is idempotent and notes what it is about to change first (the journal's undo
log), with kinds of its own (`portal_*`) that `reset` undoes. Secrets (keys, the registry
password, join tokens, the admin password, codes) never enter the journal or the log:
programs whose output holds a token run without their output logged.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from dragonball import __version__, pki
from dragonball.console import console
from dragonball.errors import InstallerError
from dragonball.installer import plan, ports
from dragonball.installer.apply import missing_dirs, write_file
from dragonball.installer.steps import Step
from dragonball.installer.undo import undoer
from dragonball.portal import settings as settings_mod
from dragonball.portal.cli import display_fingerprint, join_instructions, print_instructions
from dragonball.portal.store import ADMIN, DEFAULT_CODE_TTL_S, Store
from dragonball.release.sections import BIN_ENV, BinError, bin_sections, open_section

log = logging.getLogger(__name__)

ETC = "/etc/dragonball"
CA_CERT, CA_KEY = f"{ETC}/ca/ca.crt", f"{ETC}/ca/ca.key"
SHARED_CA = f"{ETC}/ca.crt"  # the same path on every server (devices write theirs there)
PORTAL_DIR = settings_mod.CONFIG_DIR
PORTAL_CERT, PORTAL_KEY = f"{PORTAL_DIR}/server.crt", f"{PORTAL_DIR}/server.key"
REGISTRY_CREDENTIALS = f"{PORTAL_DIR}/registry.json"
SSH_KEY = f"{PORTAL_DIR}/ssh/id_ed25519"
REGISTRY_DIR = f"{ETC}/registry"  # mounted read-only into the registry container
REGISTRY_USER = "dragonball"
REGISTRY_CONTAINER = "dragonball-registry"
REGISTRY_REPOSITORY = "dragonball/registry"
REGISTRY_LOG_DIR = "/var/log/dragonball/registry"
RUNTIME_PARENT = "/opt/dragonball"
RUNTIME_DIR = f"{RUNTIME_PARENT}/runtime"
RUNTIME_STAMP = f"{RUNTIME_DIR}/.sha256"
EXECUTABLE = f"{RUNTIME_DIR}/dragonball"
COMMAND_LINK = "/usr/local/bin/dragonball"
UNIT_NAME = "dragonball-portal.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
PIDFILE = "/run/dragonball/portal.pid"
PORTAL_LOG = "/var/log/dragonball/portal.log"
LABEL = "io.dragonball.role"
CONFIG_LABEL = "io.dragonball.config"
RENEW_BEFORE = datetime.timedelta(days=30)
WAIT_S = 90
LOAD_TIMEOUT_S = 900

STEP_IDS = ("portal.swarm", "portal.pki", "portal.registry_auth", "portal.registry_image",
            "portal.registry", "portal.registry_trust", "portal.images", "portal.runtime",
            "portal.config", "portal.store", "portal.service", "portal.first_code")


# --- what the answers make (pure) ---------------------------------------------------------------

def hostname_of(ctx) -> str:
    return getattr(ctx.answers, "hostname", None) or ctx.facts.hostname


def registry_address(address: str) -> str:
    return settings_mod.host_port(address, ports.REGISTRY)


def certificate_names(address: str, hostname: str) -> tuple[list, list]:
    """(IP SANs, DNS SANs) of the portal's and the registry's certificates."""
    ips = [address] + (["127.0.0.1"] if address != "127.0.0.1" else [])
    dns = [name for name in (hostname, "localhost") if name]
    return ips, list(dict.fromkeys(dns))


def portal_settings(ctx, bin_name: str) -> settings_mod.Settings:
    address = ctx.answers.address
    return settings_mod.Settings(
        address=address, port=ports.PORTAL, hostname=hostname_of(ctx),
        cluster_name=getattr(ctx.answers, "cluster_name", None) or "",
        data_dir=ctx.data_dir, tls_cert=PORTAL_CERT, tls_key=PORTAL_KEY, ca_cert=CA_CERT,
        registry=registry_address(address), registry_credentials=REGISTRY_CREDENTIALS,
        ssh_pubkey=SSH_KEY + ".pub", bin_name=bin_name)


def bin_name(environ, manifest: dict | None) -> str:
    """What the join command tells people to run: this .bin's own file name."""
    if environ.get(BIN_ENV):
        return os.path.basename(environ[BIN_ENV])
    version = (manifest or {}).get("version") or __version__
    return f"DragonBall-{version}.bin"


def registry_run_argv(image: str, data_dir: str, config_hash: str) -> list[str]:
    """`docker run` of the registry container (pure: its hash names the configuration)."""
    return ["docker", "run", "--detach", "--name", REGISTRY_CONTAINER, "--restart", "always",
            "--network", "host", "--label", f"{LABEL}=registry",
            "--label", f"{CONFIG_LABEL}={config_hash}",
            "--log-opt", "max-size=10m", "--log-opt", "max-file=3",
            "--volume", f"{REGISTRY_DIR}:/etc/dragonball/registry:ro",
            "--volume", f"{registry_storage(data_dir)}:/opt/dragon_ball/service/registry/storage",
            "--volume", f"{REGISTRY_LOG_DIR}:/opt/dragon_ball/service/registry/log", image]


def registry_config_hash(image_id: str, data_dir: str) -> str:
    text = json.dumps(registry_run_argv(image_id, data_dir, ""), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def registry_storage(data_dir: str) -> str:
    return os.path.join(data_dir, "registry")


def unit_text(address: str) -> str:
    return f"""# Written by the DragonBall installer; 'dragonball reset' removes it.
[Unit]
Description=DragonBall portal (HTTPS API on {settings_mod.host_port(address, ports.PORTAL)})
Wants=network-online.target docker.service
After=network-online.target docker.service

[Service]
ExecStart={EXECUTABLE} portal serve --config {settings_mod.CONFIG_FILE}
Restart=always
RestartSec=2
TimeoutStopSec=15
UMask=0077

[Install]
WantedBy=multi-user.target
"""


def swarm_state(info: dict) -> str:
    """"manager" (of a Swarm: done), "none" (init it), or why we cannot go on."""
    state = info.get("LocalNodeState") or "inactive"
    if state == "inactive":
        return "none"
    if state == "active":
        return "manager" if info.get("ControlAvailable") else "worker"
    return state  # pending, error, locked


def cert_fits(pair: pki.KeyPair, ca_pem: bytes, ips: list, dns: list,
              now: datetime.datetime | None = None) -> bool:
    """Whether an existing certificate may stay: signed by this CA, for these names, its
    key its own, and more than 30 days left."""
    try:
        cert = x509.load_pem_x509_certificate(pair.cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
        key = serialization.load_pem_private_key(pair.key_pem, password=None)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, Exception):  # noqa: BLE001
        return False
    now = now or datetime.datetime.now(datetime.timezone.utc)
    same_key = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == \
        cert.public_key().public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    names_ok = ({ipaddress.ip_address(i) for i in ips} <= set(san.get_values_for_type(
        x509.IPAddress)) and set(dns) <= set(san.get_values_for_type(x509.DNSName)))
    return same_key and names_ok and cert.not_valid_after_utc - now > RENEW_BEFORE


def new_ssh_key(comment: str) -> tuple[str, str]:
    """(private key in OpenSSH format, public key line) of a new Ed25519 key."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, f"{public} {comment}\n"


# --- the steps ------------------------------------------------------------------------------------

def portal_steps(ctx) -> list[Step]:
    """The portal's steps, after the engine and the firewall (plan.ROLE_STEPS["portal"])."""
    actions = {
        "portal.swarm": ("initialize the Swarm (this server is its first manager)", swarm_init),
        "portal.pki": ("the cluster CA and the portal's and registry's certificates", make_pki),
        "portal.registry_auth": ("the registry's credentials", registry_auth),
        "portal.registry_image": ("load the registry image into the engine", load_registry_image),
        "portal.registry": ("start the registry", start_registry),
        "portal.registry_trust": ("trust and log in to the registry", trust_registry),
        "portal.images": ("push the release's images to the registry", push_images),
        "portal.runtime": ("copy the runtime to /opt/dragonball/runtime", install_runtime),
        "portal.config": ("write the portal's settings", write_config),
        "portal.store": ("the portal's database and the admin account", make_store),
        "portal.service": ("start the portal service", start_service),
        "portal.first_code": ("a first enrollment code", first_code),
    }
    return [Step(step_id, title, (lambda action=action: action(ctx)))
            for step_id, (title, action) in actions.items()]


def _quiet(host, argv: list, timeout: float = 120, stdin: bytes | None = None):
    """Run a program whose output holds a secret (a join token): nothing of it is logged."""
    program = host.which(argv[0])
    if program is None:
        raise InstallerError(f"{argv[0]} is not installed on this server",
                             "the engine step installs it: run the install again")
    log.debug("ran %s (output not logged: it holds a secret)", " ".join([program, *argv[1:]]))
    return host.runner([program, *argv[1:]], host.env, timeout, stdin)


def docker_json(host, argv: list):
    done = host.run(argv, check=False, timeout=60)
    if not done.ok:
        return None
    try:
        return json.loads(done.out)
    except ValueError:
        return None


def swarm_init(ctx) -> dict:
    host, undo, address = ctx.host, ctx.undo("portal.swarm"), ctx.answers.address
    info = docker_json(host, ["docker", "info", "--format", "{{json .Swarm}}"]) or {}
    state = swarm_state(info)
    if state == "manager":
        if info.get("NodeAddr") and info["NodeAddr"] != address:
            ctx.progress.warn(f"this engine is a Swarm manager already, advertising "
                              f"{info['NodeAddr']}, not {address}: kept as it is")
        return undo.entries()
    if state != "none":
        raise InstallerError(f"this engine's Swarm state is '{state}': a portal starts a "
                             "new Swarm", "leave the other Swarm first ('docker swarm leave'), "
                             "or install this server as a device of that cluster")
    undo.note("swarm", {"kind": "portal_swarm"})
    ctx.progress.update(f"docker swarm init --advertise-addr {address}")
    listen = settings_mod.host_port(address, ports.SWARM_MANAGEMENT)
    done = _quiet(host, ["docker", "swarm", "init", "--advertise-addr", address,
                         "--listen-addr", listen])
    if not done.ok:
        raise InstallerError(f"docker swarm init failed: {done.err.strip()[-300:]}",
                             f"check that {address} is this server's address and that port "
                             f"{ports.SWARM_MANAGEMENT} is free")
    for role in ("worker", "manager"):  # masked in the install log from now on
        token = _quiet(host, ["docker", "swarm", "join-token", "-q", role])
        if token.ok and ctx.secrets is not None:
            ctx.secrets.add(token.out.strip())
    return undo.entries()


# --- portal.pki -------------------------------------------------------------------------------

def write_private(ctx, undo, path: str, text: str, mode: int = 0o600) -> None:
    """Write a file of ours that may hold a secret: the journal keeps only whether it existed."""
    host = ctx.host
    undo.note(f"portal_file:{path}", {"kind": "portal_file", "path": path,
                                      "existed": host.exists(path),
                                      "created_dirs": missing_dirs(host, os.path.dirname(path))})
    host.make_dirs(os.path.dirname(path), mode=0o700)
    host.write_text(path, text, mode)


def _read_pair(host, cert: str, key: str) -> pki.KeyPair | None:
    cert_pem, key_pem = host.read_bytes(cert), host.read_bytes(key)
    return pki.KeyPair(cert_pem, key_pem) if cert_pem and key_pem else None


def make_pki(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.pki")
    ca = _read_pair(host, CA_CERT, CA_KEY)
    if ca is None:
        ctx.progress.update("a new cluster CA")
        ca = pki.create_ca(f"DragonBall cluster CA ({hostname_of(ctx)})")
        write_private(ctx, undo, CA_KEY, ca.key_pem.decode())
        write_private(ctx, undo, CA_CERT, ca.cert_pem.decode(), 0o644)
    else:
        try:
            x509.load_pem_x509_certificate(ca.cert_pem)
            serialization.load_pem_private_key(ca.key_pem, password=None)
        except ValueError as e:
            raise InstallerError(f"{CA_CERT} or {CA_KEY} is not a certificate and its key",
                                 f"move {ETC}/ca away to make a new CA (every server then "
                                 "has to trust the new one)") from e
    write_file(host, undo, SHARED_CA, ca.cert_pem.decode(), 0o644)
    ips, dns = certificate_names(ctx.answers.address, hostname_of(ctx))
    for name, cert, key in (("portal", PORTAL_CERT, PORTAL_KEY),
                            ("registry", f"{REGISTRY_DIR}/server.crt",
                             f"{REGISTRY_DIR}/server.key")):
        existing = _read_pair(host, cert, key)
        if existing and cert_fits(existing, ca.cert_pem, ips, dns):
            continue
        pair = pki.issue_server_cert(ca, f"DragonBall {name}", ips=ips, dns_names=dns)
        write_private(ctx, undo, key, pair.key_pem.decode())
        write_private(ctx, undo, cert, pair.cert_pem.decode(), 0o644)
    write_private(ctx, undo, f"{REGISTRY_DIR}/ca.crt", ca.cert_pem.decode(), 0o644)
    if not (host.exists(SSH_KEY) and host.exists(SSH_KEY + ".pub")):
        private, public = new_ssh_key(f"dragonball-portal@{hostname_of(ctx)}")
        write_private(ctx, undo, SSH_KEY, private)
        write_private(ctx, undo, SSH_KEY + ".pub", public, 0o644)
    return undo.entries()


# --- the registry -----------------------------------------------------------------------------

def read_credentials(host) -> tuple[str, str] | None:
    text = host.read_text(REGISTRY_CREDENTIALS)
    try:
        data = json.loads(text or "")
        return str(data["username"]), str(data["password"])
    except (ValueError, KeyError, TypeError):
        return None


def registry_auth(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.registry_auth")
    existing = read_credentials(host)
    htpasswd = host.read_text(f"{REGISTRY_DIR}/htpasswd") or ""
    if existing:
        user, password = existing
        line = next((l for l in htpasswd.splitlines() if l.startswith(f"{user}:")), "")
        if line and bcrypt.checkpw(password.encode(), line.split(":", 1)[1].encode()):
            if ctx.secrets is not None:
                ctx.secrets.add(password)
            return undo.entries()
    password = pki.new_secret()
    if ctx.secrets is not None:
        ctx.secrets.add(password)
    write_private(ctx, undo, REGISTRY_CREDENTIALS,
                  json.dumps({"username": REGISTRY_USER, "password": password}) + "\n")
    write_private(ctx, undo, f"{REGISTRY_DIR}/htpasswd",
                  pki.htpasswd_line(REGISTRY_USER, password) + "\n")
    return undo.entries()


@contextlib.contextmanager
def release_archive(environ=None):
    """The .bin's image archive, read in place (the stub passes where it is)."""
    from dragonball.registry.images_cli import open_archive
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
        host.run(registry_run_argv(image.ref, ctx.data_dir, wanted), timeout=120)
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


# --- the runtime, the settings, the store, the service --------------------------------------------

def install_runtime(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.runtime")
    path, sections = bin_sections(os.environ)
    section = sections.get("runtime")
    if section is None:
        raise BinError(f"{path} has no runtime section", "build the .bin again")
    if (host.read_text(RUNTIME_STAMP) or "").strip() != section.sha256 or \
            not host.exists(EXECUTABLE):
        if not host.exists(RUNTIME_DIR):
            undo.note("runtime", {"kind": "portal_tree", "path": RUNTIME_DIR,
                                  "created_dirs": missing_dirs(host, RUNTIME_DIR)})
        host.make_dirs(RUNTIME_PARENT, mode=0o755)
        ctx.progress.update(f"unpacking the runtime ({section.size / 1e6:.0f} MB)")
        with open(path, "rb") as f:
            view = open_section(f, section, verify=os.environ.get("DRAGONBALL_BIN_VERIFIED") != "1")
            unpack_runtime(view, host.path(RUNTIME_PARENT), host.path(RUNTIME_DIR))
        host.write_text(RUNTIME_STAMP, section.sha256 + "\n", 0o644)
    link = host.path(COMMAND_LINK)
    if os.path.islink(link) and os.readlink(link) == EXECUTABLE:
        pass
    elif os.path.lexists(link):
        ctx.progress.warn(f"{COMMAND_LINK} exists and is not ours: the portal's commands run "
                          f"as {EXECUTABLE}")
    else:
        undo.note("link", {"kind": "portal_link", "path": COMMAND_LINK, "target": EXECUTABLE,
                           "created_dirs": missing_dirs(host, os.path.dirname(COMMAND_LINK))})
        host.make_dirs(os.path.dirname(COMMAND_LINK))
        os.symlink(EXECUTABLE, link)
    return undo.entries()


def unpack_runtime(stream, parent: str, target: str, top: str = "dragonball") -> None:
    """Unpack runtime.tar.gz (top folder `top/`) as `target`, swapped in whole at the end."""
    for stale in os.listdir(parent):
        if stale.startswith(".runtime-"):
            shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
    fresh = tempfile.mkdtemp(prefix=".runtime-new-", dir=parent)
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as tar:
            for member in tar:
                if member.name.rstrip("/") == top:
                    continue
                if not member.name.startswith(top + "/"):
                    raise BinError(f"the runtime holds {member.name!r}, outside {top}/",
                                   "build the .bin again")
                member.name = member.name[len(top) + 1:]
                if member.islnk():
                    member.linkname = member.linkname[len(top) + 1:]
                tar.extract(member, fresh, filter="data")
        if not os.access(os.path.join(fresh, "dragonball"), os.X_OK):
            raise BinError("the runtime has no dragonball executable", "build the .bin again")
        os.chmod(fresh, 0o755)
        if os.path.lexists(target):
            old = tempfile.mkdtemp(prefix=".runtime-old-", dir=parent)
            os.rename(target, os.path.join(old, "runtime"))
            os.rename(fresh, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(fresh, target)
    except (OSError, tarfile.TarError) as e:
        raise InstallerError(f"cannot unpack the runtime into {target}: {e}",
                             f"check the free space of {parent}") from e
    finally:
        if os.path.exists(fresh):
            shutil.rmtree(fresh, ignore_errors=True)


def write_config(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.config")
    settings = portal_settings(ctx, bin_name(os.environ, ctx.manifest))
    write_file(host, undo, settings_mod.CONFIG_FILE, settings.to_yaml(), 0o600)
    return undo.entries()


def open_store(ctx) -> Store:
    return Store.open(ctx.host.path(os.path.join(ctx.data_dir, "portal", "portal.db")))


def make_store(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.store")
    folder = os.path.join(ctx.data_dir, "portal")
    if not host.exists(folder):
        undo.note("store", {"kind": "portal_tree", "path": folder,
                            "created_dirs": missing_dirs(host, folder)})
    password = ctx.answers.admin_password
    if not password:
        raise InstallerError("the portal needs an admin password", "answer admin_password")
    node_id = host.run(["docker", "info", "--format", "{{.Swarm.NodeID}}"], timeout=60).out.strip()
    store = open_store(ctx)
    try:
        if not store.check_admin(ADMIN, password):
            store.set_admin_password(password, ADMIN, actor="installer")
        device = store.add_portal(hostname_of(ctx), ctx.answers.address, node_id or None)
    finally:
        store.close()
    if node_id:
        argv = ["docker", "node", "update"]
        for key, value in sorted(device.labels.items()):
            argv += ["--label-add", f"{key}={value}"]
        host.run([*argv, node_id], timeout=60)
    return undo.entries()


def uses_systemd(ctx) -> bool:
    return bool((ctx.facts.init or {}).get("systemd")) and ctx.host.which("systemctl") is not None


def start_service(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.service")
    if uses_systemd(ctx):
        write_file(host, undo, UNIT_PATH, unit_text(ctx.answers.address), 0o644)
        enabled = host.run(["systemctl", "is-enabled", UNIT_NAME], check=False).out.strip()
        undo.note("service", {"kind": "portal_service", "unit": UNIT_NAME,
                              "was_enabled": enabled == "enabled"})
        host.run(["systemctl", "daemon-reload"], timeout=60)
        host.run(["systemctl", "enable", UNIT_NAME], timeout=60)
        host.run(["systemctl", "restart", UNIT_NAME], timeout=60,
                 hint=f"see why: journalctl -u {UNIT_NAME} --no-pager | tail -50")
    else:
        start_detached(ctx, undo)
    settings = portal_settings(ctx, "")
    ctx.progress.update(f"waiting for {settings.url}/healthz")
    wait_portal(host, settings)
    return undo.entries()


def start_detached(ctx, undo) -> None:
    """Without systemd: the portal in a session of its own, its pid in /run/dragonball.

    Nothing starts it again after a reboot (docs/portal.md says how to)."""
    host = ctx.host
    undo.note("process", {"kind": "portal_process", "pidfile": PIDFILE})
    stop_pidfile(host, PIDFILE)
    host.make_dirs(os.path.dirname(PIDFILE), mode=0o755)
    host.make_dirs(os.path.dirname(PORTAL_LOG), mode=0o755)
    with open(host.path(PORTAL_LOG), "ab") as out:
        proc = subprocess.Popen([host.path(EXECUTABLE), "portal", "serve", "--config",
                                 host.path(settings_mod.CONFIG_FILE)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=host.env, start_new_session=True, close_fds=True)
    host.write_text(PIDFILE, f"{proc.pid}\n", 0o644)


def pid_alive(host, pidfile: str) -> int | None:
    try:
        pid = int((host.read_text(pidfile) or "").strip())
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rpartition(")")[2].split()[0] == "Z":
                return None
    except (ValueError, OSError, IndexError):
        return None
    return pid


def stop_pidfile(host, pidfile: str, wait_s: float = 20) -> None:
    pid = pid_alive(host, pidfile)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and pid_alive(host, pidfile) == pid:
        time.sleep(0.2)
    if pid_alive(host, pidfile) == pid:
        os.kill(pid, signal.SIGKILL)


def wait_portal(host, settings: settings_mod.Settings, timeout: float = WAIT_S) -> None:
    """Until https://<address>:8443/healthz answers 200, verified with our CA only."""
    import requests
    session = requests.Session()
    session.trust_env = False  # this machine's REQUESTS_CA_BUNDLE must not decide
    deadline, last = time.monotonic() + timeout, ""
    while True:
        try:
            answer = session.get(settings.url + "/healthz", verify=host.path(CA_CERT), timeout=5)
            if answer.status_code == 200:
                return
            last = f"HTTP {answer.status_code}"
        except requests.RequestException as e:
            last = str(e)
        if time.monotonic() > deadline:
            raise InstallerError(f"the portal does not answer on {settings.url} after "
                                 f"{timeout:.0f} s ({last[-200:]})",
                                 f"see journalctl -u {UNIT_NAME}, or {PORTAL_LOG}")
        time.sleep(0.5)


def first_code(ctx) -> dict:
    host = ctx.host
    settings = portal_settings(ctx, bin_name(os.environ, ctx.manifest))
    store = open_store(ctx)
    try:
        code, record = store.create_code(DEFAULT_CODE_TTL_S, actor="installer")
    finally:
        store.close()
    if ctx.secrets is not None:
        ctx.secrets.add(code, code.replace("-", ""), code.replace("-", " "))
    info = join_instructions(settings, code, record.expires,
                             display_fingerprint(host.read_bytes(CA_CERT)))
    console.print(f"\n[bold]The portal is up:[/bold] {settings.url}  (user {ADMIN}, the "
                  "password you chose)")
    print_instructions(console, info, DEFAULT_CODE_TTL_S)
    console.print(f"More codes, any time, on this server: [bold]dragonball enroll[/bold]\n")
    log.info("first enrollment code made (code %d, valid %d s)", record.id, DEFAULT_CODE_TTL_S)
    return {}


# --- undo (reset) -------------------------------------------------------------------------------

@undoer("portal_swarm")
def undo_swarm(host, entry: dict) -> None:
    done = host.run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], check=False,
                    timeout=30)
    if done.ok and done.out.strip() in ("active", "pending", "error"):
        host.run(["docker", "swarm", "leave", "--force"], timeout=120)


@undoer("portal_file")
def undo_private_file(host, entry: dict) -> None:
    """Our file gone (with the folders made for it); one that was there before is kept."""
    if not entry.get("existed"):
        host.remove(entry["path"])
        host.remove_empty_dirs(entry.get("created_dirs") or [])


@undoer("portal_tree")
def undo_tree(host, entry: dict) -> None:
    shutil.rmtree(host.path(entry["path"]), ignore_errors=True)
    host.remove_empty_dirs(entry.get("created_dirs") or [])


@undoer("portal_image")
def undo_image(host, entry: dict) -> None:
    if host.which("docker"):
        host.run(["docker", "image", "rm", entry["ref"]], check=False, timeout=120)


@undoer("portal_container")
def undo_container(host, entry: dict) -> None:
    if host.which("docker"):
        host.run(["docker", "rm", "--force", "--volumes", entry["name"]], check=False,
                 timeout=120)


@undoer("portal_login")
def undo_login(host, entry: dict) -> None:
    if host.which("docker"):
        host.run(["docker", "logout", entry["registry"]], check=False, timeout=60)


@undoer("portal_link")
def undo_link(host, entry: dict) -> None:
    link = host.path(entry["path"])
    if os.path.islink(link) and os.readlink(link) == entry["target"]:
        os.unlink(link)
    host.remove_empty_dirs(entry.get("created_dirs") or [])


@undoer("portal_service")
def undo_service(host, entry: dict) -> None:
    if host.which("systemctl") is None:
        return
    host.run(["systemctl", "stop", entry["unit"]], check=False, timeout=60)
    if not entry.get("was_enabled"):
        host.run(["systemctl", "disable", entry["unit"]], check=False, timeout=60)


@undoer("portal_process")
def undo_process(host, entry: dict) -> None:
    stop_pidfile(host, entry["pidfile"])
    host.remove(entry["pidfile"])


if portal_steps not in plan.ROLE_STEPS["portal"]:
    plan.ROLE_STEPS["portal"].append(portal_steps)

"""The portal's Swarm, CA and credential steps: portal.swarm, portal.pki and
portal.registry_auth (the whole list: installer/portal/__init__.py).

Secrets (keys, the registry password, join tokens) never enter the journal or the log:
programs whose output holds a token run without their output logged.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from dragonball import pki
from dragonball.errors import InstallerError
from dragonball.shared import ports
from dragonball.shared.addresses import host_port
from dragonball.installer.apply import missing_dirs, write_file
from dragonball.installer.portal.layout import (
    CA_CERT, CA_KEY, ETC, PORTAL_CERT, PORTAL_KEY, REGISTRY_CREDENTIALS, REGISTRY_DIR,
    REGISTRY_PULL_USER, REGISTRY_USER, RENEW_BEFORE, SHARED_CA, SSH_KEY, certificate_names,
    hostname_of)

log = logging.getLogger(__name__)

#: Swarm node certificates live a year (Swarm's default: 90 days). A running node renews its
#: own at 50-80 % of that, so one switched off keeps a valid certificate for 73 days at the
#: least (20 % of a year) rather than 18; docs/certificates.md says why this is safe.
NODE_CERT_EXPIRY = "8760h"
NODE_CERT_EXPIRY_NS = 8760 * 3600 * 10**9


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


def cert_expiry_of(info: dict) -> int:
    """The Swarm's node certificate lifetime in `docker info`'s Swarm section (ns; 0: unknown)."""
    spec = ((info.get("Cluster") or {}).get("Spec") or {}).get("CAConfig") or {}
    return int(spec.get("NodeCertExpiry") or 0)


def swarm_init(ctx) -> dict:
    host, undo, address = ctx.host, ctx.undo("portal.swarm"), ctx.answers.address
    info = docker_json(host, ["docker", "info", "--format", "{{json .Swarm}}"]) or {}
    state = swarm_state(info)
    if state == "manager":
        if info.get("NodeAddr") and info["NodeAddr"] != address:
            ctx.progress.warn(f"this engine is a Swarm manager already, advertising "
                              f"{info['NodeAddr']}, not {address}: kept as it is")
        if cert_expiry_of(info) != NODE_CERT_EXPIRY_NS:
            ctx.progress.update(f"docker swarm update --cert-expiry {NODE_CERT_EXPIRY}")
            host.run(["docker", "swarm", "update", "--cert-expiry", NODE_CERT_EXPIRY],
                     timeout=60)
        return undo.entries()
    if state != "none":
        raise InstallerError(f"this engine's Swarm state is '{state}': a portal starts a "
                             "new Swarm", "leave the other Swarm first ('docker swarm leave'), "
                             "or install this server as a device of that cluster")
    undo.note("swarm", {"kind": "portal_swarm"})
    ctx.progress.update(f"docker swarm init --advertise-addr {address}")
    listen = host_port(address, ports.SWARM_MANAGEMENT)
    done = _quiet(host, ["docker", "swarm", "init", "--advertise-addr", address,
                         "--listen-addr", listen, "--cert-expiry", NODE_CERT_EXPIRY])
    if not done.ok:
        raise InstallerError(f"docker swarm init failed: {done.err.strip()[-300:]}",
                             f"check that {address} is this server's address and that port "
                             f"{ports.SWARM_MANAGEMENT} is free")
    # Measured (Docker 20.10): init's own certificate has 90 days whatever --cert-expiry
    # says, and so do joins until the CA reloads: after a rotation every certificate,
    # joins' included, has a year. One node now: it takes a second.
    ctx.progress.update("docker swarm ca --rotate (this node's certificate: a year)")
    host.run(["docker", "swarm", "ca", "--rotate", "--quiet", "--cert-expiry",
              NODE_CERT_EXPIRY], timeout=120, check=False)
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


def read_pair(host, cert: str, key: str) -> pki.KeyPair | None:
    cert_pem, key_pem = host.read_bytes(cert), host.read_bytes(key)
    return pki.KeyPair(cert_pem, key_pem) if cert_pem and key_pem else None


def make_pki(ctx) -> dict:
    host, undo = ctx.host, ctx.undo("portal.pki")
    ca = read_pair(host, CA_CERT, CA_KEY)
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
        existing = read_pair(host, cert, key)
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


# --- portal.registry_auth ---------------------------------------------------------------------

def read_credentials(host) -> tuple[str, str] | None:
    """The portal's own registry account (push and delete): managers only."""
    text = host.read_text(REGISTRY_CREDENTIALS)
    try:
        data = json.loads(text or "")
        return str(data["username"]), str(data["password"])
    except (ValueError, KeyError, TypeError):
        return None


def read_pull_credentials(host) -> tuple[str, str] | None:
    """The account every server pulls with (docker login, services, agents); a
    registry.json of before the pull account (one account) gives that one."""
    text = host.read_text(REGISTRY_CREDENTIALS)
    try:
        data = json.loads(text or "")
        pull = data.get("pull") or data
        return str(pull["username"]), str(pull["password"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _valid(htpasswd: str, user: str, password: str) -> bool:
    line = next((l for l in htpasswd.splitlines() if l.startswith(f"{user}:")), "")
    return bool(line) and bcrypt.checkpw(password.encode(), line.split(":", 1)[1].encode())


def registry_auth(ctx) -> dict:
    """Two accounts (docs/security.md, "The registry"): the portal's, which alone may
    push and delete (push.htpasswd), and the pull account every server gets. Kept when
    both are there and match the htpasswd files; made again otherwise (a registry.json
    of one account, from before, gets the pull account this way)."""
    host, undo = ctx.host, ctx.undo("portal.registry_auth")
    push, pull = read_credentials(host), read_pull_credentials(host)
    htpasswd = host.read_text(f"{REGISTRY_DIR}/htpasswd") or ""
    writers = host.read_text(f"{REGISTRY_DIR}/push.htpasswd") or ""
    if push and pull and pull[0] == REGISTRY_PULL_USER and _valid(htpasswd, *push) \
            and _valid(writers, *push) and _valid(htpasswd, *pull) \
            and not _valid(writers, *pull):
        if ctx.secrets is not None:
            ctx.secrets.add(push[1], pull[1])
        return undo.entries()
    password, pull_password = pki.new_secret(), pki.new_secret()
    if ctx.secrets is not None:
        ctx.secrets.add(password, pull_password)
    write_private(ctx, undo, REGISTRY_CREDENTIALS, json.dumps({
        "username": REGISTRY_USER, "password": password,
        "pull": {"username": REGISTRY_PULL_USER, "password": pull_password}}) + "\n")
    write_private(ctx, undo, f"{REGISTRY_DIR}/htpasswd",
                  pki.htpasswd_line(REGISTRY_USER, password) + "\n"
                  + pki.htpasswd_line(REGISTRY_PULL_USER, pull_password) + "\n")
    write_private(ctx, undo, f"{REGISTRY_DIR}/push.htpasswd",
                  pki.htpasswd_line(REGISTRY_USER, password) + "\n")
    return undo.entries()

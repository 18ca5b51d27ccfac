"""Where the portal's install puts things, and what the answers make of them (pure):
paths, names, the portal's settings, the registry container's `docker run`, the unit file.

Shared by the portal's steps (cluster, registry, service), their undo handlers (undo)
and the node agent's steps (installer/agent.py).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os

from dragonball import __version__, agent_client
from dragonball.shared import paths, ports
from dragonball.shared.addresses import host_port
from dragonball.portal import settings as settings_mod
from dragonball.portal.managers import LOCAL_ENDPOINT
from dragonball.release.sections import BIN_ENV

ETC = paths.ETC
CA_CERT, CA_KEY = f"{paths.CA_DIR}/ca.crt", f"{paths.CA_DIR}/ca.key"
SHARED_CA = paths.CA_CERT  # the same path on every server (devices write theirs there)
PORTAL_DIR = settings_mod.CONFIG_DIR
PORTAL_CERT, PORTAL_KEY = f"{PORTAL_DIR}/server.crt", f"{PORTAL_DIR}/server.key"
REGISTRY_CREDENTIALS = f"{PORTAL_DIR}/registry.json"
SSH_KEY = f"{PORTAL_DIR}/ssh/id_ed25519"
REGISTRY_DIR = f"{ETC}/registry"  # mounted read-only into the registry container
REGISTRY_USER = "dragonball"  # the portal's account: the only one that may push or delete
REGISTRY_PULL_USER = "pull"   # every server's account (docker login, Swarm, agents): pull only
REGISTRY_CONTAINER = "dragonball-registry"
REGISTRY_REPOSITORY = "dragonball/registry"
REGISTRY_LOG_DIR = f"{paths.LOG_DIR}/registry"
RUNTIME_PARENT = paths.RUNTIME_PARENT
RUNTIME_DIR = f"{RUNTIME_PARENT}/runtime"
RUNTIME_STAMP = f"{RUNTIME_DIR}/.sha256"
EXECUTABLE = f"{RUNTIME_DIR}/dragonball"
COMMAND_LINK = "/usr/local/bin/dragonball"
UNIT_NAME = "dragonball-portal.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
PIDFILE = "/run/dragonball/portal.pid"
PORTAL_LOG = f"{paths.LOG_DIR}/portal.log"
LABEL = "io.dragonball.role"
CONFIG_LABEL = "io.dragonball.config"
RENEW_BEFORE = datetime.timedelta(days=30)
#: The portal's etcd member, on loopback (portal.etcd)
STATE_ENDPOINT = LOCAL_ENDPOINT
WAIT_S = 90
LOAD_TIMEOUT_S = 900


# --- what the answers make (pure) ---------------------------------------------------------------

def hostname_of(ctx) -> str:
    return getattr(ctx.answers, "hostname", None) or ctx.facts.hostname


def registry_address(address: str) -> str:
    return host_port(address, ports.REGISTRY)


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
        ssh_pubkey=SSH_KEY + ".pub", bin_name=bin_name,
        state_endpoints=[STATE_ENDPOINT], state_ca=paths.CLIENTS_CA_CERT,
        state_cert=agent_client.CLIENT_CERT, state_key=agent_client.CLIENT_KEY)


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


def unit_text(address: str, command: str = "serve") -> str:
    """dragonball-portal.service: `portal serve` on the portal, `portal standby` on a device
    (a portal once it is a Swarm manager)."""
    when = ", once this server is a Swarm manager" if command == "standby" else ""
    return f"""# Written by the DragonBall installer; 'dragonball reset' removes it.
[Unit]
Description=DragonBall portal (HTTPS API on {host_port(address, ports.PORTAL)}{when})
Wants=network-online.target docker.service
After=network-online.target docker.service

[Service]
ExecStart={EXECUTABLE} portal {command} --config {settings_mod.CONFIG_FILE}
Restart=always
RestartSec=2
TimeoutStopSec=15
UMask=0077

[Install]
WantedBy=multi-user.target
"""

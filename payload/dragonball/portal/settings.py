"""The portal's settings: one YAML file, ``/etc/dragonball/portal/portal.yaml``, written by
the installer (dragonball.installer.portal.service) and read by `dragonball portal serve` and
`dragonball enroll`. Secrets are never in it: it names the files that hold them.

    address: 10.0.0.5            # the portal's address: bound, and handed to devices
    port: 8443
    hostname: s1
    cluster_name: plant-a
    data_dir: /var/lib/dragonball   # the store is <data_dir>/portal/portal.db
    tls_cert: /etc/dragonball/portal/server.crt
    tls_key: /etc/dragonball/portal/server.key
    ca_cert: /etc/dragonball/ca/ca.crt
    registry: 10.0.0.5:5000
    registry_credentials: /etc/dragonball/portal/registry.json   # {"username", "password"}
    ssh_pubkey: /etc/dragonball/portal/ssh/id_ed25519.pub      # optional
    docker_socket: /var/run/docker.sock
    bin_name: DragonBall-0.1.0.bin  # what the join command tells people to run
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os

import yaml

from dragonball.errors import InvalidInput, PortalError
from dragonball.portal.store import DB_NAME
from dragonball.shared import fingerprints, paths, ports
from dragonball.shared.addresses import host_port

CONFIG_DIR = paths.PORTAL_CONFIG_DIR
CONFIG_FILE = f"{CONFIG_DIR}/portal.yaml"
CA_DIR = paths.CA_DIR


class SettingsError(PortalError, InvalidInput):
    """The portal's settings file is missing or wrong."""


@dataclasses.dataclass(frozen=True)
class Settings:
    address: str
    tls_cert: str
    tls_key: str
    ca_cert: str
    registry: str
    registry_credentials: str
    port: int = ports.PORTAL
    hostname: str = ""
    cluster_name: str = ""
    data_dir: str = paths.DATA_DIR
    ssh_pubkey: str | None = None
    docker_socket: str = "/var/run/docker.sock"
    bin_name: str = "DragonBall.bin"
    #: The replicated state store (etcd on the managers, docs/portal-ha.md): its client
    #: URLs, this manager's first, and the controllers' client certificate it accepts.
    #: Empty: the store is this server's SQLite alone (tests, and installs before 12).
    state_endpoints: list = dataclasses.field(default_factory=list)
    state_ca: str = ""
    state_cert: str = ""
    state_key: str = ""

    @property
    def ca_key(self) -> str:
        """The cluster CA's key, beside its certificate (it signs the devices' identities)."""
        return os.path.join(os.path.dirname(self.ca_cert), "ca.key")

    @property
    def db_path(self) -> str:
        return os.path.join(self.data_dir, "portal", DB_NAME)

    @property
    def url(self) -> str:
        return f"https://{host_port(self.address, self.port)}"

    @property
    def portal_argument(self) -> str:
        """What `--portal` a joining server gets: the address, with the port if not 8443."""
        return self.address if self.port == ports.PORTAL else host_port(self.address, self.port)

    @property
    def manager_address(self) -> str:
        return host_port(self.address, ports.SWARM_MANAGEMENT)

    def to_yaml(self) -> str:
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


_REQUIRED = ("address", "tls_cert", "tls_key", "ca_cert", "registry", "registry_credentials")


def parse(text: str, where: str = "the settings") -> Settings:
    """Settings from YAML text; every problem listed at once."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SettingsError(f"{where} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise SettingsError(f"{where} must be a mapping of settings")
    known = {f.name for f in dataclasses.fields(Settings)}
    problems = [f"unknown setting {k!r}" for k in data if k not in known]
    problems += [f"{k} is missing" for k in _REQUIRED if not data.get(k)]
    if "port" in data and (not isinstance(data["port"], int) or not 0 < data["port"] < 65536):
        problems.append(f"port {data['port']!r} is not a TCP port")
    if data.get("address"):
        try:
            ipaddress.ip_address(str(data["address"]))
        except ValueError:
            problems.append(f"address {data['address']!r} is not an IP address")
    endpoints = data.get("state_endpoints")
    if endpoints is not None and (not isinstance(endpoints, list) or not all(
            isinstance(e, str) and e.startswith("https://") for e in endpoints)):
        problems.append("state_endpoints must be a list of https:// URLs")
    if endpoints and not all(data.get(k) for k in ("state_ca", "state_cert", "state_key")):
        problems.append("state_endpoints needs state_ca, state_cert and state_key")
    if problems:
        raise SettingsError(f"{where}: " + "; ".join(problems),
                            "the installer writes this file: run the install again, or fix it")
    return Settings(**{k: v for k, v in data.items() if v is not None})


def load(path: str = CONFIG_FILE) -> Settings:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise SettingsError(f"cannot read the portal settings {path}: {e.strerror}",
                            "run this on the portal server, as root (the installer wrote "
                            f"{CONFIG_FILE}), or give --config FILE") from e
    return parse(text, path)


def read_registry_credentials(path: str, account: str = "push") -> tuple[str, str]:
    """(username, password) from the 0600 JSON file the installer wrote: the portal's own
    account ("push": it alone may push and delete), or the one every server pulls with
    ("pull"; a file of before the pull account holds one account, used for both)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if account == "pull":
            data = data.get("pull") or data
        return str(data["username"]), str(data["password"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise SettingsError(f"cannot read the registry credentials {path}",
                            "run the install again on the portal: it writes them") from e


def ca_fingerprint(settings: Settings) -> str:
    """The cluster CA's fingerprint (what a joining server pins); SettingsError naming the
    file when it cannot be read."""
    try:
        with open(settings.ca_cert, "rb") as f:
            return fingerprints.of_certificate(f.read())
    except OSError as e:
        raise SettingsError(f"cannot read the cluster CA {settings.ca_cert}: {e.strerror}",
                            "run this as root on the portal") from e

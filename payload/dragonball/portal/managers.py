"""A manager's bundle: what a server promoted to Swarm manager needs to run etcd and the
portal (docs/portal.md, "On every manager"). Made by a portal (portal/manager_api.py, the
route `POST /api/v1/devices/{id}/manager`), checked and written by the new manager's
`dragonball portal standby` (installer/standby.py). Pure but for the keys it generates.

    {"cluster_ca": {cert, key}, "clients_ca": {cert, key},   the CAs (a manager issues too)
     "portal_tls": {cert, key},                             its portal's HTTPS certificate
     "etcd": {cert, key, name, peer_url, initial_cluster},  its etcd member
     "controller_client": {cert, key},                      the agents' and etcd's client
     "registry_credentials": "<registry.json>", "ssh_pubkey": "...",
     "settings": {...}}                                     its portal.yaml (its own address)

Every manager is a full portal, so it holds what the first one holds: both CAs' keys
included (they stay 0600 on the managers only; a device never gets one).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dragonball import pki
from dragonball.portal import settings as settings_mod
from dragonball.shared import ports
from dragonball.shared.addresses import host_port

LOCAL_ENDPOINT = f"https://127.0.0.1:{ports.ETCD_CLIENT}"
PAIRS = ("cluster_ca", "clients_ca", "portal_tls", "etcd", "controller_client")


def peer_url(address: str) -> str:
    """Where an etcd member's peers reach it."""
    return f"https://{host_port(address, ports.ETCD_PEER)}"


def client_url(address: str) -> str:
    """Where an etcd member's clients (the managers' portals) reach it."""
    return f"https://{host_port(address, ports.ETCD_CLIENT)}"


def initial_cluster(members: list, name: str, own_peer_url: str) -> str:
    """etcd's --initial-cluster for a member joining `members` (etcd.Member, itself among
    them, unnamed until it starts): ``name=peerURL,...``. A member added by another
    manager that has not started yet has no name either: it is left out (etcd needs a
    name per URL), and that manager's own string names it."""
    parts = []
    for member in members:
        own = own_peer_url in member.peer_urls
        member_name = name if own else member.name
        parts += [f"{member_name}={url}" for url in member.peer_urls if member_name]
    if not any(own_peer_url in m.peer_urls for m in members):
        parts.append(f"{name}={own_peer_url}")
    return ",".join(parts)


def state_endpoints(members: list, own_address: str) -> list[str]:
    """The etcd client URLs a manager's portal tries, its own member (on loopback) first."""
    own = {client_url(own_address), LOCAL_ENDPOINT}
    others = [url for m in members for url in m.client_urls
              if url not in own and "127.0.0.1" not in url]
    return [LOCAL_ENDPOINT, *dict.fromkeys(others)]


def certificate_names(address: str, hostname: str) -> tuple[list, list]:
    """(IP SANs, DNS SANs) of a manager's portal and etcd certificates."""
    ips = list(dict.fromkeys([address, "127.0.0.1"]))
    return ips, [n for n in dict.fromkeys([hostname, "localhost"]) if n]


@dataclasses.dataclass(frozen=True)
class Sources:
    """What the answering portal hands on: its CAs, the controllers' client certificate,
    the registry's credential file and the portal's ssh public key."""

    cluster_ca: pki.KeyPair
    clients_ca: pki.KeyPair
    controller: pki.KeyPair
    registry_credentials: str = dataclasses.field(repr=False)
    ssh_pubkey: str | None = None


def _pair(pair: pki.KeyPair) -> dict:
    return {"cert": pair.cert_pem.decode(), "key": pair.key_pem.decode()}


def make_bundle(sources: Sources, settings: settings_mod.Settings, hostname: str,
                address: str, members: list) -> dict:
    """The bundle of the manager `hostname` at `address`, once its etcd member is added
    (`members`: the cluster's members, itself among them)."""
    ips, dns = certificate_names(address, hostname)
    own_peer = peer_url(address)
    own = dataclasses.replace(settings, address=address, hostname=hostname,
                              state_endpoints=state_endpoints(members, address))
    return {
        "cluster_ca": _pair(sources.cluster_ca),
        "clients_ca": _pair(sources.clients_ca),
        "portal_tls": _pair(pki.issue_server_cert(sources.cluster_ca, "DragonBall portal",
                                                  ips=ips, dns_names=dns)),
        "etcd": {**_pair(pki.issue_peer_cert(sources.clients_ca, f"etcd {hostname}", ips=ips,
                                             dns_names=dns)),
                 "name": hostname, "peer_url": own_peer,
                 "initial_cluster": initial_cluster(members, hostname, own_peer)},
        "controller_client": _pair(sources.controller),
        "registry_credentials": sources.registry_credentials,
        "ssh_pubkey": sources.ssh_pubkey,
        "settings": dataclasses.asdict(own),
    }


# --- the check (on the new manager, before it writes anything) --------------------------------

def _pair_problems(doc: dict, name: str) -> list[str]:
    pair = doc.get(name)
    if not isinstance(pair, dict) or not all(isinstance(pair.get(k), str) for k in
                                             ("cert", "key")):
        return [f"{name}: no certificate and key"]
    try:
        cert = x509.load_pem_x509_certificate(pair["cert"].encode())
        key = serialization.load_pem_private_key(pair["key"].encode(), password=None)
    except (ValueError, TypeError):
        return [f"{name}: not a PEM certificate and key"]
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        return [f"{name}: the key is not the certificate's"]
    return []


def _issued_by(doc: dict, leaf: str, ca: str, address: str | None) -> list[str]:
    cert = x509.load_pem_x509_certificate(doc[leaf]["cert"].encode())
    try:
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(doc[ca]["cert"].encode()))
    except (ValueError, TypeError, Exception):  # noqa: BLE001 (InvalidSignature is not either)
        return [f"{leaf}: not signed by {ca}"]
    if address is None:
        return []
    try:
        ips = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.IPAddress)
    except x509.ExtensionNotFound:
        ips = []
    return [] if ipaddress.ip_address(address) in ips else [f"{leaf}: does not name {address}"]


def check_bundle(doc: object, address: str) -> list[str]:
    """Every problem of a bundle for the manager at `address` (none: it may be written)."""
    if not isinstance(doc, dict):
        return ["the answer is not a JSON object"]
    problems = [p for name in PAIRS for p in _pair_problems(doc, name)]
    if not problems:
        problems += _issued_by(doc, "portal_tls", "cluster_ca", address)
        problems += _issued_by(doc, "etcd", "clients_ca", address)
        problems += _issued_by(doc, "controller_client", "clients_ca", None)
    etcd = doc.get("etcd") if isinstance(doc.get("etcd"), dict) else {}
    if not all(isinstance(etcd.get(k), str) and etcd.get(k) for k in
               ("name", "peer_url", "initial_cluster")):
        problems.append("etcd: no name, peer_url or initial_cluster")
    elif f"{etcd['name']}={etcd['peer_url']}" not in etcd["initial_cluster"].split(","):
        problems.append("etcd: the initial cluster does not name this member")
    try:
        credentials = json.loads(doc.get("registry_credentials") or "")
        if not (credentials.get("username") and credentials.get("password")):
            raise ValueError
    except (ValueError, TypeError, AttributeError):
        problems.append("registry_credentials: not the registry's {username, password}")
    problems += _settings_problems(doc.get("settings"), address)
    return problems


def _settings_problems(data: object, address: str) -> list[str]:
    try:
        settings = settings_mod.parse(yaml.safe_dump(data), "settings")
    except settings_mod.SettingsError as e:
        return [e.message]
    problems = [] if settings.address == address else [
        f"settings: the address is {settings.address}, not {address}"]
    if not settings.state_endpoints:
        problems.append("settings: no state_endpoints (the portal's replicated store)")
    return problems

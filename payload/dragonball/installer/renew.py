"""`dragonball certs renew`: DragonBall's own certificates issued again from their CA, and
picked up without an outage (docs/certificates.md).

    portal    /etc/dragonball/portal/server.*: the same names; the serving portal loads it
              into its TLS context within 5 s (portal.serve.watch_certificate): no restart
    registry  /etc/dragonball/registry/server.*: the same names; the registry container
              restarted (about a second without pulls: Swarm retries a failed pull)
    agents    this server's agent identity (the same address, a new key) and the portal's
              client certificate; the global service updated one server at a time (`docker
              service update --force`: each agent restarts on its own and reads its
              server's identity again, the others answer); a device's identity, made at its
              enrollment and valid 825 days, is renewed by enrolling it again (`dragonball
              rejoin`)

Without `force`, only what ends within RENEW_BEFORE (30 days) or no longer fits is
issued again, so running it from cron is harmless. The CAs themselves are not renewed here
(docs/certificates.md, "The CAs"). Runs on the portal as root.
"""

from __future__ import annotations

import datetime
import logging
import re
import socket

from cryptography import x509

from dragonball import agent_client, pki
from dragonball.errors import InstallerError, InvalidInput, PkiError
from dragonball.installer import agent
from dragonball.installer.portal import cluster as portal_cluster
from dragonball.installer.portal import layout
from dragonball.shared import paths

log = logging.getLogger(__name__)

TARGETS = ("portal", "registry", "agents")


def names_of(cert_pem: bytes) -> tuple[list[str], list[str]]:
    """(IP SANs, DNS SANs) of a certificate: a renewed one names the same (pure)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ([str(ip) for ip in san.get_values_for_type(x509.IPAddress)],
            list(san.get_values_for_type(x509.DNSName)))


def _common_name(cert_pem: bytes) -> str:
    names = x509.load_pem_x509_certificate(cert_pem).subject.get_attributes_for_oid(
        x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def due(pair: pki.KeyPair | None, ca_pem: bytes, now: datetime.datetime | None = None) -> bool:
    """Whether a certificate must be issued again: missing, not from this CA, its key not
    its own, or 30 days or less left (pure)."""
    if pair is None:
        return True
    try:
        ips, dns = names_of(pair.cert_pem)
    except (ValueError, x509.ExtensionNotFound):
        return True
    return not portal_cluster.cert_fits(pair, ca_pem, ips, dns, now)


def renew(host, targets=TARGETS, force: bool = False, progress=None) -> dict:
    """Renew `targets`; {target: "renewed" | "kept"}."""
    say = progress or (lambda text: log.info("%s", text))
    ca = portal_cluster.read_pair(host, layout.CA_CERT, layout.CA_KEY)
    if ca is None:
        raise InstallerError(f"the cluster CA's key ({layout.CA_KEY}) is not on this server",
                             "run 'dragonball certs renew' on the portal, as root")
    done = {}
    for target in targets:
        done[target] = {"portal": _portal, "registry": _registry,
                        "agents": _agents}[target](host, ca, force, say)
    return done


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class CertRequestInvalid(InstallerError, InvalidInput):
    """`certs issue` was given a bad name, address or lifetime; nothing was issued."""


def issue_for_app(host, name: str, dns: list[str], ips: list[str], days: int) -> pki.KeyPair:
    """A server certificate for an app's Service (`certs issue`), signed by the cluster CA:
    what its clients trust once they trust the cluster CA (docs/service.md, TLS). Names are
    checked before the CA is read; nothing is written here."""
    if not NAME.match(name):
        raise CertRequestInvalid(f"{name!r} is not a certificate name",
                           "letters, digits, . _ - (the app's service, e.g. web)")
    if not (dns or ips):
        raise CertRequestInvalid("a certificate needs at least one --dns or --ip",
                           "the names clients use: --dns wiki.example.com --ip 10.0.0.50")
    if not 1 <= days <= pki.SERVER_DAYS:
        raise CertRequestInvalid(f"--days {days} is out of range",
                           f"1 to {pki.SERVER_DAYS} (the longest browsers accept)")
    try:
        pki.subject_alt_names(ips, dns)      # a bad address, before the CA is read
    except PkiError as e:
        raise CertRequestInvalid(e.message, e.hint) from e
    ca = portal_cluster.read_pair(host, layout.CA_CERT, layout.CA_KEY)
    if ca is None:
        raise InstallerError(f"the cluster CA's key ({layout.CA_KEY}) is not on this server",
                             "run it on the portal, as root")
    return pki.issue_server_cert(ca, name, ips=ips, dns_names=dns, days=days)


def _server(host, ca, cert: str, key: str, name: str, force: bool) -> bool:
    pair = portal_cluster.read_pair(host, cert, key)
    if not force and not due(pair, ca.cert_pem):
        return False
    ips, dns = names_of(pair.cert_pem) if pair else ([], [])
    if not (ips or dns):
        raise InstallerError(f"{cert} is missing: no names to renew it with",
                             "run the portal's install again: it makes it")
    renewed = pki.issue_server_cert(ca, f"DragonBall {name}", ips=ips, dns_names=dns)
    pki.write_pem_files(renewed, host.path(cert), host.path(key))
    return True


def _portal(host, ca, force: bool, say) -> str:
    if not _server(host, ca, layout.PORTAL_CERT, layout.PORTAL_KEY, "portal", force):
        return "kept"
    say("portal: new certificate written; the serving portal loads it within 5 s")
    return "renewed"


def _registry(host, ca, force: bool, say) -> str:
    cert, key = paths.REGISTRY_CERT, f"{layout.REGISTRY_DIR}/server.key"
    if not _server(host, ca, cert, key, "registry", force):
        return "kept"
    say(f"registry: new certificate; docker restart {layout.REGISTRY_CONTAINER}")
    host.run(["docker", "restart", layout.REGISTRY_CONTAINER], timeout=120)
    return "renewed"


def _agents(host, ca, force: bool, say) -> str:
    clients_ca = portal_cluster.read_pair(host, agent.CLIENTS_CA_CERT, agent.CLIENTS_CA_KEY)
    if clients_ca is None:
        raise InstallerError(f"the agents' clients CA ({agent.CLIENTS_CA_CERT}) is missing",
                             "run the portal's install again: it makes it")
    server = portal_cluster.read_pair(host, agent.AGENT_CERT, agent.AGENT_KEY)
    client = portal_cluster.read_pair(host, agent_client.CLIENT_CERT, agent_client.CLIENT_KEY)
    if not force and not due(server, ca.cert_pem) and not due(client, clients_ca.cert_pem):
        return "kept"
    ips, _ = names_of(server.cert_pem) if server else ([], [])
    if not ips:
        raise InstallerError(f"{agent.AGENT_CERT} is missing or names no address: nothing to "
                             "renew this server's agent identity with",
                             "run the portal's install again: it makes it")
    hostname = _common_name(server.cert_pem) or socket.gethostname()
    pki.write_pem_files(agent_client.issue_agent_cert(ca, ips[0], hostname),
                        host.path(agent.AGENT_CERT), host.path(agent.AGENT_KEY))
    pki.write_pem_files(agent_client.issue_client_cert(clients_ca),
                        host.path(agent_client.CLIENT_CERT), host.path(agent_client.CLIENT_KEY))
    say(f"agents: new certificates; {agent.SERVICE} updated one server at a time")
    roll_agent_secrets(host)
    return "renewed"


def roll_agent_secrets(host) -> None:
    """The agents onto the clients' CA as it is now and this server's identity as it is now,
    without removing the service: a new secret if the CA changed, then `docker service
    update --force` (one server at a time, each agent restarted on its own and reading its
    server's identity again), then the old secrets removed (`dragonball certs renew`)."""
    current = portal_cluster.docker_json(host, ["docker", "service", "inspect", agent.SERVICE])
    if not current:
        raise InstallerError(f"the service {agent.SERVICE} is not running",
                             "run the portal's install again: it starts it")
    spec = current[0]["Spec"]
    contents = {"ca": host.read_bytes(agent.CLIENTS_CA_CERT)}
    wanted = {kind: agent.secret_name(kind, data) for kind, data in contents.items()}
    for kind, name in wanted.items():
        if not agent.docker_has(host, "secret", "inspect", name):
            host.run(["docker", "secret", "create", "--label", f"{agent.LABEL}=agent", name,
                      "-"], stdin=contents[kind], timeout=60)
    image = spec["TaskTemplate"]["ContainerSpec"]["Image"].split("@")[0]
    _, password = portal_cluster.read_pull_credentials(host) or ("", "")
    config = agent.config_hash(image, wanted, password, host.read_bytes(agent.AGENT_CERT))
    host.run(agent.secret_update_argv(agent.service_secrets(spec), wanted, config, force=True),
             timeout=600,
             hint=f"see 'docker service ps --no-trunc {agent.SERVICE}'")
    agent.remove_stale_secrets(host, set(wanted.values()))

"""The certificates the portal watches, and their warnings (docs/certificates.md).

`local_facts` reads DragonBall's own certificates on the portal (files); `swarm_facts` asks
the Swarm (this engine's node certificate, the Swarm's root CA, and the window in which a
down node's certificate ends: the Engine API does not give other nodes' certificates).
`report` puts both together with their warnings: what `GET /api/v1/certificates`,
`dragonball status` and the dashboard show.
"""

from __future__ import annotations

import datetime
import logging

from dragonball import agent_client, pki
from dragonball.errors import DragonBallError
from dragonball.shared import paths
from dragonball.shared.cert_expiry import CertFact, down_node_fact, warnings
from dragonball.swarm.model import parse_time

log = logging.getLogger(__name__)

RENEW = "'dragonball certs renew' on the portal"
REJOIN = "'dragonball rejoin {hostname}' on the portal"

#: (name, kind, path, how it is renewed) of DragonBall's own certificates on the portal
OWN = (("cluster CA", "ca", paths.CLUSTER_CA_CERT, "docs/certificates.md, 'The CAs'"),
       ("agents' clients CA", "ca", paths.CLIENTS_CA_CERT, RENEW + " --clients-ca"),
       ("portal TLS", "leaf", None, RENEW),
       ("registry TLS", "leaf", paths.REGISTRY_CERT, RENEW),
       ("agent server", "leaf", paths.AGENT_CERT, RENEW),
       ("portal's agent client", "leaf", agent_client.CLIENT_CERT, RENEW))


def local_facts(portal_cert: str, read=None) -> list[CertFact]:
    """DragonBall's own certificates here; a missing or unreadable file is left out."""
    read = read or _read
    facts = []
    for name, kind, path, renew in OWN:
        pem = read(path or portal_cert)
        if pem is None:
            continue
        try:
            facts.append(CertFact(name, kind, pki.not_after(pem), renew=renew))
        except DragonBallError:
            log.warning("%s (%s) is not a certificate", path or portal_cert, name)
    return facts


def swarm_facts(swarm, hostname: str, read=None) -> list[CertFact]:
    """This node's Swarm certificate, the Swarm's root CA, and each down node's window."""
    read = read or _read
    lifetime, trust_root = swarm.ca_config()
    facts = []
    own = read(paths.SWARM_NODE_CERT)
    if own:
        facts.append(CertFact("Swarm node certificate", "swarm-node", pki.not_after(own),
                              server=hostname, renew="(Swarm renews it by itself)"))
    if trust_root:
        facts.append(CertFact("Swarm root CA", "ca", pki.not_after(trust_root.encode()),
                              renew="'docker swarm ca --rotate' (docs/certificates.md)"))
    for node in swarm.nodes():
        if node.ready or not node.updated or not lifetime:
            continue
        facts.append(down_node_fact(node.hostname, parse_time(node.updated), lifetime,
                                    REJOIN.format(hostname=node.hostname)))
    return facts


def identity_facts(identities: dict) -> list[CertFact]:
    """Each device's agent identity ({hostname: certificate PEM}, as the portal signed it at
    enrollment): renewed by enrolling that device again, so its warning says how."""
    facts = []
    for hostname, pem in sorted(identities.items()):
        try:
            end = pki.not_after(pem.encode() if isinstance(pem, str) else pem)
        except DragonBallError:
            log.warning("the identity kept for %s is not a certificate", hostname)
            continue
        facts.append(CertFact("agent identity", "leaf", end, server=hostname,
                              renew=REJOIN.format(hostname=hostname)))
    return facts


def report(portal_cert: str, swarm, hostname: str,
           now: datetime.datetime | None = None, identities: dict | None = None) -> dict:
    """{certificates: [...], warnings: [...], note?}: the answer of the API route;
    `identities`: the devices' agent certificates the store keeps ({hostname: PEM})."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    facts, note = local_facts(portal_cert) + identity_facts(identities or {}), ""
    try:
        facts += swarm_facts(swarm, hostname)
    except DragonBallError as e:
        note = f"the Swarm's certificates cannot be read: {e.message}"
    out = {"certificates": [f.to_dict() for f in facts],
           "warnings": [w.to_dict() for w in warnings(facts, now)]}
    return out | ({"note": note} if note else {})


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None

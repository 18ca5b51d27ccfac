"""The controllers' CA and what it signs, made on the portal and kept while they fit: the CA
of the agents' clients (the controllers: the managers' portals), the controllers' client
certificate, and a manager's etcd member certificate.

Who may drive an agent or talk to etcd is decided in the TLS handshake (DESIGN.md, day 2,
answer 5): both trust this CA alone for clients, a CA apart from the cluster CA that signs
nothing but the controllers' certificates, so no device's certificate can drive an agent
or read the portal's state. Made by the first step that needs it (portal.etcd, before the
node agent's agent.pki): the same files, kept.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dragonball import agent_client, pki
from dragonball.shared import paths
from dragonball.installer.portal.cluster import cert_fits, read_pair, write_private
from dragonball.installer.portal.layout import RENEW_BEFORE

CLIENTS_CA_CERT, CLIENTS_CA_KEY = paths.CLIENTS_CA_CERT, paths.CLIENTS_CA_KEY
CLIENTS_CA_NAME = "DragonBall agent clients CA"


def ca_fits(pair: pki.KeyPair, now: datetime.datetime | None = None) -> bool:
    """Whether a CA may stay: a CA certificate, its key its own, more than 30 days left."""
    try:
        cert = x509.load_pem_x509_certificate(pair.cert_pem)
        key = serialization.load_pem_private_key(pair.key_pem, password=None)
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (ValueError, TypeError, x509.ExtensionNotFound):
        return False
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return (is_ca and key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)
            and cert.not_valid_after_utc - now > RENEW_BEFORE)


def make_clients_ca(ctx, undo) -> pki.KeyPair:
    """The CA of the agents' clients, kept while it fits (ca_fits), made anew otherwise
    (the controllers' certificates are then issued again, and the agent's `ca` secret
    changes with it)."""
    host = ctx.host
    existing = read_pair(host, CLIENTS_CA_CERT, CLIENTS_CA_KEY)
    if existing and ca_fits(existing):
        return existing
    ctx.progress.update("the CA of the agents' clients")
    pair = pki.create_ca(CLIENTS_CA_NAME)
    write_private(ctx, undo, CLIENTS_CA_KEY, pair.key_pem.decode())
    write_private(ctx, undo, CLIENTS_CA_CERT, pair.cert_pem.decode(), 0o644)
    return pair


def keep_or_issue(ctx, undo, cert: str, key: str, signer: pki.KeyPair, names: tuple,
                  issue) -> None:
    """The certificate at `cert`/`key`, kept if it fits (its CA, `names` = (ips, dns),
    30 days left), else `issue()`d and written (key 0600)."""
    existing = read_pair(ctx.host, cert, key)
    if existing and cert_fits(existing, signer.cert_pem, *names):
        return
    ctx.progress.update(f"a certificate: {cert}")
    pair = issue()
    write_private(ctx, undo, key, pair.key_pem.decode())
    write_private(ctx, undo, cert, pair.cert_pem.decode(), 0o644)


def make_controller_client(ctx, undo, clients_ca: pki.KeyPair) -> None:
    """The controllers' client certificate (the agents' and etcd's client)."""
    keep_or_issue(ctx, undo, agent_client.CLIENT_CERT, agent_client.CLIENT_KEY, clients_ca,
                  ([], [agent_client.CLIENT_NAME]),
                  lambda: agent_client.issue_client_cert(clients_ca))

"""The route by which a server promoted to Swarm manager becomes a portal too (docs/portal.md,
"On every manager"):

    POST /api/v1/devices/{id}/manager     Authorization: Bearer <device token>
         -> its manager bundle (portal/managers.py)

Asked by `dragonball portal standby` on the new manager (installer/standby.py). Refused
(403) unless the device's Swarm node is a manager now: Swarm decides who is a manager
(portal/swarm.py promotes), this route only follows it. The device's etcd member is added
as a learner (it counts for no quorum until it caught up and its standby promotes it), so
a manager that never starts its member costs the cluster nothing. Asking again adds
nothing more: the member with that peer URL is there already.

The bundle holds both CAs' keys: every manager is a full portal, and the device token is
proof enough only together with a manager's node (the Swarm's manager token was needed to
get there). Nothing of the bundle is logged.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response

from dragonball import agent_client, pki
from dragonball.errors import Denied, DragonBallError, PortalError, Unavailable
from dragonball.etcd import Etcd
from dragonball.portal import managers
from dragonball.portal.answers import error_response
from dragonball.portal.auth import Forbidden, NotAuthenticated
from dragonball.portal.settings import Settings
from dragonball.portal.store import Device, Store
from dragonball.shared import device_proof, paths
from dragonball.swarm import SwarmError

log = logging.getLogger("dragonball.portal")


class NotAManager(PortalError, Denied):
    """The device's Swarm node is not a manager (or has not joined): no manager bundle."""


class NoReplicatedStore(PortalError, Unavailable):
    """This portal cannot hand out a manager bundle now: no replicated store, or a file it
    hands on cannot be read."""


@dataclasses.dataclass(frozen=True)
class Files:
    """Where the answering portal reads what it hands on (the installer's paths)."""

    cluster_ca: tuple = (paths.CLUSTER_CA_CERT, paths.CLUSTER_CA_KEY)
    clients_ca: tuple = (paths.CLIENTS_CA_CERT, paths.CLIENTS_CA_KEY)
    controller: tuple = (agent_client.CLIENT_CERT, agent_client.CLIENT_KEY)


async def raw_body(request: Request) -> bytes:
    """The request's body as it came (what a device signed); Starlette keeps it, so the
    handler's JSON model reads the same bytes."""
    return await request.body()


@dataclasses.dataclass(frozen=True)
class Call:
    """What a device's signature covers: the method, the path, the body, the headers."""

    method: str
    path: str
    body: bytes
    headers: Mapping[str, str]

    @classmethod
    def of(cls, request: Request, body: bytes) -> Call:
        return cls(request.method, request.url.path, body, request.headers)


def device_or_refusal(store: Store, device_id: int, authorization: str | None,
                      call: Call | None = None, now: float | None = None) -> Device | Response:
    """The device whose token `Authorization: Bearer` carries, if it is device `device_id`
    and, when the portal signed an identity for it, `call` is signed with that identity's
    key (shared/device_proof.py); else the refusal (401 no or an unknown token or no valid
    signature, 403 another device's)."""
    scheme, _, token = (authorization or "").partition(" ")
    device = store.device_by_token(token.strip()) if scheme.lower() == "bearer" else None
    if device is None:
        return error_response(NotAuthenticated(
            "a device token is needed: 'Authorization: Bearer <the device_token enroll "
            "returned>'"), {"WWW-Authenticate": "Bearer"})
    if device.id != device_id:
        return error_response(Forbidden(f"this token is device {device.id}'s, not device "
                                        f"{device_id}'s"))
    identity = store.device_identity(device.id)
    if identity is not None:
        problem = "this call carries no signature" if call is None else device_proof.check(
            identity, call.method, call.path, call.body, call.headers,
            time.time() if now is None else now)
        if problem:
            log.warning("device %d (%s): %s", device.id, device.hostname, problem)
            return error_response(NotAuthenticated(
                f"device {device.id}'s token came without its proof: {problem}"))
    return device


def _read_pair(cert: str, key: str) -> pki.KeyPair:
    try:
        with open(cert, "rb") as c, open(key, "rb") as k:
            return pki.KeyPair(c.read(), k.read())
    except OSError as e:
        raise NoReplicatedStore(f"cannot read {e.filename}: {e.strerror}",
                                "run the portal's install again: it writes it") from e


def _read_text(path: str | None, required: bool = True) -> str | None:
    try:
        with open(path or "", encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        if not required:
            return None
        raise NoReplicatedStore(f"cannot read {path}: {e.strerror}",
                                "run the portal's install again: it writes it") from e


def sources(settings: Settings, files: Files) -> managers.Sources:
    """What this portal hands on, read now (a renewed certificate is the one handed on)."""
    return managers.Sources(
        _read_pair(*files.cluster_ca), _read_pair(*files.clients_ca),
        _read_pair(*files.controller), _read_text(settings.registry_credentials),
        (_read_text(settings.ssh_pubkey, required=False) or "").strip() or None)


def default_etcd(settings: Settings) -> Etcd:
    return Etcd(settings.state_endpoints, settings.state_ca, settings.state_cert,
                settings.state_key)


def mount(app: FastAPI, store: Store, settings: Settings, cluster, etcd_factory=None,
          files: Files = Files()) -> None:
    """Add the manager route; `etcd_factory()` gives an etcd client (tests: a fake)."""
    etcd_factory = etcd_factory or (lambda: default_etcd(settings))
    lock = threading.Lock()  # etcd takes one learner at a time

    @app.post("/api/v1/devices/{device_id}/manager")
    def manager(device_id: int, request: Request,
                authorization: str | None = Header(default=None),
                raw: bytes = Depends(raw_body)) -> Response:
        device = device_or_refusal(store, device_id, authorization, Call.of(request, raw))
        if isinstance(device, Response):
            return device
        try:
            refused = _not_a_manager(cluster, device)
            if refused:
                return error_response(NotAManager(refused))
            if not settings.state_endpoints:
                raise NoReplicatedStore(
                    "this portal has no replicated store (state_endpoints in its settings)",
                    "install the portal with this release again: it starts etcd")
            handed = sources(settings, files)
            with lock, etcd_factory() as etcd:
                members = etcd.add_member(managers.peer_url(device.address), learner=True)
            bundle = managers.make_bundle(handed, settings, device.hostname, device.address,
                                          members)
        except SwarmError as e:
            return error_response(e, message=f"the portal cannot reach its Swarm now "
                                  f"({e.message}): try again in a minute")
        except DragonBallError as e:
            log.error("manager bundle of device %d: %s", device.id, e.message)
            return error_response(e)
        store.record("device.manager", "portal", request.client.host if request.client
                     else None, {"device_id": device.id, "hostname": device.hostname})
        log.info("device %d (%s) got its manager bundle: etcd member %s added", device.id,
                 device.hostname, managers.peer_url(device.address))
        return JSONResponse(bundle)


def _not_a_manager(cluster, device: Device) -> str | None:
    """Why `device` gets no bundle, or None when its node is a Swarm manager now."""
    if not device.node_id:
        return f"device {device.id} ({device.hostname}) has not joined the Swarm"
    node = cluster.node(device.node_id)
    if node is None or not node.manager:
        return (f"device {device.id} ({device.hostname}) is not a Swarm manager: only "
                "managers run a portal")
    return None

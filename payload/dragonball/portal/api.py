"""The portal's HTTP API (docs/enrollment.md is the contract; docs/portal.md the rest).

    GET  /healthz                          200 {"status": "ok"}
    GET  /api/v1/ca                        the cluster CA (PEM), no auth: pinned by fingerprint
    POST /api/v1/enroll                    {code, hostname, address} -> what a device needs
    POST /api/v1/devices/{id}/joined       {node_id}, Authorization: Bearer <device token>
    POST /api/v1/devices/{id}/manager      the same token: a manager's bundle (manager_api)
    GET  /api/v1/devices                   the admin: basic auth, an API token or a session
    POST /api/v1/codes                     {ttl?} -> a one-time code and the join command
    GET  /api/v1/certificates              the certificates' ends and warnings (the admin)
    GET  /api/v1/portals                   every manager's portal URL (portal.portals)

Authentication (sessions, basic, API tokens, CSRF) is dragonball.portal.auth; the web
pages, login and tokens are dragonball.portal.web, mounted here.

Every error is JSON ``{"error", "hint", "category", ...}`` with the HTTP status of its category
(portal.answers; README.md, "Exit statuses"). Failed enrollment codes and failed admin logins
are counted per client address in the store's events: 10 in 10 minutes and that address
gets 429 (with Retry-After) until the oldest of them is 10 minutes old. No secret (code,
token, password, join token) is ever logged or put in an event.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from dragonball import __version__, agent_client, pki
from dragonball.errors import DragonBallError, PkiError
from dragonball.agent_client import AgentClient
from dragonball.portal.identity_pins import IdentityPins
from dragonball.portal import apps_api, manager_api, removal, versions
from dragonball.portal import demotion as demotion_mod
from dragonball.portal import firewall as firewall_mod
from dragonball.portal import auth as auth_mod
from dragonball.portal import settings as settings_mod
from dragonball.portal import portals as portals_mod
from dragonball.portal import web, wiring
from dragonball.portal.answers import error_response
from dragonball.portal.enrollment import parse_duration
from dragonball.portal.errors import CannotSign, RequestInvalid
from dragonball.portal.jobs import Jobs
from dragonball.portal.bodies import CodeRequest, EnrollRequest, JoinedRequest
from dragonball.portal.strangers import stranger_rows
from dragonball.portal.store import CodeRefused, HostnameTaken, Store, StoreError
from dragonball.portal.swarm import (Cluster, NodeNotInSwarm, enrolled_nodes, settle_managers,
                                     wait_ready)
from dragonball.portal.web.sources import SourceError
from dragonball.shared import app_lock, node_labels, overlay
from dragonball.swarm import SwarmError

log = logging.getLogger("dragonball.portal")

FAILURE_LIMIT = 10
FAILURE_WINDOW_S = 600
ENROLL_REFUSED = "enroll.refused"
LOGIN_REFUSED = "login.refused"


class Limiter:
    """Failures per client address in a sliding window, counted in the store's events.

    An attempt takes a place among the failures before it is checked (`attempt`), in one
    SQL statement: a success gives the place back, a failure keeps it. So 20 concurrent
    wrong guesses against a limit of 10 get exactly 10 checks and 10 refusals (checking,
    then recording, let all 20 through). No limiter library fits: `limits` keeps its
    counts in memory or redis, not in the store every portal process shares, and counts
    attempts, with no way to give a success's place back.
    """

    def __init__(self, store: Store, kind: str, limit: int = FAILURE_LIMIT,
                 window_s: float = FAILURE_WINDOW_S) -> None:
        self.store, self.kind, self.limit, self.window_s = store, kind, limit, window_s

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, None when it may now."""
        since = self.store.clock() - self.window_s
        if self.store.count_events(self.kind, client, since) < self.limit:
            return None
        oldest = self.store.oldest_event(self.kind, client, since) or self.store.clock()
        return max(1, int(oldest + self.window_s - self.store.clock()) + 1)

    @contextlib.contextmanager
    def attempt(self, client: str) -> Iterator[Slot | None]:
        """A place for one attempt of `client`, None when it has none left (`retry_after`
        says how long to wait). Leaving without `Slot.failed` gives the place back."""
        event_id = self.store.reserve_event(self.kind, client,
                                            self.store.clock() - self.window_s, self.limit)
        slot = None if event_id is None else Slot(self.store, event_id)
        try:
            yield slot
        finally:
            if slot is not None and not slot.failure:
                self.store.drop_event(event_id)


class Slot:
    """One attempt's place among a client's failures (Limiter.attempt)."""

    def __init__(self, store: Store, event_id: int) -> None:
        self.store, self.event_id, self.failure = store, event_id, False

    def failed(self, reason: str) -> None:
        """The attempt failed: it keeps its place, with `reason` (never a secret)."""
        self.failure = True
        self.store.settle_event(self.event_id, {"reason": reason})


def _cluster_ca(settings: settings_mod.Settings) -> pki.KeyPair:
    """The cluster CA, read at each enrollment (a renewal or a restore may replace it)."""
    with open(settings.ca_cert, "rb") as cert, open(settings.ca_key, "rb") as key:
        return pki.KeyPair(cert.read(), key.read())


def rotate_join_tokens(store: Store, cluster: Cluster) -> bool:
    """A join token works for the devices enrolled and not joined yet only: once none is
    waiting, new tokens (the ones given out join nothing more); whether rotated."""
    if store.pending_joins():
        return False
    try:
        cluster.rotate_join_tokens()
    except SwarmError as e:  # the next join or removal tries again
        log.error("rotating the Swarm's join tokens failed: %s", e.message)
        return False
    store.record("swarm.tokens_rotated", "portal", None, {})
    return True


def create_app(store: Store, settings: settings_mod.Settings, cluster: Cluster | None = None,
               control_factory=None, firewall: firewall_mod.MembersSync | None = None
               ) -> FastAPI:
    """The portal's ASGI app over `store`; `cluster` defaults to the portal's Swarm adapter
    (portal.wiring), `control_factory` (the apps API's and pages' orchestrator Control) to
    the portal's own, over that same adapter; `firewall` (the members sent to the agents,
    ``app.state.firewall``) to one over the store and the portal's agent client."""
    made_here = cluster is None
    cluster = cluster or wiring.swarm(settings)
    with open(settings.ca_cert, "rb") as f:
        ca_pem = f.read().decode()
    # devices get the pull account: only the portal's own may push or delete
    registry_user, registry_password = settings_mod.read_registry_credentials(
        settings.registry_credentials, "pull")
    enroll_limit = Limiter(store, ENROLL_REFUSED)
    login_limit = Limiter(store, LOGIN_REFUSED)
    managers_lock = threading.Lock()  # two joins at once must not both promote
    # a token read by an enroll comes after the rotation, or its device counts as pending
    tokens_lock = threading.Lock()

    app = FastAPI(title="DragonBall portal", version=__version__, docs_url=None,
                  redoc_url=None, openapi_url=None)
    firewall = firewall or firewall_mod.MembersSync(
        store.devices, lambda: [settings.address],
        lambda: AgentClient(pins=IdentityPins(store)))
    app.state.firewall = firewall
    # Offline site: no Swagger UI (it loads its assets from a CDN); the document is served
    # to the admin at /api/v1/openapi.json (web.login).
    auth_mod.install(app, store, login_limit)
    apps_api.mount(app, control_factory or wiring.control_factory(
        store, settings, cluster if made_here else None),
        Jobs(lock_dir=app_lock.LOCK_DIR) if control_factory is None else None)
    web.mount(app, store, settings, control_factory=app.state.control_factory)
    manager_api.mount(app, store, settings, cluster)
    removal.mount(app, store, cluster, changed=lambda: firewall.now(
        firewall_mod.agent_addresses(store.devices())))
    app.state.device_admin.demotion = demotion_mod.Demotion(
        cluster, (lambda: manager_api.default_etcd(settings)) if settings.state_endpoints
        else None, settings.hostname)
    portals_mod.mount(app, cluster, settings)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The offending input is left out: an enroll body holds the code.
        problems = [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg")}
                    for e in exc.errors()]
        text = "; ".join(f"{p['where']}: {p['problem']}" for p in problems)
        return error_response(RequestInvalid(f"invalid request: {text}", problems=problems))

    @app.exception_handler(DragonBallError)
    async def _known(request: Request, exc: DragonBallError) -> JSONResponse:
        # Any handler's known failure (the replicated store without a quorum, a write that
        # lost the race: 503, 409) answers its JSON, never a bare 500. error_response logs
        # the server's own failures; the others are logged here, with the request's path.
        if exc.http_status < 500:
            log.info("%s %s: %s", request.method, request.url.path, exc.message)
        return error_response(exc)

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            store.count_events("health", "-", 0)
        except StoreError as e:
            return error_response(e, message=f"the store does not answer: {e.message}")
        return JSONResponse({"status": "ok"})

    @app.get("/api/v1/ca")
    def ca() -> Response:
        return Response(ca_pem, media_type="application/x-pem-file")

    @app.post("/api/v1/enroll")
    def enroll(body: EnrollRequest, request: Request) -> Response:
        client = _client(request)
        identity = {}
        if body.csr is not None:  # a wrong request is refused before the code is looked at
            try:
                pki.check_csr(body.csr)
            except PkiError as e:
                return error_response(RequestInvalid(f"invalid request: csr: {e.message}",
                                                     e.hint))
            try:  # for the names the portal enrolls, whatever the request asked
                identity["agent_cert"] = agent_client.sign_agent_csr(
                    _cluster_ca(settings), body.csr, body.address, body.hostname).decode()
            except (OSError, PkiError) as e:
                log.error("enroll of %s: cannot sign its identity: %s", body.hostname, e)
                return error_response(CannotSign(
                    f"this portal cannot sign the server's certificate now (the cluster CA "
                    f"{settings.ca_key}: {getattr(e, 'strerror', None) or e})",
                    "try another manager's portal, or run the portal's install again"))
        with enroll_limit.attempt(client) as slot:
            if slot is None:
                wait = enroll_limit.retry_after(client) or 1
                log.warning("enroll from %s refused: too many failed codes", client)
                return error_response(auth_mod.RateLimited(client, wait),
                                      {"Retry-After": str(wait)},
                                      f"too many failed enrollment codes from {client}: try "
                                      f"again in {wait} s")
            try:
                device, token = store.enroll(body.code, body.hostname, body.address, client,
                                             identity.get("agent_cert"))
            except CodeRefused as e:
                slot.failed(e.message)
                log.warning("enroll from %s (%s) refused: %s", client, body.hostname,
                            e.message)
                return error_response(e, message=f"{e.message}: ask the portal for a new one "
                                      "('dragonball enroll' on the portal)")
            except HostnameTaken as e:
                store.record("enroll.conflict", "anonymous", client,
                             {"hostname": body.hostname})
                log.warning("enroll from %s refused: %s", client, e.message)
                return error_response(e, message=f"{e.message}: give this server another "
                                      "hostname, or remove the other device on the portal "
                                      "first")
        try:
            with tokens_lock:
                join_token = cluster.join_token()
        except SwarmError as e:
            log.error("enroll of %s: %s", body.hostname, e.message)
            return error_response(e, message=f"the portal cannot reach its Swarm now "
                                  f"({e.message}): try again in a minute")
        log.info("device %d (%s, %s) enrolled from %s", device.id, device.hostname,
                 device.address, client)
        portals = portals_mod.known_portals(cluster, settings)
        # its Swarm join comes next, to a manager's 2377: open to it there first
        firewall.now(portals)
        return JSONResponse({
            "device_id": device.id,
            "device_token": token,
            "ca_pem": ca_pem,
            "swarm": {"join_token": join_token, "manager_address": settings.manager_address,
                      "role": "worker"},
            "registry": {"address": settings.registry, "username": registry_user,
                         "password": registry_password},
            "labels": device.labels,
            "cluster_name": settings.cluster_name,
            "portals": portals,
            **identity,
        })

    @app.post("/api/v1/devices/{device_id}/joined")
    def joined(device_id: int, body: JoinedRequest, request: Request,
               authorization: str | None = Header(default=None),
               raw: bytes = Depends(manager_api.raw_body)) -> Response:
        client = _client(request)
        device = manager_api.device_or_refusal(store, device_id, authorization,
                                               manager_api.Call.of(request, raw))
        if isinstance(device, Response):
            return device
        try:
            node = cluster.node(body.node_id)
            if node is None:
                return error_response(NodeNotInSwarm(
                    f"node {body.node_id} is not in this Swarm: join it first ('docker swarm "
                    "join'), then report the node ID 'docker info -f {{.Swarm.NodeID}}' gives"))
            first = not (device.state == "joined" and device.node_id == body.node_id)
            device = store.mark_joined(device.id, body.node_id, client)
            # enrolled now: active again if the strangers' watch drained it meanwhile (a
            # report again leaves an admin's drain alone)
            labels = dict(device.labels)
            if body.overlay_encryption is not None:
                labels[overlay.CAPABLE] = overlay.label_value(body.overlay_encryption)
            labels |= node_labels.version_labels(
                body.version, body.release.model_dump() if body.release else None)
            cluster.update_node(body.node_id, labels=labels,
                                availability="active" if first else None)
        except SwarmError as e:
            log.error("device %d joined: %s", device.id, e.message)
            return error_response(e, message=f"the portal cannot reach its Swarm now "
                                  f"({e.message}): try again in a minute")
        log.info("device %d (%s) joined as node %s", device.id, device.hostname, body.node_id)
        promoted: list[str] = []
        if not wait_ready(cluster, body.node_id):
            log.warning("node %s is not ready after 30 s: promotions wait for the next join",
                        body.node_id)
        with managers_lock:
            try:
                promoted = settle_managers(cluster, enrolled_nodes(store.devices()))
            except SwarmError as e:  # the device is in; the next join tries again
                log.error("promoting managers failed: %s", e.message)
                store.record("node.promote_failed", "portal", None, {"error": e.message})
        for node_id in promoted:
            log.info("node %s promoted to manager", node_id)
            store.record("node.promoted", "portal", None, {"node_id": node_id})
        with tokens_lock:
            rotate_join_tokens(store, cluster)
        return JSONResponse({"device_id": device.id, "state": device.state,
                             "node_id": device.node_id, "promoted": promoted})

    @app.get("/api/v1/devices")
    def devices(admin: auth_mod.Principal = Depends(auth_mod.require_admin)) -> Response:
        devices = store.devices()
        try:
            nodes, note = cluster.nodes(), ""
            found = stranger_rows(nodes, devices)
        except SwarmError as e:
            nodes, found = [], []
            note = f"the Swarm's nodes are not known now (nor the versions): {e.message}"
        running = versions.device_versions(devices, nodes)
        return JSONResponse({"devices": [d.public() | running[d.id] for d in devices],
                             "strangers": found} | ({"note": note} if note else {}))

    @app.get("/api/v1/certificates")
    def certs(request: Request,
              admin: auth_mod.Principal = Depends(auth_mod.require_admin)) -> Response:
        """When each certificate ends, and the warnings (docs/certificates.md)."""
        return JSONResponse(request.app.state.sources.certificates())

    @app.post("/api/v1/codes")
    def new_code(request: Request, body: CodeRequest | None = None,
                 admin: auth_mod.Principal = Depends(auth_mod.require_admin)) -> Response:
        """A one-time enrollment code: what `dragonball enroll --json` prints."""
        try:
            ttl_s = parse_duration((body or CodeRequest()).ttl)
        except ValueError as e:
            return error_response(RequestInvalid(f"ttl: {e}"))
        try:
            info = request.app.state.sources.new_enrollment(
                ttl_s, f"{admin.username} (api)", _client(request))
        except SourceError as e:
            return error_response(e)
        return JSONResponse(info)

    return app


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


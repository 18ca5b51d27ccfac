"""The portal's pages. Thin: each asks `Sources` for data, `views` makes the view model,
`pages.render` the HTML. Every route takes `require_admin`.

    GET  /                      dashboard: devices by state, the release, alerts, services
    GET  /dashboard/health      its devices and alerts part (htmx polls it)
    GET  /devices               every server: its versions, agent's metrics, labels, Add device
    GET  /devices/table         the table alone (htmx polls it: live metrics, new devices)
    POST /devices/enrollment    Add device: a one-time code and the command to run
    POST /devices/{name}/remove Remove: a device or a stranger (portal/removal.py)
    GET  /images                what the registry holds
    GET  /events[?before=ID][&kind=upgrade]
                                the audit log, newest first, a page at a time (the
                                upgrades alone: portal/upgrade_audit.py)
    GET  /dashboard/services    its services part: every app's tree, alerts (htmx polls it)

The Services and Placement pages are services_page.py and placement_page.py.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from dragonball.errors import DragonBallError
from dragonball.portal.auth import Principal, client_address, read_form, require_admin
from dragonball.portal.enrollment import parse_duration
from dragonball.portal.errors import RequestInvalid
from dragonball.portal import versions
from dragonball.portal.web import views, views_apps
from dragonball.portal.web.pages import is_htmx, render
from dragonball.portal.web.sources import SourceError, Sources

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

EVENTS_PER_PAGE = 50
#: The Events page's filters: ?kind=upgrade shows the upgrades' history alone.
EVENT_FILTERS = {"upgrade": "upgrade."}
#: What "Add device" offers; the first is the default.
CODE_LIFETIMES = ("24h", "1h", "7d")


def sources(request: Request) -> Sources:
    """The dependency giving a route the app's data sources (a fake in tests)."""
    return request.app.state.sources


def _device_rows(data: Sources, images: bool = False) -> list[views.DeviceRow]:
    """The devices with their metrics and, with `images`, the app images each holds."""
    devices = data.devices()
    joined = [d.address for d in devices if d.state == "joined"]
    holdings = None
    if images:
        try:
            holdings = data.image_holdings()
        except SourceError as e:
            holdings = e.message
    return views.device_rows(devices, data.metrics(joined) if joined else {}, holdings,
                             _versions(data, devices))


def _versions(data: Sources, devices) -> dict:
    """{device id: (DragonBall version, release)} from the nodes' labels; "unknown" when
    the Swarm cannot be read (a page shows what it can)."""
    try:
        nodes = data.nodes()
    except SourceError as e:
        log.info("%s", e.message)
        nodes = []
    return {device_id: versions.version_text(running)
            for device_id, running in versions.device_versions(devices, nodes).items()}


def _health(data: Sources) -> dict:
    rows = _device_rows(data)
    answering = sum(1 for r in rows if r.metrics is not None)
    running = views.version_summary(rows)
    return {"counts": views.state_counts(rows), "answering": answering, "versions": running,
            "alerts": ([running["differ"]] if running["differ"] else []) + views.alerts(rows)
            + views.certificate_alerts(data.certificates())}


@router.get("/")
def dashboard(request: Request, principal: Principal = Depends(require_admin),
              data: Sources = Depends(sources)) -> Response:
    return render(request, "dashboard.html", principal, **_services(data), **_health(data))


def _services(data: Sources) -> dict:
    """Every app's service tree and the alerts of services not healthy, or why not."""
    try:
        services, error = data.services(), None
    except SourceError as e:
        services, error = [], f"{e.message} ({e.hint})" if e.hint else e.message
    return {"services": services, "services_error": error,
            "service_alerts": views_apps.service_alerts(services)}


@router.get("/dashboard/services")
def dashboard_services(request: Request, principal: Principal = Depends(require_admin),
                       data: Sources = Depends(sources)) -> Response:
    return render(request, "_dashboard_services.html", principal, **_services(data))


@router.get("/dashboard/health")
def dashboard_health(request: Request, principal: Principal = Depends(require_admin),
                     data: Sources = Depends(sources)) -> Response:
    return render(request, "_health.html", principal, **_health(data))


def _strangers(request: Request) -> dict:
    """The Swarm's nodes no device is, or why they are not known."""
    try:
        return {"strangers": request.app.state.device_admin.strangers(),
                "strangers_error": None}
    except DragonBallError as e:
        return {"strangers": [], "strangers_error": e.message}


@router.get("/devices")
def devices(request: Request, principal: Principal = Depends(require_admin),
            data: Sources = Depends(sources)) -> Response:
    return render(request, "devices.html", principal, rows=_device_rows(data, images=True),
                  lifetimes=CODE_LIFETIMES, enrollment=None, error=None,
                  removed=None, remove_error=None, **_strangers(request))


@router.get("/devices/table")
def devices_table(request: Request, principal: Principal = Depends(require_admin),
                  data: Sources = Depends(sources)) -> Response:
    return render(request, "_devices_table.html", principal,
                  rows=_device_rows(data, images=True), **_strangers(request))


@router.post("/devices/{name}/remove")
async def remove_device(name: str, request: Request,
                        principal: Principal = Depends(require_admin),
                        data: Sources = Depends(sources)) -> Response:
    await read_form(request)   # its CSRF token checked
    removed, error, status = None, None, 200
    try:
        removed = await run_in_threadpool(
            request.app.state.device_admin.remove, name, f"{principal.username} (web)",
            client_address(request))
    except DragonBallError as e:
        error, status = f"{e.message} ({e.hint})" if e.hint else e.message, e.http_status
    rows = await run_in_threadpool(_device_rows, data, True)
    return render(request, "devices.html", principal, status_code=status, rows=rows,
                  lifetimes=CODE_LIFETIMES, enrollment=None, error=None, removed=removed,
                  remove_error=error,
                  **await run_in_threadpool(_strangers, request))


@router.post("/devices/enrollment")
async def add_device(request: Request, principal: Principal = Depends(require_admin),
                     data: Sources = Depends(sources)) -> Response:
    form = await read_form(request)
    lifetime = form.get("ttl") or CODE_LIFETIMES[0]
    enrollment, error, status = None, None, 200
    try:
        if lifetime not in CODE_LIFETIMES:
            raise RequestInvalid(f"a code lives {', '.join(CODE_LIFETIMES)}; not {lifetime!r}")
        enrollment = await run_in_threadpool(
            data.new_enrollment, parse_duration(lifetime), f"{principal.username} (web)",
            client_address(request))
    except (RequestInvalid, SourceError) as e:
        error, status = f"{e.message} ({e.hint})" if e.hint else e.message, e.http_status
    context = {"enrollment": enrollment, "lifetime": lifetime, "error": error}
    if is_htmx(request):
        return render(request, "_enrollment.html", principal, status_code=status, **context)
    rows = await run_in_threadpool(_device_rows, data)
    return render(request, "devices.html", principal, status_code=status, rows=rows,
                  lifetimes=CODE_LIFETIMES, removed=None, remove_error=None,
                  **await run_in_threadpool(_strangers, request), **context)


@router.get("/images")
def images(request: Request, principal: Principal = Depends(require_admin),
           data: Sources = Depends(sources)) -> Response:
    try:
        rows, error = views.image_rows(data.images()), None
    except SourceError as e:
        rows, error = [], f"{e.message} ({e.hint})" if e.hint else e.message
    return render(request, "images.html", principal, rows=rows, error=error,
                  registry=getattr(request.app.state.settings, "registry", ""))


@router.get("/events")
def events(request: Request, before: int | None = None, kind: str | None = None,
           principal: Principal = Depends(require_admin),
           data: Sources = Depends(sources)) -> Response:
    kind = kind if kind in EVENT_FILTERS else None
    found, more = views.page_of(data.events(before, EVENTS_PER_PAGE + 1,
                                            EVENT_FILTERS.get(kind, "")), EVENTS_PER_PAGE)
    rows = views.event_rows(found)
    return render(request, "events.html", principal, rows=rows, before=before, kind=kind,
                  older=rows[-1].id if more and rows else None)

"""The portal's web UI: server-side pages (Jinja2) with htmx, vendored (docs/portal.md).

    views.py    pure: store rows and metrics dicts -> view models
    sources.py  adapters: store, agents, registry behind `Sources` (faked in tests)
    pages.py    the Jinja2 environment, `render`, the navigation, the security headers
    login.py    /login, /logout, API tokens, the OpenAPI document
    routes.py   the pages (every one behind auth.require_admin)
    services_page.py, placement_page.py, views_apps.py   the application layer's pages
    templates/  base.html and the pages; static/ htmx.min.js, portal.css

`mount(app, store, settings)` is all api.create_app calls.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from dragonball.portal.settings import Settings
from dragonball.portal.store import Store
from dragonball.portal.web import login, pages, placement_page, routes, services_page
from dragonball.portal.web.sources import PortalSources


def mount(app: FastAPI, store: Store, settings: Settings, sources=None,
          control_factory=None) -> None:
    """Add the pages, the static files and the security headers to `app`.

    `app.state.sources` is what the pages read (PortalSources unless given); tests set it.
    `control_factory` makes the orchestrator's Control the dashboard's services come from
    (the Services and Placement pages use ``app.state.control_factory``, portal.apps_api).
    """
    app.state.settings = settings
    app.state.sources = sources or PortalSources(store, settings,
                                                 control_factory=control_factory)
    app.include_router(login.router)
    app.include_router(routes.router)
    app.include_router(services_page.router)
    app.include_router(placement_page.router)
    # Public: the login page needs them; they are the same for every portal.
    app.mount("/static", StaticFiles(directory=str(pages.STATIC)), name="static")

    @app.middleware("http")
    async def _security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in pages.SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

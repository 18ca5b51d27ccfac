"""Rendering the portal's pages: one Jinja2 environment, the navigation, the headers.

A page is a template that extends ``base.html`` and a route that calls `render` with the
`Principal` that `require_admin` gave it; a fragment (what htmx swaps in) is a template
that extends nothing. Templates live in ``web/templates``, static files in ``web/static``
(both packed into the frozen runtime by builder.runtime.data_files).
"""

from __future__ import annotations

import dataclasses
import pathlib

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from dragonball import __version__
from dragonball.portal.auth import CSRF_FIELD, CSRF_HEADER, Principal

HERE = pathlib.Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

#: Every answer of the portal carries these: nothing loads from elsewhere (the site is
#: offline, and it shuts the door on injected scripts), no framing, no referrer, and HTTPS
#: only for a year (HSTS: the portal serves nothing but HTTPS, so every answer is one).
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000",
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self'; connect-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclasses.dataclass(frozen=True)
class NavItem:
    label: str
    path: str


#: The navigation bar, in order. A new top-level page adds its entry here.
NAV = [NavItem("Dashboard", "/"), NavItem("Devices", "/devices"),
       NavItem("Services", "/services"), NavItem("Placement", "/placement"),
       NavItem("Images", "/images"), NavItem("Events", "/events")]

environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                                 autoescape=True, undefined=jinja2.StrictUndefined,
                                 trim_blocks=True, lstrip_blocks=True)


def render(request: Request, template: str, principal: Principal | None = None,
           status_code: int = 200, headers: dict | None = None, **context) -> HTMLResponse:
    """`template` rendered with `context` plus what base.html needs (user, nav, CSRF)."""
    settings = getattr(request.app.state, "settings", None)
    html = environment.get_template(template).render(
        request_path=request.url.path, nav=NAV, user=principal.username if principal else None,
        csrf_token=principal.csrf_token if principal else "", csrf_field=CSRF_FIELD,
        csrf_header=CSRF_HEADER, version=__version__,
        cluster_name=getattr(settings, "cluster_name", "") or "", **context)
    return HTMLResponse(html, status_code=status_code,
                        headers={"Cache-Control": "no-store", **(headers or {})})


def is_htmx(request: Request) -> bool:
    """Whether htmx sent this request (then a fragment answers, not a whole page)."""
    return request.headers.get("hx-request") == "true"


def nav_active(item_path: str, request_path: str) -> bool:
    """Whether a nav entry is the current page's (its own path or a page below it)."""
    if item_path == "/":
        return request_path == "/"
    return request_path == item_path or request_path.startswith(item_path + "/")


environment.globals["nav_active"] = nav_active

"""Request bodies bounded before anything reads them: authentication, CSRF, parsing.

Without it an anonymous client made the portal buffer a body of any size (Starlette's
`request.body()` and FastAPI's JSON parsing read it all before a model could refuse it).
`BodyLimit`, a pure ASGI middleware outside every route, reads the body first and counts
the bytes as they arrive: a declared ``Content-Length`` over the limit is refused at once,
and a body that grows past it (chunked, or longer than it said) is refused as soon as it
does, never buffered further. Only then is the request handed on, its body replayed.

The limits: `DEFAULT_LIMIT` (1 MiB) for every route, `SPEC_LIMIT` for the few that take an
app spec (text of up to apps_api.SPEC_LIMIT, which JSON or a form may escape to several
times its size). A refusal is 413 with the API's JSON error. The request line and headers
are bounded by h11 (serve.py: ``h11_max_incomplete_event_size``).
"""

from __future__ import annotations

import json
import logging
import re

from dragonball.errors import InvalidInput, PortalError

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 1024 * 1024
SPEC_LIMIT = 8 * 1024 * 1024
#: The routes that take a spec: the API's plan and apply, the Placement page's apply form.
SPEC_ROUTES = re.compile(r"/api/v1/(plan|apply)|/placement/[^/]+/apply")


class BodyTooLarge(PortalError, InvalidInput):
    """A request body over the route's limit: refused before it was read further."""

    http_refinement = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit // 1024} KiB, the limit "
                         "of this route", "send less: an app spec is at most 1 MiB")


def limit_of(path: str) -> int:
    """The body limit of a request to `path` (pure)."""
    return SPEC_LIMIT if SPEC_ROUTES.fullmatch(path) else DEFAULT_LIMIT


class BodyLimit:
    """ASGI middleware: the whole body read (at most the limit) before `app` sees it."""

    def __init__(self, app, limit=limit_of) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            return await _refuse(scope, send, limit)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _refuse(scope, send, limit)
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # h11 refuses it before us; count what arrives
    return None


def _replay(body: bytes, receive):
    """A `receive` that gives `body` once, then waits for the client's disconnect."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replayed


async def _refuse(scope, send, limit: int) -> None:
    error = BodyTooLarge(limit)
    client = scope.get("client") or ("unknown",)
    log.warning("%s %s from %s refused: body over %d bytes", scope.get("method"),
                scope.get("path"), client[0], limit)
    body = json.dumps(error.to_dict()).encode()
    # The body left unread: close the connection rather than read the rest of it.
    await send({"type": "http.response.start", "status": error.http_status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})

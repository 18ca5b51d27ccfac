"""The portal's error answers: one JSON shape (`DragonBallError.to_dict`: "error", "hint",
"category", and what the error adds: "problems", "job", ...) with the HTTP status of the
error's category (dragonball.errors.HTTP_STATUS), for the API and the pages alike."""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse

from dragonball.errors import DragonBallError

log = logging.getLogger(__name__)


def error_response(e: DragonBallError, headers: dict | None = None,
                   message: str | None = None) -> JSONResponse:
    """`e` as the API's answer; `message` replaces its text where the API says more."""
    body = e.to_dict()
    if message is not None:
        body["error"] = message
    if e.http_status >= 500:
        log.warning("%s answered %d: %s", type(e).__name__, e.http_status,
                    e.message.splitlines()[0] if e.message else "")
    return JSONResponse(body, status_code=e.http_status, headers=headers)

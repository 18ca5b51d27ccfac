"""The errors of the portal's answers, as the client raises them (dragonball.portal_client).

Every failure is a `ClientError` (dragonball.errors) carrying the API's own error text, a hint
and a category: the one the HTTP status says (`CATEGORY_OF_HTTP`: 404 not found, 409 conflict,
400/422 invalid, 401/403/429 denied, 502-504 unavailable; a 500 is what the answer's own
"category" says, failed or internal), so a command run through the API ends with the exit status
its local twin would (README.md, "Exit statuses"). No answer at all is UNAVAILABLE.
"""

from __future__ import annotations

from dragonball.errors import (CATEGORY_OF_HTTP, Category, ClientError, Conflict, Denied,
                               Failed, Internal, InvalidInput, NotFound, Unavailable)

LOGIN_HINT = "log in again: dragonball login --portal HOST --ca FILE"


class PortalUnreachable(ClientError, Unavailable):
    """No answer, or a TLS peer that is not the portal of this CA (or a 502-504)."""


class JobPortalGone(PortalUnreachable):
    """The portal that runs a job no longer answers: the job's end cannot be known here."""

    def __init__(self, job_id: str, url: str, reason: str) -> None:
        super().__init__(f"the portal that ran job {job_id} ({url}) is gone ({reason}); see "
                         "`dragonball services` for the state",
                         "the job may have ended, or stopped half way with its portal: "
                         "`dragonball services APP` on any portal shows what runs now; run the "
                         "command again if it did not take effect")
        self.job_id, self.job_url = job_id, url


class PortalAuthError(ClientError, Denied):
    """The portal refuses the credentials (401, 403, 429), or there is no usable login."""


class PortalInvalid(ClientError, InvalidInput):
    """The request itself is wrong: a bad value, a bad spec (400, 422)."""


class PortalNotFound(ClientError, NotFound):
    """The portal has no such app, service or job, or not that call (404)."""


class PortalConflict(ClientError, Conflict):
    """The portal's state forbids the call now: the app is busy with a job (409)."""


class PortalFailed(ClientError, Failed):
    """The portal tried and failed (a 500 that says so), or a call did not end in time."""


class PortalInternal(ClientError, Internal):
    """The portal failed with a defect of its own (a 500 with no DragonBall error)."""


class JobFailed(PortalFailed):
    """A job the portal ran (start, stop, apply) ended failed: its error, hint and category
    (FAILED unless the job says otherwise)."""

    def __init__(self, job: dict) -> None:
        super().__init__(job.get("error") or f"job {job.get('id')} failed",
                         job.get("hint") or "", body=job)
        self.job = job
        if job.get("category") in {c.value for c in Category}:
            self.category = Category(job["category"])

    def to_dict(self) -> dict:
        """As the local command's error: what the job's result says (where a rollout
        failed, the output, what stays healthy) goes with it."""
        result = self.job.get("result")
        return super().to_dict() | (result if isinstance(result, dict) else {})


#: The error of each category an answer can have.
ERROR_OF = {Category.INVALID: PortalInvalid, Category.NOT_FOUND: PortalNotFound,
            Category.CONFLICT: PortalConflict, Category.UNAVAILABLE: PortalUnreachable,
            Category.DENIED: PortalAuthError, Category.FAILED: PortalFailed,
            Category.INTERNAL: PortalInternal}


def answer_of(response, method: str, path: str) -> dict:
    """The JSON answer of a response, or the ClientError its status and body say."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code < 400:
        if isinstance(body, dict):
            return body
        raise PortalFailed(f"{method} {path}: the portal answered {response.status_code} "
                           "but not with JSON", "is this address the portal's?")
    body = body if isinstance(body, dict) else {}
    text = str(body.get("error") or response.text[:200].strip() or response.reason)
    raise _error_for(response, text, body)


def category_of_answer(status: int, body: dict) -> Category:
    """The category of an error answer: its HTTP status's, else the answer's own word (a
    500 is FAILED or INTERNAL), else FAILED; a 500 that names none is an unhandled defect."""
    if status in CATEGORY_OF_HTTP:
        return CATEGORY_OF_HTTP[status]
    named = {c.value: c for c in Category}.get(str(body.get("category")))
    if named is not None:
        return named
    return Category.INTERNAL if status == 500 else Category.FAILED


def _error_for(response, text: str, body: dict) -> ClientError:
    status, hint = response.status_code, str(body.get("hint") or "")
    category = category_of_answer(status, body)
    args = dict(status=status, problems=body.get("problems"), body=body)
    if status == 401:
        hint = hint or LOGIN_HINT
    elif status == 429:
        hint = hint or f"wait {response.headers.get('Retry-After', 'a few minutes')} s " \
                       "before trying again"
    elif status == 404 and "error" not in body:
        hint = hint or ("this portal does not have that call: is it an older version than "
                        "this command?")
    elif status >= 500 and category in (Category.FAILED, Category.INTERNAL):
        text = f"the portal failed ({status}): {text}"
        hint = hint or ("see the portal's log: 'journalctl -u dragonball-portal' (or "
                        "/var/log/dragonball/portal.log) on the portal")
    return ERROR_OF[category](text, hint, **args)

"""The portal's REST API for apps (docs/portal.md, "The API for apps"): what the
`dragonball` CLI and the pages use to see and drive the application layer.

    GET  /api/v1/apps                                   {"apps": [name...]}
    GET  /api/v1/apps/{app}/services                    {"app", "services": status rows}
    POST /api/v1/apps/{app}/services/{name}/{action}    start|stop|restart -> 202 {"job": id}
    GET  /api/v1/jobs/{id}                              the job: state, events, result, error
    GET  /api/v1/apps/{app}/services/{name}/params      parameters in force, secrets masked
    PUT  /api/v1/apps/{app}/services/{name}/params      {"set": {k: v}, "unset": [k]}
                                     (name: a service, a job, or @shared: the app's shared)
    GET  /api/v1/apps/{app}/services/{name}/logs        ?tail=200: each task's last lines
    GET  /api/v1/apps/{app}/notifications               ?limit=50: newest first
    POST /api/v1/apps/{app}/slots/{slot}/move           {"to": server} -> 202 {"job": id}
    DELETE /api/v1/apps/{app}                           ?purge_data=APP: remove -> 202 {"job"}
    GET  /api/v1/volumes                                every app volume, its owner or why none
    DELETE /api/v1/volumes/{server}/{name}              remove one that no slot owns
    GET  /api/v1/images/servers                         per server, the app images it holds
    POST /api/v1/plan                                   {"spec": yaml, "file"} -> the plan
    POST /api/v1/apply                                  {"spec": yaml, "file"} -> 202 {"job"}

Every route takes `auth.require_admin` (and so its CSRF rules). Routes are thin: a
`Control` from the factory the app was made with (the real one talks to the Swarm, the
store, the agents and the registry; tests give one over fakes), answers shaped by
orchestrator/answers.py (which the CLI's local path uses too), errors mapped once here to
``{"error", "hint"}`` with their category's HTTP status: 404 an unknown app or service, 409
the app is busy with another job, 422 invalid input (with `problems`; nothing is changed),
503 the cluster does not answer, 500 an operation failed. A failed job says its error's
`category`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dragonball.app.model import NAME_PATTERN, SHARED
from dragonball.errors import DragonBallError
from dragonball.orchestrator import answers, removing
from dragonball.orchestrator.answers import known_service, masked
from dragonball.orchestrator.params import ParamsInvalid
from dragonball.orchestrator.rollout import RolloutFailed
from dragonball.portal.answers import error_response
from dragonball.portal.auth import Principal, client_address, require_admin
from dragonball.portal.jobs import Job, JobUnknown, Jobs

log = logging.getLogger(__name__)

__all__ = ["ACTIONS", "known_service", "masked", "mount", "router", "set_params",
           "start_apply", "start_lifecycle", "start_move"]

router = APIRouter(prefix="/api/v1", tags=["apps"])
ACTIONS = answers.ACTIONS
SPEC_LIMIT = 1024 * 1024


def Name():  # noqa: N802 - a fresh Path() per parameter: FastAPI must not share one
    return Path(pattern=NAME_PATTERN, max_length=63)


def Holder():  # noqa: N802 - what has parameters: a service, a job, or @shared (the app's)
    return Path(pattern=f"^({SHARED}|{NAME_PATTERN[1:-1]})$", max_length=63)


class ParamsChange(BaseModel):
    """Parameters to set (JSON values of each parameter's type) and to unset (back to the
    spec's default)."""

    model_config = ConfigDict(extra="forbid")
    set: dict[str, Any] = Field(default_factory=dict)
    unset: list[str] = Field(default_factory=list, max_length=200)
    #: For an app not applied yet: the spec it will be applied with, and its file name
    spec: str | None = Field(default=None, max_length=SPEC_LIMIT)
    file: str = Field("spec.yaml", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class SpecText(BaseModel):
    """An app spec's YAML text, and a file name to show in problems and keep with it."""

    model_config = ConfigDict(extra="forbid")
    spec: str = Field(max_length=SPEC_LIMIT)
    file: str = Field("spec.yaml", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class MoveTo(BaseModel):
    """Where a slot's data goes: a server of the cluster, by its hostname."""

    model_config = ConfigDict(extra="forbid")
    to: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
    data_lost: bool = False   # the slot's server is gone for good: start it empty on `to`


def mount(app: FastAPI, control_factory: Callable, jobs: Jobs | None = None) -> None:
    """Add the routes to `app`, with the Control factory and the job registry they use
    (``app.state.control_factory``, ``app.state.jobs``: the pages use them too)."""
    app.state.control_factory = control_factory
    app.state.jobs = jobs or Jobs()
    app.include_router(router)


# -- errors, once ------------------------------------------------------------------------
def failure(e: DragonBallError) -> JSONResponse:
    """An application-layer error as the answer the contract gives it: its category's status
    (a failed rollout's details are a job's, never an answer's)."""
    return error_response(e)


def answer(body: Callable[[], Any], status: int = 200) -> JSONResponse:
    """`body()`'s dict as JSON, or its DragonBallError as `failure` says."""
    try:
        found = body()
    except DragonBallError as e:
        return failure(e)
    return found if isinstance(found, JSONResponse) else JSONResponse(found, status)


def control_of(request: Request):
    return request.app.state.control_factory()


def jobs_of(request: Request) -> Jobs:
    return request.app.state.jobs


def rollout_details(e: DragonBallError) -> dict | None:
    """What a failed rollout says beyond its message: where, its output, what is kept."""
    return e.details() if isinstance(e, RolloutFailed) else None


# -- the lifecycle, as jobs -------------------------------------------------------------------
def start_job(request: Request, principal: Principal, kind: str, app: str, carry_out,
              event: str, detail: dict, service: str | None = None) -> Job:
    """`carry_out(control)` as a job of `kind` on `app`, with a Control of its own that
    reports the job's progress; `event` in the audit log with `detail` and the job's id."""
    factory = request.app.state.control_factory

    def work(job: Job) -> dict:
        control = factory()
        control.progress = job.progress
        return carry_out(control)
    job = jobs_of(request).start(kind, app, work, service=service, failure=rollout_details)
    _record(request, principal, event, {**detail, "job": job.id})
    return job


def start_lifecycle(request: Request, principal: Principal, app: str, name: str,
                    action: str) -> Job:
    """Start `action` of `app`'s service `name` as a job (the pages share this)."""
    known_service(request.app.state.control_factory(), app, name)
    return start_job(request, principal, action, app,
                     lambda control: answers.act(control, action, app, name),
                     f"app.{action}", {"app": app, "service": name}, service=name)


def start_apply(request: Request, principal: Principal, text: str, file: str) -> Job:
    """Check a spec text against the cluster and plan it (AppSpecInvalid: no job), then
    roll that plan out as a job."""
    # read, observed and planned once
    prepared = request.app.state.control_factory().prepare_text(text, file)
    app = prepared.spec.app
    return start_job(request, principal, "apply", app,
                     lambda control: answers.apply(control, prepared, file),
                     "app.apply.requested", {"app": app, "file": file})


def start_move(request: Request, principal: Principal, app: str, slot: str,
               server: str, data_lost: bool = False) -> Job:
    """Check the move whole (a refusal: no job, nothing changed), then carry it out as a job
    (one app-changing job at a time: an apply or another move answers 409)."""
    request.app.state.control_factory().check_move(app, slot, server, data_lost)
    return start_job(request, principal, "move", app,
                     lambda control: answers.move(control, app, slot, server, data_lost),
                     "app.move.requested", {"app": app, "slot": slot, "to": server,
                                            "data_lost": data_lost}, service=slot)


def set_params(request: Request, app: str, name: str, values: dict, unset: list,
               text: bool = False, spec: tuple[str, str] | None = None) -> dict:
    """Set parameters (typed JSON `values`, or KEY=VALUE `values` when `text`) while holding
    the app; {"ok", "tasks", "restored"}. ParamsInvalid (nothing stored) when any is wrong.
    `spec`: an app not applied yet, its values checked against it and kept."""
    control = control_of(request)
    if text:
        known_service(control, app, name, slots=False, jobs=True)
    if not values and not unset:
        raise ParamsInvalid("nothing to set", "give \"set\": {KEY: VALUE} or \"unset\": [KEY]")
    with jobs_of(request).hold("params", app, name) as job:
        if text:
            found = answers.task_answers(control.set_params(
                app, name, [f"{k}={v}" for k, v in values.items()], unset))
        else:
            found = answers.set_values(control, app, name, values, unset, spec)
        job.result = {"app": app, "service": name} | found
    return found


def _record(request: Request, principal: Principal, kind: str, detail: dict) -> None:
    request.app.state.auth.store.record(kind, principal.username, client_address(request),
                                        detail)


# -- routes -----------------------------------------------------------------------------------
@router.get("/apps")
def apps(request: Request, principal: Principal = Depends(require_admin)) -> JSONResponse:
    """The apps applied on this portal."""
    return answer(lambda: {"apps": control_of(request).store.apps()})


@router.get("/apps/{app}/services")
def services(request: Request, app: str = Name(),
             principal: Principal = Depends(require_admin)) -> JSONResponse:
    """Each service of the app, leaves first: state, replicas, tasks per server."""
    return answer(lambda: {"app": app, "services": control_of(request).status(app)})


@router.post("/apps/{app}/services/{name}/{action}", status_code=202)
def lifecycle(request: Request, action: Literal["start", "stop", "restart"],
              app: str = Name(), name: str = Name(),
              principal: Principal = Depends(require_admin)) -> JSONResponse:
    """Start, stop or restart a service with its subtree, as a job: poll /api/v1/jobs/{id}."""
    return answer(lambda: {"job": start_lifecycle(request, principal, app, name, action).id},
                  202)


@router.post("/apps/{app}/slots/{slot}/move", status_code=202)
def move(request: Request, body: MoveTo, app: str = Name(),
         slot: str = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80),
         principal: Principal = Depends(require_admin)) -> JSONResponse:
    """Move a slot's data (`store.2`) to another server, as a job: poll /api/v1/jobs/{id}."""
    return answer(lambda: {"job": start_move(request, principal, app, slot, body.to,
                                             body.data_lost).id}, 202)


@router.delete("/apps/{app}", status_code=202)
def remove_app(request: Request, app: str = Name(),
               purge_data: str | None = Query(None, max_length=63),
               principal: Principal = Depends(require_admin)) -> JSONResponse:
    """Take the app away, as a job (poll /api/v1/jobs/{id}): its services, network,
    parameter folders, labels and record (404: no such app). Its volumes are kept and
    listed, deleted only when `purge_data` is the app's name again (422 for another: no
    job, nothing changed; removing.purges)."""
    def start() -> dict:
        request.app.state.control_factory().spec_of(app)   # AppNotApplied (404): no job
        purge = removing.purges(app, purge_data)
        return {"job": start_job(request, principal, "remove", app,
                                 lambda control: answers.remove(control, app, purge),
                                 "app.remove.requested",
                                 {"app": app, "purge_data": purge}).id}
    return answer(start, 202)


@router.get("/volumes")
def volumes(request: Request, principal: Principal = Depends(require_admin)) -> JSONResponse:
    """Every application volume on every server: the slot owning it, or why none does."""
    return answer(lambda: answers.volumes(control_of(request)))


@router.get("/images/servers")
def image_holdings(request: Request,
                   principal: Principal = Depends(require_admin)) -> JSONResponse:
    """Per server, which images of the applied apps it holds (they start with no registry)."""
    return answer(lambda: answers.image_holdings(control_of(request)))


@router.delete("/volumes/{server}/{name}")
def remove_volume(request: Request,
                  server: str = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$"),
                  name: str = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"),
                  principal: Principal = Depends(require_admin)) -> JSONResponse:
    """Remove an app volume that no slot owns (a move's source, a slot scaled away)."""
    def work() -> dict:
        done = answers.remove_volume(control_of(request), server, name)
        _record(request, principal, "app.volume.removed", {"server": server, "volume": name})
        return done
    return answer(work)


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: str = Path(max_length=64),
        principal: Principal = Depends(require_admin)) -> JSONResponse:
    """A job: running, done or failed; its progress events; its result or error and hint."""
    found = jobs_of(request).get(job_id)
    if found is None:
        return failure(JobUnknown(f"no job {job_id!r}", "the portal keeps the last 100 jobs, "
                                  "and none across a restart"))
    return JSONResponse(found.to_dict())


@router.get("/apps/{app}/services/{name}/params")
def get_params(request: Request, app: str = Name(), name: str = Holder(),
               principal: Principal = Depends(require_admin)) -> JSONResponse:
    """The parameters in force: value, default, type, secret, set on the portal or not."""
    return answer(lambda: answers.params(control_of(request), app, name))


@router.put("/apps/{app}/services/{name}/params")
def put_params(request: Request, change: ParamsChange, app: str = Name(),
               name: str = Holder(),
               principal: Principal = Depends(require_admin)) -> JSONResponse:
    """Set parameters, checked against the spec's types (422 lists every problem and
    stores nothing), kept on the portal, delivered to every running task (config_change)."""
    spec = (change.spec, change.file) if change.spec is not None else None
    return answer(lambda: set_params(request, app, name, change.set, change.unset,
                                     spec=spec))


@router.get("/apps/{app}/services/{name}/logs")
def logs(request: Request, app: str = Name(), name: str = Name(),
         tail: int = Query(200, ge=1, le=5000),
         principal: Principal = Depends(require_admin)) -> JSONResponse:
    """The last lines of each running task's log (through the agent on its server)."""
    return answer(lambda: {"tasks": control_of(request).logs(app, name, tail)})


@router.get("/apps/{app}/notifications")
def notifications(request: Request, app: str = Name(),
                  limit: int = Query(50, ge=1, le=1000),
                  principal: Principal = Depends(require_admin)) -> JSONResponse:
    """The latest state-change notifications to the app's services, and their delivery."""
    return answer(lambda: {"notifications": control_of(request).notifications(app, limit)})


@router.post("/plan")
def plan(request: Request, body: SpecText,
         principal: Principal = Depends(require_admin)) -> JSONResponse:
    """What applying the spec would do (nothing is changed): Plan.to_dict."""
    return answer(lambda: answers.plan(control_of(request), body.spec, body.file))


@router.post("/apply", status_code=202)
def apply(request: Request, body: SpecText,
          principal: Principal = Depends(require_admin)) -> JSONResponse:
    """Check the spec (422 with every problem: no job), then apply it as a job."""
    return answer(lambda: {"job": start_apply(request, principal, body.spec, body.file).id},
                  202)

"""The Placement page: which service's tasks run on which server (a servers × services
grid from the status rows), and a form that changes where a service may run and how many
replicas it has. The change is a modified copy of the spec last applied: its plan is shown
first, and only the confirmation applies it (a job, like `dragonball apply`).

    GET  /placement[?app=&job=]          the grid and the form
    POST /placement/{app}/plan           service, replicas, server:<name>... -> the plan
    POST /placement/{app}/apply          spec (the modified text the plan showed) -> a job
    POST /placement/{app}/move           slot, server: a slot's data to another server -> a job

Slots of a service with storage are pinned to the server holding their data: the grid says
where, a form per slot moves it (`dragonball move`, checked whole first, a job), and the
volumes no slot owns (a move's source, a slot scaled away) are listed, never deleted.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from dragonball.app import render as plan_render
from dragonball.app.errors import AppSpecInvalid, UnknownService
from dragonball.app.model import NAME_PATTERN
from dragonball.errors import DragonBallError
from dragonball.portal import apps_api
from dragonball.portal.auth import Principal, read_form, require_admin
from dragonball.portal.web import views_apps
from dragonball.portal.web.pages import is_htmx, render
from dragonball.portal.web.services_page import chosen_app, message, status_of

router = APIRouter(include_in_schema=False)


def Name():  # noqa: N802 - a fresh Path() per parameter: FastAPI must not share one
    return Path(pattern=NAME_PATTERN, max_length=63)
SERVER_FIELD = "server:"


def placement_context(request: Request, app: str | None) -> dict:
    """The grid of `app` (or the first app), its services' replicas; `error` when the
    cluster cannot be read."""
    context = {"apps": [], "app": None, "grid": None, "replicas": {}, "error": None,
               "services": [], "pinned": {}, "slots": [], "unowned": [], "volumes_error": "",
               "plan": None, "summary": "", "new_spec": "", "problems": [], "change": None,
               "job": None}
    try:
        context["apps"], context["app"] = chosen_app(request, app)
        if context["app"]:
            control = request.app.state.control_factory()
            spec = control.spec_of(context["app"])
            units = control.units_of(context["app"])
            servers = [n.hostname for n in control.engine.nodes()]
            allowed = {n: list(s.placement.servers) for n, s in units.spec.services.items()}
            context["grid"] = views_apps.grid(control.status(context["app"]), servers, allowed)
            context["replicas"] = {n: s.replicas for n, s in units.spec.services.items()}
            context["services"] = list(spec.services)   # what the change form edits
            context["pinned"] = dict(units.pins)        # slots: their storage's server
            context["slots"] = [{"slot": unit, "name": f"{slot.service}.{slot.number}",
                                 "server": units.pins.get(unit, ""),
                                 "waiting": units.waiting.get(unit, "")}
                                for unit, slot in units.slots.items()]
            context["unowned"], context["volumes_error"] = _unowned(control)
    except DragonBallError as e:
        context["error"] = message(e)
    return context


@router.get("/placement")
def placement(request: Request, app: str | None = None, job: str | None = None,
              principal: Principal = Depends(require_admin)) -> Response:
    context = placement_context(request, app)
    shown = request.app.state.jobs.get(job) if job else None
    context["job"] = views_apps.job_view(shown.to_dict() if shown else None)
    return render(request, "placement.html", principal, **context)


@router.post("/placement/{app}/plan")
async def plan(request: Request, app: str = Name(),
               principal: Principal = Depends(require_admin)) -> Response:
    form = await read_form(request)
    return await run_in_threadpool(plan_change, request, principal, app, form)


def plan_change(request: Request, principal: Principal, app: str, form: dict) -> Response:
    """The spec applied, with the form's placement for one service: its plan, to confirm."""
    context = placement_context(request, app)
    service = form.get("service", "")
    servers = sorted(k[len(SERVER_FIELD):] for k, v in form.items()
                     if k.startswith(SERVER_FIELD) and v)
    context["change"] = {"service": service, "servers": servers,
                         "replicas": form.get("replicas", "")}
    status = 200
    try:
        control = request.app.state.control_factory()
        file, text = _applied(control, app)
        if service not in control.spec_of(app).services:
            raise UnknownService(service, control.spec_of(app).services)
        replicas = _replicas(form.get("replicas", ""))
        new_text = views_apps.edit_placement(text, service, servers, replicas)
        the_plan = control.prepare_text(new_text, file).plan
        context.update(plan=the_plan.to_dict(), summary=plan_render.summary(the_plan),
                       new_spec=new_text)
    except AppSpecInvalid as e:
        context["problems"], status = [str(p) for p in e.problems], e.http_status
    except DragonBallError as e:
        context["error"], status = message(e), status_of(e)
    return render(request, "placement.html", principal, status_code=status, **context)


@router.post("/placement/{app}/apply")
async def apply(request: Request, app: str = Name(),
                principal: Principal = Depends(require_admin)) -> Response:
    form = await read_form(request, limit=apps_api.SPEC_LIMIT)
    return await run_in_threadpool(apply_change, request, principal, app, form)


def apply_change(request: Request, principal: Principal, app: str, form: dict) -> Response:
    """The confirmation: apply the modified spec the plan showed, as a job."""
    def start():
        file, _ = _applied(request.app.state.control_factory(), app)
        return apps_api.start_apply(request, principal, form.get("spec", ""), file)
    return _job_answer(request, principal, app, start)


def _job_answer(request: Request, principal: Principal, app: str, start) -> Response:
    """`start()`'s job followed (htmx: its fragment; a form post: back to the page with
    it), or its refusal shown, nothing started."""
    try:
        job = start()
    except DragonBallError as e:
        if is_htmx(request):
            return render(request, "_job.html", principal, status_code=status_of(e), job=None,
                          job_error=message(e))
        context = placement_context(request, app)
        context["error"] = message(e)
        return render(request, "placement.html", principal, status_code=status_of(e),
                      **context)
    if is_htmx(request):
        return render(request, "_job.html", principal,
                      job=views_apps.job_view(job.to_dict()))
    return RedirectResponse(f"/placement?{urlencode({'app': job.app, 'job': job.id})}",
                            status_code=303)


def _unowned(control) -> tuple[list, str]:
    """The volumes no slot owns, and what could not be listed (a server down)."""
    try:
        rows = control.volumes(sizes=False)
    except DragonBallError as e:
        return [], message(e)
    errors = "; ".join(f"{r['server']}: {r['error']}" for r in rows if r.get("error"))
    return [r for r in rows if r.get("name") and not r.get("owner")], errors


@router.post("/placement/{app}/move")
async def move(request: Request, app: str = Name(),
               principal: Principal = Depends(require_admin)) -> Response:
    form = await read_form(request)
    return await run_in_threadpool(move_slot, request, principal, app, form)


def move_slot(request: Request, principal: Principal, app: str, form: dict) -> Response:
    """A slot's data to another server, as a job (refused with the reason, no job)."""
    return _job_answer(request, principal, app, lambda: apps_api.start_move(
        request, principal, app, form.get("slot", ""), form.get("server", "")))


def _applied(control, app: str) -> tuple[str, str]:
    """(file, text) of the spec last applied; AppNotApplied otherwise."""
    control.spec_of(app)
    return control.store.app(app)


def _replicas(text: str) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        value = -1
    if not 0 <= value <= 1000:
        raise AppSpecInvalid("the form", [f"replicas: give a whole number from 0 to 1000, "
                                          f"not {text!r}"])
    return value

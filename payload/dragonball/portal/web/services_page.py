"""The Services page: the app's dependency tree with each service's state, start / stop /
restart (jobs, followed live), a parameters form per service, the last action's output, a
log tail. Thin routes over the apps API's helpers (portal.apps_api) and `views_apps`.

    GET  /services[?app=&service=&job=]          the page
    GET  /services/tree?app=                     the tree alone (htmx polls it)
    POST /services/{app}/{name}/{action}         start|stop|restart: a job (its fragment)
    GET  /jobs/{id}                              a job's fragment (polled while it runs)
    POST /services/{app}/{name}/params           the form: config_change results per task
    GET  /services/{app}/{name}/logs[?tail=]     each task's last log lines (fragment)

Errors come back as the page's or fragment's flash with the status of their category, as
the API's (404, 409, 422, 503); htmx swaps error answers too (base.html's responseHandling).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from dragonball.app.model import NAME_PATTERN
from dragonball.errors import DragonBallError
from dragonball.orchestrator.params import ParamsInvalid
from dragonball.orchestrator.state import AppStore
from dragonball.portal import apps_api
from dragonball.portal.auth import Principal, read_form, require_admin
from dragonball.portal.jobs import JobUnknown
from dragonball.portal.web import views_apps
from dragonball.portal.web.pages import is_htmx, render

router = APIRouter(include_in_schema=False)


def Name():  # noqa: N802 - a fresh Path() per parameter: FastAPI must not share one
    return Path(pattern=NAME_PATTERN, max_length=63)
LOG_TAIL = 100


def status_of(e: DragonBallError) -> int:
    """The status the API gives this error: its category's (dragonball.errors.HTTP_STATUS)."""
    return e.http_status


def message(e: DragonBallError) -> str:
    return f"{e.message} ({e.hint})" if e.hint else e.message


def chosen_app(request: Request, app: str | None) -> tuple[list, str | None]:
    """(the apps applied, the one to show: `app` when applied, else the first). Read from
    the store alone: with no app, a page needs nothing of the cluster."""
    apps = AppStore(request.app.state.auth.store).apps()
    return apps, (app if app in apps else (apps[0] if apps else None))


def tree_context(request: Request, app: str | None) -> dict:
    """What the tree shows; a cluster that cannot be read is the `error`."""
    context = {"apps": [], "app": None, "rows": [], "error": None}
    try:
        context["apps"], context["app"] = chosen_app(request, app)
        if context["app"]:
            control = request.app.state.control_factory()
            context["rows"] = views_apps.tree(context["app"], control.status(context["app"]))
    except DragonBallError as e:
        context["error"] = message(e)
    return context


def params_context(request: Request, app: str, name: str) -> dict:
    control = request.app.state.control_factory()
    found = apps_api.masked(control.get_params(app, name))
    return {"fields": views_apps.param_fields(found), "revision": found["revision"],
            "app": app, "service": name, "results": None, "problems": [], "error": None}


@router.get("/services")
def services(request: Request, app: str | None = None, service: str | None = None,
             job: str | None = None, principal: Principal = Depends(require_admin)) -> Response:
    shown = request.app.state.jobs.get(job) if job else None
    return page(request, principal, app, service, job=shown)


def page(request: Request, principal: Principal, app: str | None, service: str | None,
         params: dict | None = None, job=None, status: int = 200) -> Response:
    """The whole page: the tree; for the `service` chosen, its parameters (`params`: the
    form as submitted), its last job and its log tail."""
    context = tree_context(request, app)
    selected = service if service in {r.name for r in context["rows"]} else None
    last = request.app.state.jobs.latest(context["app"], selected) if selected else None
    if selected and params is None:
        try:
            params = params_context(request, context["app"], selected)
        except DragonBallError as e:
            context["error"] = message(e)
    return render(request, "services.html", principal, status_code=status, selected=selected,
                  params=params, job=views_apps.job_view(job.to_dict() if job else None),
                  last=views_apps.job_view(last.to_dict() if last else None), tail=LOG_TAIL,
                  **context)


@router.get("/services/tree")
def services_tree(request: Request, app: str | None = None,
                  principal: Principal = Depends(require_admin)) -> Response:
    return render(request, "_service_tree.html", principal, **tree_context(request, app))


@router.get("/jobs/{job_id}")
def job_fragment(request: Request, job_id: str = Path(max_length=64),
                 principal: Principal = Depends(require_admin)) -> Response:
    found = request.app.state.jobs.get(job_id)
    if found is None:
        e = JobUnknown(f"no job {job_id!r}: the portal keeps the last 100 jobs")
        return render(request, "_job.html", principal, status_code=e.http_status, job=None,
                      job_error=e.message)
    return render(request, "_job.html", principal, job=views_apps.job_view(found.to_dict()))


@router.post("/services/{app}/{name}/params")
async def params(request: Request, app: str = Name(), name: str = Name(),
                 principal: Principal = Depends(require_admin)) -> Response:
    form = await read_form(request)
    # config_change in every task may take a while: not on the event loop
    return await run_in_threadpool(set_params, request, principal, app, name, form)


def set_params(request: Request, principal: Principal, app: str, name: str,
               form: dict) -> Response:
    """The parameters form submitted: what changed is set; the form again with each task's
    result (or every problem, and nothing changed)."""
    try:
        context = params_context(request, app, name)
    except DragonBallError as e:
        return render(request, "_params.html", principal, status_code=status_of(e),
                      params=None, params_error=message(e))
    assign, unset = views_apps.param_changes(context["fields"], form)
    status = 200
    try:
        if assign or unset:
            context["results"] = apps_api.set_params(request, app, name, assign, unset,
                                                     text=True)["tasks"]
            context.update({k: v for k, v in params_context(request, app, name).items()
                            if k in ("fields", "revision")})
        else:
            context["error"] = "nothing changed: every value is the one in force"
    except ParamsInvalid as e:
        context["problems"], status = e.problems, e.http_status
    except DragonBallError as e:
        context["error"], status = message(e), status_of(e)
    if not is_htmx(request):
        return page(request, principal, app, name, params=context, status=status)
    return render(request, "_params.html", principal, status_code=status, params=context)


@router.get("/services/{app}/{name}/logs")
def logs(request: Request, app: str = Name(), name: str = Name(),
         tail: int = Query(LOG_TAIL, ge=1, le=5000),
         principal: Principal = Depends(require_admin)) -> Response:
    try:
        tasks = request.app.state.control_factory().logs(app, name, tail)
    except DragonBallError as e:
        return render(request, "_logs.html", principal, status_code=status_of(e), tasks=[],
                      app=app, service=name, tail=tail, logs_error=message(e))
    return render(request, "_logs.html", principal, tasks=tasks, app=app, service=name,
                  tail=tail, logs_error=None)


# Last: "/services/{app}/{name}/params" must match its own route first.
@router.post("/services/{app}/{name}/{action}")
async def lifecycle(request: Request, action: Literal["start", "stop", "restart"],
                    app: str = Name(), name: str = Name(),
                    principal: Principal = Depends(require_admin)) -> Response:
    await read_form(request)
    try:
        job = await run_in_threadpool(apps_api.start_lifecycle, request, principal, app, name,
                                      action)
    except DragonBallError as e:
        return render(request, "_job.html", principal, status_code=status_of(e), job=None,
                      job_error=message(e))
    if not is_htmx(request):
        query = urlencode({"app": app, "service": name, "job": job.id})
        return RedirectResponse(f"/services?{query}", status_code=303)
    return render(request, "_job.html", principal, job=views_apps.job_view(job.to_dict()))

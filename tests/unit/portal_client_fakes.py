"""The portal's ASGI app mounted under a `requests` session in-process (FastAPI's TestClient
as the transport), and a stand-in for the app endpoints of /tmp/notes' contract
(portal/apps_api.py) to drive the remote app commands without a Swarm."""

from __future__ import annotations

import requests
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from requests.structures import CaseInsensitiveDict

from dragonball import portal_client

URL = "https://portal.test:8443"


class ASGIAdapter(requests.adapters.BaseAdapter):
    """A requests transport that hands every request to an ASGI app (no socket, no TLS)."""

    def __init__(self, app) -> None:
        super().__init__()
        self.client = TestClient(app, base_url=URL, raise_server_exceptions=False)
        self.sent: list = []

    def send(self, request, **kwargs):
        self.sent.append(request)
        answer = self.client.request(request.method, request.url,
                                     headers=dict(request.headers), content=request.body)
        response = requests.Response()
        response.status_code, response._content = answer.status_code, answer.content
        response.headers = CaseInsensitiveDict(answer.headers)
        response.url, response.request = request.url, request
        response.reason = answer.reason_phrase
        return response

    def close(self) -> None:
        pass  # each PortalClient closes its session; the app lives on for the next one


def mount(monkeypatch, app) -> ASGIAdapter:
    """Every PortalClient made from now on talks to `app`."""
    adapter = ASGIAdapter(app)

    class Session(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.mount("https://", adapter)

    monkeypatch.setattr(portal_client.requests, "Session", Session)
    return adapter


ROWS = [{"service": "store", "kind": "backend", "image": "notes/store:1", "needs": [],
         "deployed": True, "desired": 1, "healthy": 1, "state": "healthy",
         "tasks": [{"slot": 1, "server": "node-a", "state": "running"}]},
        {"service": "web", "kind": "service", "image": "notes/web:1", "needs": ["store"],
         "deployed": True, "desired": 2, "healthy": 1, "state": "degraded",
         "tasks": [{"slot": 1, "server": "node-b", "state": "running"}]}]
PLAN = {"schema": 1, "app": "notes", "summary": {"start": 1, "change": 0, "keep": 1,
                                                  "stop": 0},
        "stop_waves": [], "start_waves": [[{"service": "web", "kind": "service",
                                             "action": "start", "image": "notes/web:1",
                                             "replicas": 2, "reasons": ["new"]}]],
        "notes": []}


def apps_app(apps=("notes",), fail_jobs: bool = False, polls: int = 2) -> FastAPI:
    """The contract's app endpoints in memory: a job gains one event per poll and ends at
    the `polls`-th."""
    app = FastAPI()
    jobs: dict = {}
    app.state.params_sent = []

    def job(kind, service, app_name="notes"):
        job_id = str(len(jobs) + 1)
        jobs[job_id] = {"id": job_id, "kind": kind, "service": service, "polls": 0,
                        "app": app_name}
        return JSONResponse({"job": job_id}, status_code=202)

    @app.get("/api/v1/apps")
    def list_apps():
        return {"apps": list(apps)}

    @app.get("/api/v1/apps/{name}/services")
    def services(name: str):
        if name not in apps:
            return JSONResponse({"error": f"no app {name}", "hint": "dragonball apply"}, 404)
        return {"app": name, "services": ROWS}

    @app.post("/api/v1/apps/{name}/services/{service}/{verb}")
    def action(name: str, service: str, verb: str):
        if service not in ("store", "web"):
            return JSONResponse({"error": f"no service {service} in app {name}",
                                 "hint": "its services: store, web"}, 404)
        return job(verb, service, name)

    @app.get("/api/v1/jobs/{job_id}")
    def get_job(job_id: str):
        found = jobs[job_id]
        found["polls"] += 1
        states = ["starting", "healthy"] if not fail_jobs else ["starting", "failed"]
        events = [{"service": found["service"], "state": s, "detail": "", "t": i * 0.5}
                  for i, s in enumerate(states[:found["polls"]])]
        running = found["polls"] < max(polls, len(states))
        return {"id": job_id, "kind": found["kind"], "events": events,
                "state": "running" if running else ("failed" if fail_jobs else "done"),
                "result": None if running or fail_jobs else _result(found),
                "error": "web failed its status check" if fail_jobs and not running else None,
                "hint": "dragonball logs web" if fail_jobs else ""}

    @app.get("/api/v1/apps/{name}/services/{service}/params")
    def params(name: str, service: str):
        return {"app": name, "service": service, "revision": 3, "parameters": {
            "workers": {"type": "int", "value": 2, "secret": False, "set": False},
            "title": {"type": "string", "value": "Notes", "secret": False, "set": True},
            "password": {"type": "string", "value": "********", "secret": True,
                         "set": True}}}

    @app.put("/api/v1/apps/{name}/services/{service}/params")
    async def set_params(name: str, service: str, request: Request):
        body = await request.json()
        app.state.params_sent.append(body)
        if body["set"].get("workers") == "many":
            return JSONResponse({"error": "web: workers must be an integer",
                                 "problems": ["workers: 'many' is not an integer"]}, 422)
        return {"ok": True, "tasks": [{"task": "web.1", "server": "node-b", "ok": True,
                                       "detail": "config_change done"}]}

    @app.get("/api/v1/apps/{name}/services/{service}/logs")
    def logs(name: str, service: str, tail: int = 200):
        return {"tasks": [{"task": f"{service}.1", "server": "node-a",
                           "lines": [f"line {i}" for i in range(min(tail, 3))]}]}

    @app.post("/api/v1/plan")
    async def plan(request: Request):
        body = await request.json()
        if "services" not in body["spec"]:
            return JSONResponse({"error": f"{body['file']}: 1 problem", "problems": [
                {"path": "services", "message": "is missing"}]}, 422)
        return PLAN

    @app.post("/api/v1/apply")
    def apply():
        return job("apply", "web")

    @app.get("/api/v1/boom")
    def boom():
        raise RuntimeError("a bug")

    return app


def _result(job: dict) -> dict:
    """A job's result as the contract gives it: {app, service, <action>: [names]}, and for
    apply {app, plan, applied}."""
    if job["kind"] == "apply":
        return {"app": "notes", "plan": PLAN, "applied": True}
    return {"app": job["app"], "service": job["service"], job["kind"]: [job["service"]]}

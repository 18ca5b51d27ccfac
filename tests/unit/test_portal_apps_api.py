"""The portal's REST API for apps (/tmp contract, docs/portal.md "The API for apps") through
TestClient, over a Control on the orchestrator's fakes: auth and CSRF, 404/409/422/503,
jobs from start to end, parameters whose errors change nothing, plan and apply."""

from __future__ import annotations

import pytest

from dragonball.swarm import SwarmError
from dragonball.orchestrator.params import MASK
from portal_apps_fakes import BASIC, NOTES, make_portal
from portal_web_fakes import csrf_of, login

API = "/api/v1/apps/notes/services"


@pytest.fixture
def portal(tmp_path):
    made = make_portal(tmp_path)
    yield made
    made.gate.set()
    made.store.close()


@pytest.fixture
def deployed(portal):
    portal.deploy()
    return portal


def get(portal, path, **kw):
    return portal.client.get(path, headers=BASIC, **kw)


def post(portal, path, json=None):
    return portal.client.post(path, headers=BASIC, json=json)


def put(portal, path, json):
    return portal.client.put(path, headers=BASIC, json=json)


# -- auth ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method, path", [
    ("GET", "/api/v1/apps"), ("GET", API), ("POST", f"{API}/api/start"),
    ("GET", "/api/v1/jobs/x"), ("GET", f"{API}/api/params"), ("PUT", f"{API}/api/params"),
    ("GET", f"{API}/api/logs"), ("GET", "/api/v1/apps/notes/notifications"),
    ("POST", "/api/v1/plan"), ("POST", "/api/v1/apply")])
def test_every_call_needs_the_admin(deployed, method, path):
    answer = deployed.client.request(method, path)
    assert answer.status_code == 401 and "WWW-Authenticate" in answer.headers
    assert deployed.engine.mutations() == [] and deployed.client.app.state.jobs.latest("notes") is None


def test_a_session_needs_its_csrf_token_to_start_anything(deployed):
    login(deployed.client)
    refused = deployed.client.post(f"{API}/api/start")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    assert deployed.client.app.state.jobs.latest("notes") is None
    token = csrf_of(deployed.client.get("/").text)
    started = deployed.client.post(f"{API}/api/start", headers={"X-CSRF-Token": token})
    assert started.status_code == 202
    assert deployed.wait(started.json()["job"])["state"] == "done"


def test_basic_auth_refuses_a_form_body_that_changes_things(deployed):
    answer = deployed.client.put(f"{API}/api/params", headers=BASIC,
                                 data={"set": "x"})
    assert answer.status_code == 403 and deployed.agents.calls == []


# -- reading ------------------------------------------------------------------------------
def test_apps_and_services(portal):
    assert get(portal, "/api/v1/apps").json() == {"apps": []}
    portal.deploy()
    assert get(portal, "/api/v1/apps").json() == {"apps": ["notes"]}
    body = get(portal, API).json()
    assert body["app"] == "notes"
    assert [r["service"] for r in body["services"]] == ["store-1", "api", "web"]
    api = body["services"][1]
    assert (api["state"], api["healthy"], api["desired"]) == ("healthy", 2, 2)
    assert {t["server"] for t in api["tasks"]} == {"node-a", "node-b"}


def test_an_unknown_app_or_service_is_404_with_a_hint(deployed):
    answer = get(deployed, "/api/v1/apps/blog/services")
    assert answer.status_code == 404
    assert answer.json()["error"] == "the portal has no app 'blog' (applied: notes)"
    assert answer.json()["hint"].startswith("apply its spec first")
    for path in (f"{API}/db/params", f"{API}/db/logs"):
        answer = get(deployed, path)
        assert answer.status_code == 404 and "no service 'db'" in answer.json()["error"]
    assert post(deployed, f"{API}/db/start").status_code == 404
    assert deployed.client.app.state.jobs.latest("notes") is None


@pytest.mark.parametrize("path", ["/api/v1/apps/Notes/services", f"{API}/api/reboot",
                                  f"{API}/API/start"])
def test_malformed_names_and_actions_are_422(deployed, path):
    answer = deployed.client.request("POST" if path.endswith(("reboot", "start")) else "GET",
                                     path, headers=BASIC)
    assert answer.status_code == 422 and answer.json()["error"].startswith("invalid request")


def test_an_engine_that_does_not_answer_is_503(deployed):
    def down():
        raise SwarmError("the engine at /var/run/docker.sock does not answer", "start it")
    deployed.engine.nodes = down
    answer = get(deployed, API)
    assert answer.status_code == 503
    assert answer.json() == {"error": "the engine at /var/run/docker.sock does not answer",
                             "hint": "start it", "category": "unavailable"}


def test_logs_of_each_task(deployed):
    deployed.agents.logs_of["c-api-1"] = ["one", "two"]
    answer = get(deployed, f"{API}/api/logs", params={"tail": 50})
    assert answer.json() == {"tasks": [
        {"task": "api.1", "server": "node-a", "lines": ["one", "two"], "error": None},
        {"task": "api.2", "server": "node-b", "lines": [], "error": None}]}
    assert deployed.agents.named("logs")[0][3] == 50
    assert get(deployed, f"{API}/api/logs", params={"tail": 5001}).status_code == 422


def test_notifications(deployed):
    deployed.control().store.record_changes("notes", {}, [("web", {"service": "api",
                                                                   "event": "unhealthy"})])
    [row] = get(deployed, "/api/v1/apps/notes/notifications").json()["notifications"]
    assert (row["to"], row["seq"], row["payload"]["event"]) == ("web", 1, "unhealthy")
    assert get(deployed, "/api/v1/apps/notes/notifications?limit=0").status_code == 422
    assert get(deployed, "/api/v1/apps/blog/notifications").status_code == 404


# -- jobs ---------------------------------------------------------------------------------
def test_start_is_a_job_with_its_events_and_result(deployed):
    answer = post(deployed, f"{API}/web/start")
    assert answer.status_code == 202 and set(answer.json()) == {"job"}
    job = deployed.wait(answer.json()["job"])
    assert job["state"] == "done" and job["error"] is None and job["kind"] == "start"
    assert job["result"] == {"app": "notes", "service": "web",
                             "start": ["store-1", "api", "web"]}   # the store's slot
    events = [(e["service"], e["state"]) for e in job["events"]]
    pulls = [e for e in events if e[1] in ("pulling", "pulled")]   # images first
    assert events[:len(pulls)] == pulls
    assert events[len(pulls):][:2] == [("store-1", "starting"), ("store-1", "healthy")]
    assert all(isinstance(e["t"], float) for e in job["events"])
    same = get(deployed, f"/api/v1/jobs/{job['id']}").json()
    assert same["state"] == "done" and same["events"] == job["events"]
    [event] = [e for e in deployed.store.events() if e["kind"] == "app.start"]
    assert event["actor"] == "admin" and event["detail"]["job"] == job["id"]


def test_stop_and_restart(deployed):
    job = deployed.wait(post(deployed, f"{API}/web/stop").json()["job"])
    assert job["state"] == "done" and job["result"]["stop"] == ["web", "api", "store-1"]
    assert job["result"]["notes"] == []
    job = deployed.wait(post(deployed, f"{API}/store/restart").json()["job"])
    assert job["state"] == "done" and job["result"]["restart"] == ["store-1"]


def test_one_app_changing_job_at_a_time(deployed):
    deployed.gate.clear()
    first = post(deployed, f"{API}/web/start").json()["job"]
    busy = post(deployed, f"{API}/api/stop")
    assert busy.status_code == 409 and busy.json()["job"] == first
    assert "is still running" in busy.json()["error"] and first in busy.json()["hint"]
    params = put(deployed, f"{API}/api/params", {"set": {"greeting": "Hi"}})
    assert params.status_code == 409   # and nothing stored (the job bumps the revision)
    assert deployed.control().store.params("notes", "api")[1] == {}
    assert get(deployed, f"/api/v1/jobs/{first}").json()["state"] == "running"
    deployed.gate.set()
    assert deployed.wait(first)["state"] == "done"
    again = post(deployed, f"{API}/api/stop")
    assert again.status_code == 202 and deployed.wait(again.json()["job"])["state"] == "done"


def test_a_failed_rollout_is_a_failed_job_with_where_and_why(deployed):
    deployed.engine.failing["notes_store-1"] = "no space left on device"
    deployed.engine.by_name.pop("notes_store-1")
    job = deployed.wait(post(deployed, f"{API}/store/start").json()["job"])
    assert job["state"] == "failed"
    assert job["error"].startswith("store-1 on node-a: no space left on device")
    assert job["hint"].startswith("fix the cause")
    assert job["result"]["service"] == "store-1" and job["result"]["server"] == "node-a"
    assert ("store-1", "failed") in [(e["service"], e["state"]) for e in job["events"]]


def test_an_unknown_job_is_404(portal):
    answer = get(portal, "/api/v1/jobs/nope")
    assert answer.status_code == 404 and "no job 'nope'" in answer.json()["error"]


# -- parameters ---------------------------------------------------------------------------
def test_params_get_masks_secrets(deployed):
    deployed.control().set_param_values("notes", "api", {"store_password": "s3cret-pw"})
    answer = get(deployed, f"{API}/api/params")
    assert answer.status_code == 200 and "s3cret-pw" not in answer.text
    body = answer.json()
    assert body["parameters"]["store_password"] == {
        "value": MASK, "default": "", "type": "string", "secret": True, "set": True}
    assert body["parameters"]["store_port"]["value"] == 6379


def test_params_put_stores_and_delivers_to_each_task(deployed):
    answer = put(deployed, f"{API}/api/params", {"set": {"greeting": "Hi", "store_port": 6380},
                                                 "unset": []})
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is True and [t["task"] for t in body["tasks"]] == ["api.1", "api.2"]
    assert body["tasks"][0] == {"service": "api", "task": "api.1", "server": "node-a",
                                "ok": True, "detail": "ok: 1 script(s) in 0.2 s",
                                "refused": False}
    assert body["restored"] is False
    assert deployed.control().store.params("notes", "api")[1] == {"greeting": "Hi",
                                                                  "store_port": 6380}
    unset = put(deployed, f"{API}/api/params", {"unset": ["greeting"]})
    assert unset.status_code == 200
    assert deployed.control().store.params("notes", "api")[1] == {"store_port": 6380}


def test_a_task_that_refuses_its_params_is_ok_false(deployed):
    deployed.agents.answers["c-api-2"] = {"exit_code": 1, "output": "reload failed",
                                          "report": None}
    body = put(deployed, f"{API}/api/params", {"set": {"greeting": "Hi"}}).json()
    assert body["ok"] is False and body["tasks"][1]["detail"] == "reload failed"


@pytest.mark.parametrize("change, problems", [
    ({"set": {"store_port": "6380", "greeting": "Hi"}}, ['store_port is an int: got "6380"']),
    ({"set": {"listen_port": True}}, ["listen_port is an int: got true"]),
    ({"set": {"nope": 1}}, ["api has no parameter 'nope' (it has: greeting, listen_port, "
                            "store_host, store_master_name, store_password, store_port, "
                            "store_sentinels, store_wait_replicas, store_wait_timeout_ms)"]),
    ({"unset": ["nope"]}, ["api has no parameter 'nope' (it has: greeting, listen_port, "
                           "store_host, store_master_name, store_password, store_port, "
                           "store_sentinels, store_wait_replicas, store_wait_timeout_ms)"]),
    ({}, ["nothing to set"])])
def test_invalid_params_are_422_and_change_nothing(deployed, change, problems):
    answer = put(deployed, f"{API}/api/params", change)
    assert answer.status_code == 422 and answer.json()["problems"] == problems
    assert deployed.control().store.params("notes", "api") == (0, {})
    assert deployed.agents.calls == [] and deployed.engine.mutations() == []
    assert not [e for e in deployed.store.events() if e["kind"] == "app.params"]


def test_a_malformed_params_body_is_422(deployed):
    for body in ({"set": [1]}, {"set": {}, "extra": 1}, {"unset": "greeting"}):
        assert put(deployed, f"{API}/api/params", body).status_code == 422
    assert deployed.agents.calls == []


# -- plan and apply -----------------------------------------------------------------------
def test_plan_of_a_spec_text(portal):
    answer = post(portal, "/api/v1/plan", {"spec": NOTES, "file": "notes.app.yaml"})
    assert answer.status_code == 200
    plan = answer.json()
    assert plan["app"] == "notes" and plan["summary"]["start"] == 3
    assert [[s["service"] for s in w] for w in plan["start_waves"]] == [["store-1"], ["api"],
                                                                        ["web"]]
    assert portal.engine.mutations() == []


def test_an_invalid_spec_is_422_with_every_problem_and_no_job(portal):
    del portal.registry.digests["notes/store:0.1.0"]
    broken = NOTES.replace("replicas: 2", "replicas: two")
    for path in ("/api/v1/plan", "/api/v1/apply"):
        answer = post(portal, path, {"spec": broken, "file": "notes.app.yaml"})
        assert answer.status_code == 422, path
        problems = answer.json()["problems"]
        assert [(p["path"], p["line"]) for p in problems] == [
            ("services.api.replicas", 24), ("services.store.image", 39)]
    answer = post(portal, "/api/v1/apply", {"spec": NOTES})
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["path"] == "services.store.image"
    assert portal.client.app.state.jobs.latest("notes") is None
    assert portal.engine.mutations() == [] and portal.control().store.apps() == []


def test_apply_is_a_job_that_rolls_the_app_out(portal):
    answer = post(portal, "/api/v1/apply", {"spec": NOTES, "file": "notes.app.yaml"})
    assert answer.status_code == 202
    job = portal.wait(answer.json()["job"])
    assert job["state"] == "done" and job["kind"] == "apply" and job["app"] == "notes"
    assert job["result"]["applied"] is True and job["result"]["plan"]["summary"]["start"] == 3
    assert [e["service"] for e in job["events"] if e["state"] == "healthy"] == [
        "store-1", "api", "web"]
    assert portal.control().store.app("notes")[0] == "notes.app.yaml"
    assert ("create_service", "notes_web") in portal.engine.mutations()


@pytest.mark.parametrize("body", [{}, {"spec": 5}, {"spec": "x", "file": "../etc/passwd"},
                                  {"spec": "x", "more": 1}])
def test_a_malformed_spec_body_is_422(portal, body):
    assert post(portal, "/api/v1/apply", body).status_code == 422
    assert portal.engine.mutations() == []


def test_the_openapi_document_lists_the_apps_api(portal):
    paths = get(portal, "/api/v1/openapi.json").json()["paths"]
    for path in ("/api/v1/apps", "/api/v1/apps/{app}/services",
                 "/api/v1/apps/{app}/services/{name}/{action}", "/api/v1/jobs/{job_id}",
                 "/api/v1/apps/{app}/services/{name}/params",
                 "/api/v1/apps/{app}/services/{name}/logs",
                 "/api/v1/apps/{app}/notifications", "/api/v1/plan", "/api/v1/apply"):
        assert path in paths, path


# -- moving a slot's data ---------------------------------------------------------------------
MOVE = "/api/v1/apps/notes/slots/{}/move"


def test_a_move_is_a_job_that_repins_the_slot_and_keeps_the_source(deployed, monkeypatch):
    from dragonball.orchestrator import moving
    deployed.agents.held["10.0.0.1"] = ["notes_store_storage.1", "notes_store_log.1"]
    copied = []
    monkeypatch.setattr(moving, "copy_volume", lambda agents, src, dst, name, labels, progress:
                        copied.append((src, dst, name)) or {"name": name, "size": 3,
                                                            "sha256": "0" * 64})
    answer = post(deployed, MOVE.format("store.1"), {"to": "node-b"})
    assert answer.status_code == 202, answer.text
    job = deployed.wait(answer.json()["job"])
    assert job["state"] == "done" and job["kind"] == "move", job
    assert (job["result"]["from"], job["result"]["to"]) == ("node-a", "node-b")
    assert [c[2] for c in copied] == ["notes_store_storage.1", "notes_store_log.1"]
    rows = get(deployed, API).json()["services"]
    assert rows[0]["service"] == "store-1" and rows[0]["server"] == "node-b"
    listed = get(deployed, "/api/v1/volumes").json()["volumes"]
    assert {(v["server"], v["name"], v["owner"]) for v in listed} == {
        ("node-a", "notes_store_storage.1", None), ("node-a", "notes_store_log.1", None)}


@pytest.mark.parametrize("slot, body, status, says", [
    ("store.1", {"to": "node-z"}, 404, "no server 'node-z'"),
    ("store.1", {"to": "node-a"}, 409, "store-1 is on node-a already"),
    ("api.1", {"to": "node-b"}, 422, "api has no storage"),
    ("store.9", {"to": "node-b"}, 422, "store has no slot 9"),
    ("store.1", {"to": "node-b; reboot"}, 422, ""),
    ("store.1", {"to": "node-b", "force": True}, 422, ""),
    ("..", {"to": "node-b"}, 404, ""),
])
def test_a_bad_move_is_refused_with_the_reason_and_no_job(deployed, slot, body, status, says):
    deployed.agents.held["10.0.0.1"] = ["notes_store_storage.1", "notes_store_log.1"]
    answer = post(deployed, MOVE.format(slot), body)
    assert answer.status_code == status, answer.text
    assert says in answer.text
    assert deployed.engine.mutations() == []
    assert deployed.client.app.state.jobs.latest("notes") is None


def test_a_move_while_the_app_is_busy_is_refused(deployed):
    deployed.agents.held["10.0.0.1"] = ["notes_store_storage.1", "notes_store_log.1"]
    deployed.gate.clear()
    first = post(deployed, f"{API}/web/start").json()["job"]
    busy = post(deployed, MOVE.format("store.1"), {"to": "node-b"})
    assert busy.status_code == 409 and busy.json()["job"] == first
    deployed.gate.set()
    deployed.wait(first)

"""The application pages' view models (pure): the tree, service alerts, the parameters
form and what a submitted form changes, the placement grid and spec edit, job lines."""

from __future__ import annotations

import yaml

from dragonball.app import spec as app_spec
from dragonball.portal.web import views_apps
from portal_apps_fakes import NOTES


def row(name, needs=(), state="healthy", tasks=(), healthy=1, desired=1, kind="backend"):
    return {"service": name, "kind": kind, "image": f"x/{name}:1", "needs": list(needs),
            "deployed": state != "absent", "desired": desired, "healthy": healthy,
            "state": state, "tasks": [{"slot": i + 1, "server": s, "state": "running"}
                                      for i, s in enumerate(tasks)]}


# a diamond: web -> api, admin -> api; api -> store; admin -> store
ROWS = [row("store", tasks=["b"]), row("api", ["store"], "degraded", ["a", "b", "a"], 2, 3),
        row("admin", ["api", "store"], "down", healthy=0),
        row("web", ["api"], "stopped", desired=0, kind="service")]


def test_tree_puts_roots_first_and_what_they_need_indented_below():
    rows = views_apps.tree("notes", ROWS)
    assert [(r.name, r.depth, r.repeat) for r in rows] == [
        ("admin", 0, False), ("api", 1, False), ("store", 2, False), ("store", 1, True),
        ("web", 0, False), ("api", 1, True)]
    api = rows[1]
    assert (api.app, api.state, api.healthy, api.desired) == ("notes", "degraded", 2, 3)
    assert api.servers == [("a", 2), ("b", 1)]


def test_service_alerts_once_per_service_not_healthy():
    alerts = views_apps.service_alerts(views_apps.tree("notes", ROWS))
    assert [(a.level, a.subject, a.text) for a in alerts] == [
        ("error", "notes/admin", "no replica healthy (0/1)"),
        ("warning", "notes/api", "2/3 replicas healthy"),
        ("warning", "notes/web", "stopped (0 replicas wanted)")]
    assert views_apps.service_alerts(views_apps.tree("n", [row("a")])) == []


PARAMS = {"app": "notes", "service": "api", "revision": 3, "parameters": {
    "greeting": {"value": "Hi", "default": "Hello", "type": "string", "secret": False, "set": True},
    "port": {"value": 8080, "default": 8080, "type": "int", "secret": False, "set": False},
    "ratio": {"value": 0.5, "default": 0.5, "type": "float", "secret": False, "set": False},
    "debug": {"value": False, "default": False, "type": "bool", "secret": False, "set": False},
    "hosts": {"value": ["a:1"], "default": ["a:1"], "type": "list", "secret": False, "set": False},
    "password": {"value": "********", "default": "", "type": "string", "secret": True,
                 "set": True}}}


def test_param_fields_are_typed_inputs_and_secrets_are_never_prefilled():
    fields = {f.key: f for f in views_apps.param_fields(PARAMS)}
    assert [(k, f.input, f.value, f.step) for k, f in fields.items()] == [
        ("greeting", "text", "Hi", ""), ("port", "number", "8080", "1"),
        ("ratio", "number", "0.5", "any"), ("debug", "select", "false", ""),
        ("hosts", "text", '["a:1"]', ""), ("password", "password", "", "")]
    assert fields["password"].default == "" and fields["greeting"].default == "Hello"


def test_param_changes_send_only_what_differs():
    fields = views_apps.param_fields(PARAMS)
    form = {"greeting": "Hi", "port": "8081", "ratio": "0.5", "debug": "true",
            "hosts": '["a:1"]', "password": "", "csrf_token": "x"}
    assert views_apps.param_changes(fields, form) == ({"port": "8081", "debug": "true"}, [])
    form.update({"password": "new-secret", "unset:greeting": "1"})
    assert views_apps.param_changes(fields, form) == (
        {"port": "8081", "debug": "true", "password": "new-secret"}, ["greeting"])


def test_grid_counts_tasks_per_server_and_keeps_empty_servers():
    grid = views_apps.grid(ROWS, ["a", "b", "c"], {"api": ["a", "b"]})
    assert grid.servers == ["a", "b", "c"] and grid.services == ["store", "api", "admin", "web"]
    assert grid.cells["a"] == {"store": 0, "api": 2, "admin": 0, "web": 0}
    assert grid.cells["b"]["api"] == 1 and grid.cells["b"]["store"] == 1
    assert grid.cells["c"] == {"store": 0, "api": 0, "admin": 0, "web": 0}
    assert grid.allowed == {"store": [], "api": ["a", "b"], "admin": [], "web": []}


def test_edit_placement_changes_one_service_and_the_spec_stays_valid():
    text = views_apps.edit_placement(NOTES, "api", ["node-b"], 3)
    data = yaml.safe_load(text)
    assert data["services"]["api"]["replicas"] == 3
    assert data["services"]["api"]["placement"] == {"servers": ["node-b"]}
    before = yaml.safe_load(NOTES)
    for name in ("web", "store"):
        assert data["services"][name] == before["services"][name]
    assert list(data["services"]) == ["web", "api", "store"]
    assert app_spec.load(text, "x.yaml").services["api"].placement.servers == ["node-b"]
    back = yaml.safe_load(views_apps.edit_placement(text, "api", [], 2))
    assert "placement" not in back["services"]["api"] and back["services"]["api"]["replicas"] == 2


def test_job_view_lines_and_result():
    job = {"id": "j1", "kind": "start", "app": "notes", "service": "web", "state": "done",
           "events": [{"service": "store", "state": "healthy", "detail": "1/1 running", "t": 1.25},
                      {"service": "web", "state": "starting", "detail": "", "t": 2.0}],
           "result": {"start": ["store"]}, "error": None, "hint": "", "created": 0.0,
           "finished": 2.0}
    view = views_apps.job_view(job)
    assert view["lines"] == ["   1.2s store healthy (1/1 running)", "   2.0s web starting"]
    assert view["result_text"] == '{\n  "start": [\n    "store"\n  ]\n}'
    assert view["started"] == "1970-01-01 00:00:00 UTC" and views_apps.job_view(None) is None

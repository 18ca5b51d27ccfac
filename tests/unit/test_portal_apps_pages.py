"""The Services and Placement pages and the dashboard's services, logged in, over a
Control on the orchestrator's fakes: the tree coloured by state, jobs followed by htmx,
the parameters form (secrets never shown), the log tail, the placement grid, a plan shown
before anything is applied, and errors shown with their status."""

from __future__ import annotations

import html
import re

import pytest

from dragonball.swarm import SwarmError
from dragonball.portal.web.sources import PortalSources, SourceError
from dragonball.portal.web import views_apps
from portal_apps_fakes import make_portal
from portal_web_fakes import csrf_of, login

HX = {"HX-Request": "true"}


@pytest.fixture
def portal(tmp_path):
    made = make_portal(tmp_path)
    login(made.client)
    yield made
    made.gate.set()
    made.store.close()


@pytest.fixture
def deployed(portal):
    portal.deploy()
    return portal


def token(portal) -> str:
    return csrf_of(portal.client.get("/").text)


def hx(portal) -> dict:
    return HX | {"X-CSRF-Token": token(portal)}


def test_services_without_an_app(portal):
    html = portal.client.get("/services").text
    assert "No app is applied yet" in html and 'id="service-tree"' not in html
    assert "No app is applied yet" in portal.client.get("/placement").text


def test_services_show_the_tree_with_states_replicas_and_servers(deployed):
    deployed.engine.task_lists["notes_store-1"] = []
    html = deployed.client.get("/services").text
    assert re.findall(r'data-service="([\w-]+)" data-state="(\w+)"', html) == [
        ("web", "healthy"), ("api", "healthy"), ("store-1", "down")]
    # a slot links to its service (parameters, logs) and says where its storage pins it
    assert re.search(r'class="depth-2"><a href="/services\?app=notes&amp;service=store">'
                     r'store-1</a> <span class="muted small pinned">on node-a</span>', html)
    assert '<span class="label">node-a: 1</span> <span class="label">node-b: 1</span>' in html
    assert html.count('name="csrf_token"') >= 10   # logout + 3 forms a service
    assert 'hx-post="/services/notes/web/stop"' in html and 'hx-confirm="Stop web' in html
    fragment = deployed.client.get("/services/tree?app=notes", headers=HX).text
    assert fragment.startswith('<div id="service-tree" hx-get="/services/tree?app=notes" '
                               'hx-trigger="every 5s"')


def test_a_button_starts_a_job_that_htmx_follows_until_it_ends(deployed):
    answer = deployed.client.post("/services/notes/web/restart", headers=hx(deployed))
    assert answer.status_code == 200 and answer.text.startswith('<div id="job"')
    job_id = re.search(r'job ([0-9a-f]{16})', answer.text).group(1)
    deployed.wait(job_id)
    done = deployed.client.get(f"/jobs/{job_id}", headers=HX).text
    assert "hx-trigger" not in done and 'badge job-done">done' in done
    assert re.search(r"\d+\.\ds web healthy", done) and "&#34;restart&#34;" in done


def test_a_running_job_fragment_polls(deployed):
    deployed.gate.clear()
    answer = deployed.client.post("/services/notes/web/start", headers=hx(deployed))
    job_id = re.search(r'job ([0-9a-f]{16})', answer.text).group(1)
    assert f'hx-get="/jobs/{job_id}" hx-trigger="every 1s"' in answer.text
    busy = deployed.client.post("/services/notes/api/stop", headers=hx(deployed))
    assert busy.status_code == 409 and "app &#39;notes&#39; is busy" in busy.text
    deployed.gate.set()
    deployed.wait(job_id)


def test_a_form_post_without_htmx_goes_back_to_the_page_with_the_job(deployed):
    answer = deployed.client.post("/services/notes/api/stop", data={"csrf_token": token(deployed)},
                                  follow_redirects=False)
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith("/services?app=notes&service=api&job=")
    deployed.wait(location.rsplit("=", 1)[1])
    html = deployed.client.get(location).text
    assert "api: last action" in html and 'badge job-done">done' in html


def test_actions_need_the_csrf_token_and_a_known_service(deployed):
    assert deployed.client.post("/services/notes/web/start", headers=HX).status_code == 403
    unknown = deployed.client.post("/services/notes/db/start", headers=hx(deployed))
    assert unknown.status_code == 404 and "no service &#39;db&#39;" in unknown.text
    assert deployed.engine.mutations() == []


def test_the_parameters_form_never_shows_a_secret(deployed):
    deployed.control().set_param_values("notes", "api", {"store_password": "s3cret-pw"})
    html = deployed.client.get("/services?app=notes&service=api").text
    assert "s3cret-pw" not in html and "********" not in html
    assert re.search(r'<input type="password" id="p-store_password" name="store_password" '
                     r'value="" autocomplete="new-password"', html)
    assert '<input type="number" id="p-store_port" name="store_port" value="6379" step="1">' in html
    assert 'hx-get="/services/notes/api/logs?tail=100" hx-trigger="load"' in html


def test_the_parameters_form_sets_what_changed_and_shows_each_task(deployed):
    form = {"csrf_token": token(deployed), "greeting": "Hi there", "store_port": "6379",
            "store_host": "store", "listen_port": "8080", "store_password": ""}
    answer = deployed.client.post("/services/notes/api/params", data=form, headers=HX)
    assert answer.status_code == 200 and answer.text.startswith('<div id="params">')
    assert re.findall(r'data-task="(api\.\d)"', answer.text) == ["api.1", "api.2"]
    assert "ok: 1 script(s) in 0.2 s" in answer.text and 'value="Hi there"' in answer.text
    assert deployed.control().store.params("notes", "api")[1] == {"greeting": "Hi there"}


def test_invalid_parameters_change_nothing(deployed):
    form = {"csrf_token": token(deployed), "greeting": "Hi", "store_port": "abc"}
    answer = deployed.client.post("/services/notes/api/params", data=form, headers=HX)
    assert answer.status_code == 422 and "Nothing was changed" in answer.text
    assert "store_port is an int: &#39;abc&#39; is not a whole number" in answer.text
    assert deployed.control().store.params("notes", "api") == (0, {})
    assert deployed.agents.calls == []
    same = deployed.client.post("/services/notes/api/params",
                                data={"csrf_token": token(deployed), "greeting":
                                      "Hello from the DragonBall notes API"}, headers=HX)
    assert "nothing changed" in same.text and deployed.agents.calls == []


def test_the_log_tail_is_escaped_and_says_why_a_task_has_none(deployed):
    deployed.agents.logs_of["c-api-1"] = ["<script>alert(1)</script>", "ready"]
    html = deployed.client.get("/services/notes/api/logs?tail=20", headers=HX).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\nready" in html and "<script>" not in html
    assert 'hx-get="/services/notes/api/logs?tail=20" hx-trigger="every 10s"' in html
    gone = deployed.client.get("/services/blog/api/logs", headers=HX)
    assert gone.status_code == 404 and "the portal has no app" in gone.text


def test_placement_grid(deployed):
    html = deployed.client.get("/placement").text
    cells = dict(re.findall(r'<tr data-server="([\w-]+)">(.*?)</tr>', html, re.S))
    assert set(cells) == {"node-a", "node-b"}
    assert re.search(r'data-service="api" class="cell busy">1<', cells["node-b"])
    assert re.search(r'data-service="web" class="cell">·<', cells["node-b"])


def test_placement_shows_each_slot_s_server_and_the_volumes_no_slot_owns(deployed):
    deployed.agents.held["10.0.0.1"] = ["notes_store_storage.1"]
    deployed.agents.held["10.0.0.2"] = ["notes_store_storage.1"]   # an old copy
    page = deployed.client.get("/placement").text
    assert re.search(r'<tr data-slot="store-1"><td>store-1</td>\s*<td>node-a', page)
    assert "pinned to node-a" in page
    assert "<code>notes_store_storage.1</code> on node-b: store-1 is pinned to node-a" in page


def test_the_move_form_starts_a_job_and_a_bad_one_says_why(deployed, monkeypatch):
    from dragonball.orchestrator import moving
    deployed.agents.held["10.0.0.1"] = ["notes_store_storage.1", "notes_store_log.1"]
    monkeypatch.setattr(moving, "copy_volume", lambda *a: {"name": a[3], "size": 1,
                                                           "sha256": "0" * 64})
    bad = deployed.client.post("/placement/notes/move", headers=hx(deployed),
                               data={"slot": "store.1", "server": "node-a"})
    assert bad.status_code == 409 and "store-1 is on node-a already" in bad.text
    assert deployed.engine.mutations() == []
    answer = deployed.client.post("/placement/notes/move", headers=hx(deployed),
                                  data={"slot": "store.1", "server": "node-b"})
    assert answer.status_code == 200, answer.text
    job_id = re.search(r'job ([0-9a-f]{16})', answer.text).group(1)
    assert deployed.wait(job_id)["state"] == "done"
    assert "pinned to node-b" in deployed.client.get("/placement").text


def test_placement_change_shows_the_plan_and_applies_only_when_confirmed(deployed):
    form = {"csrf_token": token(deployed), "service": "api", "server:node-b": "on",
            "replicas": "3"}
    answer = deployed.client.post("/placement/notes/plan", data=form)
    assert answer.status_code == 200 and 'id="plan"' in answer.text
    assert 'data-service="api"><td>api</td><td>backend</td><td><span class="badge ' \
           'action-change">change</span>' in answer.text
    assert deployed.engine.mutations() == []
    spec = html.unescape(re.search(r'<textarea name="spec" hidden>(.*?)</textarea>',
                                   answer.text, re.S).group(1))
    assert "placement:\n      servers:\n      - node-b\n" in spec
    confirm = deployed.client.post("/placement/notes/apply", headers=hx(deployed),
                                   data={"spec": spec})
    assert confirm.status_code == 200, confirm.text
    job_id = re.search(r'job ([0-9a-f]{16})', confirm.text).group(1)
    assert deployed.wait(job_id)["state"] == "done"
    applied = deployed.control().spec_of("notes").services["api"]
    assert applied.placement.servers == ["node-b"] and applied.replicas == 3
    assert ("update_service", "notes_api", False) in deployed.engine.mutations()


def test_a_placement_the_cluster_cannot_hold_is_refused_with_nothing_changed(deployed):
    form = {"csrf_token": token(deployed), "service": "api", "server:node-z": "on",
            "replicas": "2"}
    answer = deployed.client.post("/placement/notes/plan", data=form)
    assert answer.status_code == 422 and "nothing was changed" in answer.text
    assert "node-z" in answer.text and 'id="plan"' not in answer.text
    bad = deployed.client.post("/placement/notes/plan", data=dict(form, replicas="-1"))
    assert bad.status_code == 422 and "replicas: give a whole number" in bad.text
    assert deployed.engine.mutations() == []


def test_the_dashboard_shows_the_service_tree_and_alerts(deployed):
    deployed.engine.task_lists["notes_store-1"] = []
    deployed.sources.services = lambda: PortalSources(
        deployed.store, None, control_factory=deployed.client.app.state.control_factory
    ).services()
    html = deployed.client.get("/").text
    assert re.search(r'class="depth-2" data-service="notes/store-1">.*?state-down', html, re.S)
    assert "<strong>notes/store-1</strong>: no replica healthy (0/1)" in html
    assert deployed.client.get("/dashboard/services", headers=HX).text.startswith(
        '<div id="dashboard-services" hx-get="/dashboard/services" hx-trigger="every 10s"')


def test_the_dashboard_says_when_services_cannot_be_read(portal):
    def broken():
        raise SourceError("the services cannot be read: engine down", "start docker")
    portal.sources.services = broken
    assert "the services cannot be read: engine down (start docker)" in portal.client.get("/").text


def test_portal_sources_services_from_every_app_or_why_not(deployed):
    sources = PortalSources(deployed.store, None,
                            control_factory=deployed.client.app.state.control_factory)
    rows = sources.services()
    assert [(r.name, r.depth) for r in rows] == [("web", 0), ("api", 1), ("store-1", 2)]
    assert isinstance(rows[0], views_apps.TreeRow)

    def down():
        raise SwarmError("the engine does not answer", "start it")
    deployed.engine.nodes = down
    with pytest.raises(SourceError, match="the services cannot be read"):
        sources.services()
    assert PortalSources(deployed.store, None).services() == []

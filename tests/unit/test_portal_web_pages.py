"""Every page renders, logged in, over fake data sources; Add device makes a real code."""

from __future__ import annotations

import re
import types

import pytest

from dragonball.portal.credentials import code_hash
from dragonball.portal import upgrade_audit
from dragonball.portal.web import pages
from dragonball.shared import node_labels
from dragonball.swarm import Node
from portal_web_fakes import METRICS, csrf_of, login, make_client, make_settings
from test_portal_app import FakeCluster

PAGES = ["/", "/devices", "/services", "/placement", "/images", "/events"]


@pytest.fixture
def store(portal_store):
    """The store with the admin and s1 (tests/unit/conftest.py)."""
    return portal_store


@pytest.fixture
def cluster():
    return FakeCluster()


@pytest.fixture
def portal(store, tmp_path, cluster):
    client, fake = make_client(store, make_settings(tmp_path), cluster)
    client.app.state.control_factory = lambda: types.SimpleNamespace(   # no app applied
        store=types.SimpleNamespace(apps=lambda: []))
    fake.metrics_by_address["10.0.0.1"] = METRICS
    login(client)
    return client, fake


@pytest.mark.parametrize("path", PAGES)
def test_each_page_renders_in_the_layout(portal, path):
    client, _ = portal
    answer = client.get(path)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    html = answer.text
    for item in pages.NAV:
        assert f'href="{item.path}"' in html
    assert 'class="user">admin<' in html and 'action="/logout"' in html
    assert '<script src="/static/htmx.min.js"' in html
    assert f'hx-headers=\'{{"X-CSRF-Token": "{csrf_of(html)}"}}\'' in html
    assert re.search(r'<a href="%s" class="active"' % re.escape(path), html)


def test_no_page_loads_anything_from_elsewhere(portal):
    client, _ = portal
    for path in PAGES + ["/login"]:
        html = client.get(path).text
        assert not re.search(r'(src|href)="(https?:)?//', html), path
    for template in pages.TEMPLATES.iterdir():
        assert "http://" not in template.read_text() and "https://" not in template.read_text()


def test_the_static_files_are_served_without_login(store, tmp_path):
    client, _ = make_client(store, make_settings(tmp_path), FakeCluster())
    script = client.get("/static/htmx.min.js")
    assert script.status_code == 200 and "htmx" in script.text[:200]
    assert client.get("/static/portal.css").status_code == 200
    assert (pages.STATIC / "htmx.LICENSE.txt").read_text().startswith("htmx 2.0.11")


def test_login_page_without_a_session(store, tmp_path):
    client, _ = make_client(store, make_settings(tmp_path), FakeCluster())
    html = client.get("/login?next=/devices").text
    assert 'name="next" value="/devices"' in html and "<nav>" not in html


def test_login_page_with_a_session_goes_on(portal):
    client, _ = portal
    answer = client.get("/login?next=/events", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/events"


def test_dashboard_counts_and_alerts(portal, store):
    client, fake = portal
    code, _ = store.create_code()
    store.enroll(code, "s2", "10.0.0.2")
    html = client.get("/").text
    assert re.search(r'big">2</span> devices', html) and re.search(r'big">1</span> enrolling', html)
    assert "s2</strong>: enrolled but not joined yet" in html
    assert "No services deployed yet." in html
    fake.metrics_by_address.clear()
    health = client.get("/dashboard/health", headers={"HX-Request": "true"}).text
    assert health.startswith('<div id="health"') and "its agent does not answer" in health
    assert "0/1</span> agents answering" in health


def test_devices_show_metrics_labels_and_agent_errors(portal, store):
    client, fake = portal
    code, _ = store.create_code()
    device, _ = store.enroll(code, "s2", "10.0.0.2")
    store.mark_joined(device.id, "node2")
    html = client.get("/devices").text
    assert "27% of 2 cores" in html and "2.0 GiB / 8.0 GiB" in html
    assert "6 established · 20 total" in html and 'class="w25"' in html
    assert "io.dragonball.role=portal" in html and "io.dragonball.device-id=2" in html
    assert "agent: connection refused" in html
    assert fake.asked[-1] == ["10.0.0.1", "10.0.0.2"]
    assert 'hx-get="/devices/table" hx-trigger="every 5s"' in html


def _labelled(node_id: str, hostname: str, version: str, release: dict) -> Node:
    return Node(node_id, hostname, labels=node_labels.version_labels(version, release))


def test_devices_show_each_servers_release_and_version_or_unknown(portal, store):
    client, fake = portal
    code, _ = store.create_code()
    device, _ = store.enroll(code, "s2", "10.0.0.2")
    store.mark_joined(device.id, "node2")
    fake.swarm_nodes = [_labelled("portalnode", "s1", "0.9.1",
                                  {"name": "notes", "version": "0.2.0"}), Node("node2", "s2")]
    html = client.get("/devices").text
    s1 = html.split('data-hostname="s1"')[1].split("</tr>")[0]
    s2 = html.split('data-hostname="s2"')[1].split("</tr>")[0]
    assert "notes 0.2.0" in s1 and "DragonBall 0.9.1" in s1
    assert "unknown" in s2 and "DragonBall unknown" in s2
    fake.swarm_nodes = None   # the Swarm does not answer: the page still shows
    table = client.get("/devices/table").text
    assert "DragonBall unknown" in table and "27% of 2 cores" in table


def test_the_dashboard_shows_the_release_and_warns_when_servers_differ(portal, store):
    client, fake = portal
    code, _ = store.create_code()
    device, _ = store.enroll(code, "s2", "10.0.0.2")
    store.mark_joined(device.id, "node2")
    two = {"name": "notes", "version": "0.2.0"}
    fake.swarm_nodes = [_labelled("portalnode", "s1", "0.9.1", two),
                        _labelled("node2", "s2", "0.9.1", two)]
    html = client.get("/").text
    assert re.search(r'id="release"><span class="big">notes 0.2.0</span> release · '
                     r'DragonBall 0.9.1', html)
    assert "do not all run the same release" not in html
    fake.swarm_nodes[1] = _labelled("node2", "s2", "0.9.0", {"name": "notes", "version": "0.1.0"})
    health = client.get("/dashboard/health", headers={"HX-Request": "true"}).text
    assert "do not all run the same release" in health
    assert "s2 runs notes 0.1.0 (DragonBall 0.9.0)" in health
    fake.swarm_nodes[1] = Node("node2", "s2")   # installed before the labels
    health = client.get("/dashboard/health", headers={"HX-Request": "true"}).text
    assert "do not all run the same release" not in health
    assert re.search(r'id="versions-silent">[^<]*: s2\.', health)


def test_the_device_table_fragment_shows_a_device_that_joined(portal, store):
    client, _ = portal
    before = client.get("/devices/table", headers={"HX-Request": "true"}).text
    assert before.startswith('<div id="devices"') and "node-7" not in before
    code, _ = store.create_code()
    device, _ = store.enroll(code, "node-7", "10.0.0.7")
    assert 'data-hostname="node-7"' in client.get("/devices/table").text
    assert "enrolled</span>" in client.get("/devices/table").text
    store.mark_joined(device.id, "node7")
    row = client.get("/devices/table").text.split('data-hostname="node-7"')[1].split("</tr>")[0]
    assert 'state-joined">joined' in row


def test_a_stranger_is_shown_and_the_remove_button_removes_with_its_csrf_token(
        portal, store, cluster):
    client, _ = portal
    cluster.add("intruder", "evil")
    code, _ = store.create_code()
    device, _ = store.enroll(code, "node-7", "10.0.0.7")
    cluster.add("node7", "node-7")
    store.mark_joined(device.id, "node7")
    page = client.get("/devices").text
    stranger = page.split('id="stranger-intruder"')[1].split("</tr>")[0]
    assert "state-stranger" in stranger and "never enrolled" in stranger
    assert 'id="remove-intruder"' in stranger and 'id="remove-1"' not in page   # not s1
    refused = client.post("/devices/node-7/remove", data={})
    assert refused.status_code == 403 and len(store.devices()) == 2
    answer = client.post("/devices/node-7/remove", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 200 and "Removed node-7 (node node7)" in answer.text
    assert [d.hostname for d in store.devices()] == ["s1"] and cluster.removed == ["node7"]
    gone = client.post("/devices/s1/remove", data={"csrf_token": csrf_of(page)})
    assert gone.status_code == 409 and "Swarm manager" in gone.text
    assert [(e["actor"], e["detail"]["hostname"]) for e in store.events()
            if e["kind"] == "device.removed"] == [("admin (web)", "node-7")]


def test_add_device_makes_a_one_time_code_and_shows_the_command(portal, store):
    client, _ = portal
    token = csrf_of(client.get("/devices").text)
    answer = client.post("/devices/enrollment", data={"ttl": "1h", "csrf_token": token},
                         headers={"HX-Request": "true"})
    assert answer.status_code == 200 and answer.text.startswith('<div id="enrollment">')
    code = re.search(r'id="enrollment-code">([0-9A-Z-]+)<', answer.text).group(1)
    command = re.search(r'id="enrollment-command">([^<]+)<', answer.text).group(1)
    assert command == (f"sudo ./DragonBall-0.1.0.bin install --role device --portal 10.0.0.1 "
                       f"--ca-fingerprint SHA256:{'ab' * 32}")
    assert "enrollment_code: " + code in answer.text
    (stored,) = store.read("SELECT * FROM codes")
    assert stored["code_hash"] == code_hash(code) and stored["expires"] - stored["created"] == 3600
    assert store.events(1)[0]["kind"] == "code.created"
    assert store.events(1)[0]["actor"] == "admin (web)" and code not in str(store.events())


def test_add_device_without_htmx_answers_the_whole_page(portal):
    client, _ = portal
    token = csrf_of(client.get("/devices").text)
    answer = client.post("/devices/enrollment", data={"csrf_token": token})
    assert answer.status_code == 200 and "<nav>" in answer.text
    assert "valid 24h" in answer.text


def test_add_device_refuses_another_lifetime(portal):
    client, _ = portal
    token = csrf_of(client.get("/devices").text)
    answer = client.post("/devices/enrollment", data={"csrf_token": token, "ttl": "99d"},
                         headers={"HX-Request": "true"})
    assert answer.status_code == 422 and "not &#39;99d&#39;" in answer.text


def test_images_list_the_registry_or_say_why_not(portal):
    client, fake = portal
    html = client.get("/images").text
    assert "<code>dragonball/registry</code>" in html and ">latest<" in html
    fake.catalog = {}
    assert "The registry holds no images." in client.get("/images").text
    fake.catalog = None
    html = client.get("/images").text
    assert "no registry answers at 10.0.0.1:5000 (is it running?)" in html


def test_events_newest_first_a_page_at_a_time(portal, store):
    client, _ = portal
    for n in range(60):
        store.record("test.event", "tester", "10.0.0.9", {"n": n})
    html = client.get("/events").text
    numbers = [int(n) for n in re.findall(r"n=(\d+)", html)]
    assert numbers[:3] == [59, 58, 57] and len(numbers) == 50
    older = re.search(r'href="/events\?before=(\d+)" rel="next"', html).group(1)
    second = client.get(f"/events?before={older}").text
    assert [int(n) for n in re.findall(r"n=(\d+)", second)][:2] == [9, 8]
    assert 'rel="next"' not in second and "session.created" in second


def test_the_events_page_shows_an_upgrades_history_alone(portal, store):
    client, _ = portal
    one, two = {"name": "notes", "version": "0.1.0"}, {"name": "notes", "version": "0.2.0"}
    upgrade_audit.record_upgrade(store, "started", one, two)
    upgrade_audit.record_upgrade(store, "phase_failed", one, two, phase="app",
                                 error="notes_api did not start")
    upgrade_audit.record_upgrade(store, "rolled_back", two, one)
    store.record("test.event", "tester", None, {})
    every = client.get("/events").text
    assert "test.event" in every and 'href="/events?kind=upgrade"' in every
    html = client.get("/events?kind=upgrade").text
    assert "test.event" not in html and "session.created" not in html
    assert re.findall(r"<code>(upgrade\.\w+)</code>", html) == [
        "upgrade.rolled_back", "upgrade.phase_failed", "upgrade.started"]
    assert "error=notes_api did not start from=notes 0.1.0 phase=app to=notes 0.2.0" in html
    assert "No events" not in client.get("/events?kind=nonsense").text   # all, unfiltered


def test_page_text_is_escaped(portal, store):
    client, _ = portal
    store.record("test.event", "<script>alert(1)</script>", None, {})
    html = client.get("/events").text
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html

"""dragonball.portal_client against the real portal app in-process (its TestClient as the
transport of the client's own requests session): each answer mapped to the right error with
the API's own words, the CA pinned whatever the environment says, the login file."""

from __future__ import annotations

import os
import pathlib
import socket
import stat

import pytest

from dragonball import pki
from dragonball import portal_client as pc
from dragonball import portal_login as pl
from dragonball.errors import Category
from portal_client_fakes import URL, apps_app, mount
from portal_web_fakes import ADMIN_PASSWORD, make_client, make_settings
from test_portal_app import FakeCluster


@pytest.fixture
def store(portal_store):
    """The store with the admin and s1 (tests/unit/conftest.py)."""
    return portal_store


@pytest.fixture
def portal_app(store, tmp_path, monkeypatch):
    """The real portal app (fake Swarm, fake page sources) behind every PortalClient."""
    test_client, _ = make_client(store, make_settings(tmp_path), FakeCluster())
    return mount(monkeypatch, test_client.app)


def _client(**kwargs) -> pc.PortalClient:
    return pc.PortalClient(URL, "/nonexistent/ca.crt", **kwargs)


@pytest.mark.parametrize("text, url", [
    ("10.0.0.5", "https://10.0.0.5:8443"), ("10.0.0.5:9443", "https://10.0.0.5:9443"),
    ("https://portal.plant:8443/", "https://portal.plant:8443"),
    ("[fd00::5]:8443", "https://[fd00::5]:8443"), ("fd00::5", None),
    ("http://10.0.0.5", None), ("10.0.0.5:99999", None), ("10.0.0.5/api", None), ("", None)])
def test_portal_url(text, url):
    if url is None:
        with pytest.raises(pc.PortalInvalid) as e:
            pc.portal_url(text)
        assert e.value.exit_status == 2 and "HOST:PORT" in e.value.hint
    else:
        assert pc.portal_url(text) == url


def test_the_ca_is_pinned_whatever_the_environment_says(monkeypatch, tmp_path):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    client = pc.PortalClient(URL, str(tmp_path / "ca.crt"), token="t")
    merged = client.session.merge_environment_settings(URL, {}, None, None, None)
    assert merged["verify"] == str(tmp_path / "ca.crt") and not merged["proxies"]
    assert client.session.trust_env is False


def test_a_token_from_basic_auth_then_calls_with_it(portal_app):
    answer = _client(basic=("admin", ADMIN_PASSWORD)).create_token()
    assert set(answer) == {"token", "expires", "expires_at"}
    with _client(token=answer["token"]) as client:
        assert [d["hostname"] for d in client.devices()] == ["s1"]
        assert client.end_token() == {"ended": True}
        with pytest.raises(pc.PortalAuthError) as e:
            client.devices()
    assert e.value.status == 401 and e.value.exit_status == 6
    assert "unknown or expired" in e.value.message and "dragonball login" in e.value.hint


def test_a_wrong_password_is_an_auth_error_with_the_portals_words(portal_app):
    with pytest.raises(pc.PortalAuthError) as e:
        _client(basic=("admin", "wrong")).devices()
    assert e.value.message == "wrong user name or password" and e.value.exit_status == 6


def test_too_many_failures_say_when_to_try_again(portal_app):
    for _ in range(10):
        with pytest.raises(pc.PortalAuthError):
            _client(basic=("admin", "wrong")).create_token()
    with pytest.raises(pc.PortalAuthError) as e:
        _client(basic=("admin", ADMIN_PASSWORD)).create_token()
    assert e.value.status == 429 and "too many failed logins" in e.value.message
    assert e.value.hint.startswith("wait ") and e.value.exit_status == 6


def test_codes_give_the_join_command_and_a_bad_ttl_is_invalid(portal_app, store):
    with _client(basic=("admin", ADMIN_PASSWORD)) as client:
        info = client.new_code("1h")
        assert info["command"][:5] == ["sudo", "./DragonBall-0.1.0.bin", "install", "--role",
                                       "device"]
        assert info["code"] not in info["command"] and info["answers"]["enrollment_code"] == \
            info["code"]
        with pytest.raises(pc.PortalInvalid) as e:
            client.new_code("1y")
    assert e.value.status == 422 and "not a duration" in e.value.message
    assert [ev["actor"] for ev in store.events_before(None, 50)
            if ev["kind"] == "code.created"] == ["admin (api)"]


def test_codes_without_credentials_are_refused(portal_app):
    with pytest.raises(pc.PortalAuthError):
        _client().new_code("24h")


def test_an_unknown_call_is_not_found_and_says_the_portal_may_be_older(portal_app):
    with pytest.raises(pc.PortalNotFound) as e:
        _client(basic=("admin", ADMIN_PASSWORD)).call("GET", "/api/v1/no-such-call")
    assert e.value.status == 404 and "older version" in e.value.hint
    assert e.value.exit_status == 3


def test_a_server_defect_is_internal_pointing_at_the_portals_log(monkeypatch):
    mount(monkeypatch, apps_app())
    with pytest.raises(pc.PortalInternal) as e:
        _client(token="t").call("GET", "/api/v1/boom")
    assert e.value.exit_status == 70
    assert "(500)" in e.value.message and "journalctl -u dragonball-portal" in e.value.hint


@pytest.mark.parametrize("status, body, category", [
    (400, {}, Category.INVALID), (422, {"category": "invalid"}, Category.INVALID),
    (401, {}, Category.DENIED), (403, {}, Category.DENIED), (429, {}, Category.DENIED),
    (404, {}, Category.NOT_FOUND), (409, {}, Category.CONFLICT),
    (502, {}, Category.UNAVAILABLE), (503, {"category": "unavailable"}, Category.UNAVAILABLE),
    (500, {"category": "failed"}, Category.FAILED), (500, {}, Category.INTERNAL),
    (500, {"category": "internal"}, Category.INTERNAL), (418, {}, Category.FAILED)])
def test_the_category_of_an_answer(status, body, category):
    """The HTTP status first (CATEGORY_OF_HTTP), then the answer's own word: a remote
    command ends with the exit status its local twin would."""
    assert pc.category_of_answer(status, body) is category


def test_an_api_error_keeps_its_hint_and_problems(monkeypatch):
    mount(monkeypatch, apps_app())
    with _client(token="t") as client:
        with pytest.raises(pc.PortalNotFound) as e:
            client.action("notes", "nope", "start")
        assert e.value.message == "no service nope in app notes"
        assert e.value.hint == "its services: store, web"
        assert e.value.exit_status == 3  # 404: not found, as the local command says
        with pytest.raises(pc.PortalInvalid) as e:
            client.plan("app: notes\n", "notes.yaml")
        assert e.value.problems == [{"path": "services", "message": "is missing"}]
        assert e.value.exit_status == 2 and e.value.to_dict()["problems"] == e.value.problems


@pytest.mark.parametrize("status, body, exit_status", [
    (400, {}, 2), (404, {}, 3), (409, {}, 4), (422, {}, 2), (401, {}, 6), (403, {}, 6),
    (429, {}, 6), (500, {"category": "failed"}, 1), (500, {}, 70), (502, {}, 5),
    (503, {}, 5), (504, {}, 5)])
def test_each_http_status_ends_with_its_categorys_exit_status(status, body, exit_status):
    category = pc.category_of_answer(status, {"error": "x"} | body)
    assert pc.ERROR_OF[category]("x", status=status).exit_status == exit_status


def test_a_failed_job_takes_its_category_and_gives_its_result_in_json():
    job = {"id": "j", "error": "web on node-a: exited 1", "hint": "fix it",
           "category": "failed", "result": {"service": "web", "server": "node-a",
                                            "output": "", "healthy": ["api"]}}
    error = pc.JobFailed(job)
    assert error.exit_status == 1 and error.to_dict() == {
        "error": "web on node-a: exited 1", "hint": "fix it", "category": "failed",
        "service": "web", "server": "node-a", "output": "", "healthy": ["api"]}
    assert pc.JobFailed(job | {"category": "unavailable", "result": None}).exit_status == 5


def test_a_name_cannot_change_the_route(monkeypatch):
    adapter = mount(monkeypatch, apps_app())
    with pytest.raises(pc.PortalNotFound):
        _client(token="t").action("notes", "../../jobs/1", "start")
    assert adapter.sent[-1].path_url == "/api/v1/apps/notes/services/..%2F..%2Fjobs%2F1/start"


def test_nothing_listening_is_unreachable_with_a_hint(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ca = pki.create_ca()
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    with pytest.raises(pc.PortalUnreachable) as e:
        pc.PortalClient(f"https://127.0.0.1:{port}", str(tmp_path / "ca.crt"),
                        timeout=2).devices()
    assert e.value.exit_status == 5 and f"127.0.0.1:{port}" in e.value.message
    assert "/healthz" in e.value.hint
    with pytest.raises(pc.PortalUnreachable) as e:
        pc.PortalClient(f"https://127.0.0.1:{port}", "/nonexistent/ca.crt").devices()
    assert "cannot use the CA file /nonexistent/ca.crt" in e.value.message


def test_wait_job_gives_each_event_once_and_the_final_job(monkeypatch):
    mount(monkeypatch, apps_app())
    seen: list = []
    with _client(token="t") as client:
        job = client.wait_job(client.action("notes", "web", "start"), seen.append,
                              sleep=lambda s: None)
    assert [e["state"] for e in seen] == ["starting", "healthy"]
    assert job["state"] == "done" and job["result"] == {"app": "notes", "service": "web",
                                                        "start": ["web"]}


def test_a_failed_job_raises_with_its_error_and_events(monkeypatch):
    mount(monkeypatch, apps_app(fail_jobs=True))
    with _client(token="t") as client:
        with pytest.raises(pc.JobFailed) as e:
            client.wait_job(client.apply("services: {}", "x.yaml"), sleep=lambda s: None)
    assert e.value.message == "web failed its status check" and e.value.exit_status == 1
    assert [ev["state"] for ev in e.value.job["events"]] == ["starting", "failed"]


def test_a_job_still_running_at_the_timeout_says_so(monkeypatch):
    mount(monkeypatch, apps_app(polls=1000))
    now = [0.0]
    with _client(token="t") as client:
        job_id = client.action("notes", "web", "start")
        with pytest.raises(pc.PortalFailed) as e:
            client.wait_job(job_id, timeout=1, clock=lambda: now[0],
                            sleep=lambda s: now.__setitem__(0, now[0] + 5))
    assert "still runs on the portal after 1 s" in e.value.message


def test_the_login_file_is_0600_in_a_0700_folder_and_reads_back(tmp_path):
    path = pl.login_path({"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert path == tmp_path / "cfg" / "dragonball" / "portal.json"
    login = pl.Login(URL, "/etc/ca.crt", "secret-token", "admin", "2030-01-01T00:00:00+00:00")
    pl.save_login(login, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert pl.load_login(path) == login
    assert os.listdir(path.parent) == ["portal.json"]
    assert pl.login_path({"HOME": "/home/x"}) == pathlib.Path(
        "/home/x/.config/dragonball/portal.json")


def test_no_login_and_a_broken_login(tmp_path):
    environ = {"XDG_CONFIG_HOME": str(tmp_path)}
    with pytest.raises(pc.PortalAuthError) as e:
        pl.saved_login(environ)
    assert "dragonball login --portal" in e.value.hint and e.value.exit_status == 6
    pl.login_path(environ).parent.mkdir(parents=True)
    pl.login_path(environ).write_text("{not json")
    with pytest.raises(pc.PortalAuthError) as e:
        pl.saved_login(environ)
    assert "remove it" in e.value.hint

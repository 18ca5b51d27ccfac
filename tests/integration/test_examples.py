"""The notes example app (examples/): web -> api -> store, in real containers.

The images are built by `build.py examples`, as a release engineer builds them, and run the way
the orchestrator will run them: one user-defined network, each module reachable by its name,
storage/ and log/ on the host, parameters in DRAGONBALL_PARAMS, the images' own HEALTHCHECK.
Only loopback (the web's published port) and the test's own network are used.

The app and its helpers are tests/notes_app.py. The tests share one running app and run in file order; each leaves the app as it found it,
except the last, which stops everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import docker
import pytest

from notes_app import (MODULE_FOLDER, MODULES, STORE_PASSWORD, NotesApp, config_change, http,
                       image, run_sh)
from support import LABELS, ROOT, RUN_ID


@pytest.fixture(scope="module")
def example_images(docker_client, base_image) -> None:
    """`build.py examples` builds all three (the base is cached by then)."""
    subprocess.run([sys.executable, "build.py", "examples"], check=True, cwd=ROOT)
    for name in MODULES:
        docker_client.images.get(image(name))


@pytest.fixture(scope="module")
def app(docker_client, example_images, tmp_path_factory):
    network = docker_client.networks.create(f"notes-{RUN_ID}", driver="bridge", labels=LABELS)
    notes = NotesApp(docker_client, network, tmp_path_factory.mktemp("notes"))
    for name in MODULES:  # dependency order, as the orchestrator starts them
        notes.run(name)
    notes.wait_healthy()
    yield notes
    for container in notes.containers.values():
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
    network.remove()


def redis_cli(app: NotesApp, *args: str) -> str:
    """redis-cli in the store container; the password through the environment only."""
    code, out = app.containers["store"].exec_run(["redis-cli", *args],
                                                 environment={"REDISCLI_AUTH": STORE_PASSWORD})
    assert code == 0, out
    return out.decode().strip()


def test_each_image_holds_a_module_that_follows_the_spec(docker_client, example_images):
    for name in MODULES:
        out = docker_client.containers.run(image(name), ["check"], labels=LABELS, remove=True)
        module = MODULE_FOLDER.get(name, name)     # the web is the built-in Service
        assert f"module {module} follows the spec" in out.decode(), out.decode()


def test_a_note_posted_through_web_reaches_the_store_and_reads_back(app):
    text = f"note {RUN_ID} through web, api and store"
    status, note = http("POST", f"{app.web_url}/api/notes", {"text": text})
    assert status == 201, note
    assert note["text"] == text
    assert note["by"] == app.containers["api"].attrs["Config"]["Hostname"]
    status, listing = http("GET", f"{app.web_url}/api/notes")
    assert status == 200
    assert note in listing["notes"]
    stored = [json.loads(item) for item in redis_cli(app, "LRANGE", "notes", "0", "-1").splitlines()]
    assert note in stored


def test_bad_requests_get_json_errors(app):
    assert http("POST", f"{app.web_url}/api/notes", {"txt": "x"})[0] == 400
    assert http("POST", f"{app.web_url}/api/notes", {"text": ""})[0] == 400
    status, body = http("GET", f"{app.web_url}/api/nothing-here")
    assert status == 404 and "error" in body


def test_info_json_is_ok_and_describes_each_module(app):
    expected = {"store": ["redis 7.", "role master", "password: set"],
                "api": ["notes-api 1.0.0", "store: store:6379 (up)", "hello from the test"],
                "web": ["backends: api:8080", "upstreams api:8080 -> "]}
    for name in MODULES:
        done = run_sh(app.containers[name], "info", "--json")
        report = json.loads(done.stdout)
        assert done.returncode == 0 and report["ok"] is True, done.stdout + done.stderr
        assert report["module"] == MODULE_FOLDER.get(name, name)
        assert report["phase"] == "running"
        output = "".join(script["output"] for script in report["scripts"])
        for fragment in expected[name]:
            assert fragment in output, f"{name} info lacks {fragment!r}:\n{output}"


def test_api_applies_new_parameters_on_sighup_without_restart(app):
    api = app.containers["api"]
    pid_before = api.exec_run(["cat", "/run/notes-api/notes_api.pid"]).output
    _, info_before = http("GET", f"{app.web_url}/api/info")
    code, report = config_change(api, {"greeting": "changed live"})
    assert code == 0 and report["ok"], report
    status, info = http("GET", f"{app.web_url}/api/info")
    assert status == 200 and info["greeting"] == "changed live"
    assert info["generation"] == info_before["generation"] + 1
    assert api.exec_run(["cat", "/run/notes-api/notes_api.pid"]).output == pid_before
    code, report = config_change(api, {"store_port": "not a port"})
    assert code == 1 and report["failed_script"] == "1_check_params.sh", report
    assert config_change(api, {"greeting": "hello from the test"})[0] == 0


def test_web_without_backends_answers_503_then_recovers(app):
    web = app.containers["web"]
    url = f"{app.web_url}/api/notes"
    code, report = config_change(web, {"backends": []})
    assert code == 0 and report["ok"], report
    # From the moment config_change returns, every request sees the new config.
    answers = [http("GET", url) for _ in range(20)]
    assert answers == [(503, {"error": "no backend is configured", "backends": []})] * 20
    code, report = config_change(web, {"backends": ["api:8080"]})
    assert code == 0 and report["ok"], report
    assert [http("GET", url)[0] for _ in range(20)] == [200] * 20


def test_web_refuses_invalid_backends_and_keeps_serving(app):
    web = app.containers["web"]
    code, report = config_change(web, {"backends": ["api 8080"]})
    assert code == 1 and report["ok"] is False
    assert report["failed_script"] == "1_render_conf.sh"
    assert "is not \"host:port\"" in report["scripts"][-1]["output"]
    assert http("GET", f"{app.web_url}/api/notes")[0] == 200
    report = json.loads(run_sh(web, "info", "--json").stdout)
    assert "backends: api:8080\n" in report["scripts"][0]["output"]


def test_store_applies_maxmemory_live_and_keeps_data_and_params_when_recreated(app):
    store = app.containers["store"]
    code, report = config_change(store, {"maxmemory": "96mb"})
    assert code == 0 and report["ok"], report
    assert redis_cli(app, "CONFIG", "GET", "maxmemory").splitlines()[1] == str(96 * 2**20)
    text = f"survivor {RUN_ID}"
    assert http("POST", f"{app.web_url}/api/notes", {"text": text})[0] == 201

    store.stop(timeout=10)
    store.reload()
    assert store.attrs["State"]["ExitCode"] == 0, app.logs()
    store.remove()
    app.run("store")
    app.wait_healthy("store")

    assert redis_cli(app, "CONFIG", "GET", "maxmemory").splitlines()[1] == str(96 * 2**20)
    status, listing = http("GET", f"{app.web_url}/api/notes")
    assert status == 200, listing
    assert text in [note["text"] for note in listing["notes"]]


def test_the_store_password_is_never_printed(app):
    seen = [app.logs()]
    for name in MODULES:
        seen.append(run_sh(app.containers[name], "info", "--json").stdout)
        seen += [p.read_text(errors="replace") for p in (app.root / name / "log").rglob("*")
                 if p.is_file()]
    assert "password: set" in "".join(seen)  # the store's info was read
    assert STORE_PASSWORD not in "".join(seen)


def test_docker_stop_runs_the_stop_actions_and_exits_0(app):
    stop_lines = {"web": "[stop/1_stop_nginx.sh] service: nginx stopped",
                  "api": "[stop/1_stop_api.sh] api: notes-api stopped",
                  "store": "[stop/1_save_and_shutdown.sh] store: redis-server stopped cleanly"}
    for name in reversed(MODULES):  # dependents first
        container = app.containers[name]
        container.stop(timeout=10)
        container.reload()
        logs = container.logs().decode()
        assert container.attrs["State"]["ExitCode"] == 0, logs
        assert stop_lines[name] in logs, logs
    assert "store: SAVE done" in app.containers["store"].logs().decode()

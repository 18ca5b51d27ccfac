"""The pure parts of the agent's application calls (base_images/agent/agent/module): the
checks of exec and params requests, what /v1/tasks says of a container, the output's tail,
revision ordering; and the params folder written in a temporary directory."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest

from support import ROOT

sys.path.insert(0, str(ROOT / "base_images" / "agent" / "agent" / "module"))
import agent_params  # noqa: E402
import agent_tasks  # noqa: E402

sys.path.pop(0)


# --- params -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["notes", "a", "api-2", "a" + "b" * 62])
def test_names_that_make_one_safe_folder(name):
    assert agent_params.name_problems(name, name) == []


@pytest.mark.parametrize("name", ["", "Notes", "2api", "-api", "a" + "b" * 63, "..", ".",
                                  "a/b", "a.b", "notes\n", "a_b", None, 3, "../etc"])
def test_names_that_are_refused(name):
    assert len(agent_params.name_problems(name, "ok")) == 1
    assert "service must match" in agent_params.name_problems("ok", name)[0]


def test_put_bodies_every_problem_at_once():
    assert agent_params.put_problems({"app": "notes", "service": "api", "revision": 0,
                                      "params": {}}) == []
    problems = agent_params.put_problems({"app": "Notes", "service": "x/y", "revision": True,
                                          "params": [], "extra": 1})
    assert len(problems) == 5 and "unknown fields: extra" in problems
    assert agent_params.put_problems({"app": "a", "service": "b", "revision": -1,
                                      "params": {}}) == ["revision must be an integer >= 0, "
                                                         "got -1"]


def test_revision_ordering():
    assert not agent_params.is_stale(None, 0)       # nothing written yet
    assert not agent_params.is_stale(4, 4)          # the same again: a retried call
    assert not agent_params.is_stale(4, 5)
    assert agent_params.is_stale(5, 4)
    assert agent_params.parse_revision("12\n") == 12
    assert agent_params.parse_revision("") is None and agent_params.parse_revision("x") is None


def test_the_store_writes_0600_files_in_0700_folders_and_refuses_an_older_revision(tmp_path):
    store = agent_params.ParamsStore(str(tmp_path))
    store.put("notes", "api", 3, {"level": 1, "password": "s3cret"})
    folder = tmp_path / "notes" / "api"
    assert json.loads((folder / "params.json").read_text()) == {"level": 1,
                                                                "password": "s3cret"}
    assert (folder / "revision").read_text() == "3\n"
    assert stat.S_IMODE((folder / "params.json").stat().st_mode) == 0o600
    for path in (folder, folder.parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    with pytest.raises(agent_params.Conflict) as conflict:
        store.put("notes", "api", 2, {"level": 0})
    assert conflict.value.current == 3
    assert json.loads((folder / "params.json").read_text())["level"] == 1
    store.put("notes", "api", 3, {"level": 2})     # the same revision: written again
    store.put("notes", "web", 1, {})
    assert sorted(os.listdir(folder)) == ["params.json", "revision"]  # no temporary left
    assert store.delete("notes", "api") and not folder.exists()
    assert (tmp_path / "notes").is_dir()            # web is still there
    assert store.delete("notes", "web") and not (tmp_path / "notes").exists()
    assert not store.delete("notes", "web")
    with pytest.raises(ValueError):
        store.folder("..", "api")


# --- tasks and exec ------------------------------------------------------------------------------

INSPECTED = {
    "Id": "c0ffee", "Name": "/notes_api.2.k3j4",
    "Config": {"Labels": {"io.dragonball.app": "notes", "io.dragonball.service": "api",
                          "io.dragonball.kind": "backend",
                          "com.docker.swarm.task.id": "k3j4",
                          "com.docker.swarm.task.name": "notes_api.2.k3j4"}},
    "State": {"Status": "running", "Running": True, "StartedAt": "2025-01-02T03:04:05.6Z",
              "Health": {"Status": "healthy"}}}


def test_a_task_from_its_container():
    assert agent_tasks.task_of(INSPECTED) == {
        "container": "c0ffee", "name": "notes_api.2.k3j4", "app": "notes", "service": "api",
        "kind": "backend", "task_id": "k3j4", "slot": 2, "state": "running",
        "health": "healthy", "started_at": "2025-01-02T03:04:05.6Z"}
    plain = {"Id": "x", "Name": "/x", "Config": {"Labels": {"io.dragonball.app": "notes"}},
             "State": {"Status": "exited"}}
    task = agent_tasks.task_of(plain)
    assert task["health"] == "none" and task["slot"] is None and task["service"] is None
    assert agent_tasks.slot_of("dragonball-agent.wq2b7.k3j4") is None  # a global service's
    assert agent_tasks.is_app_container(INSPECTED)
    assert not agent_tasks.is_app_container({"Config": {"Labels": None}})
    assert not agent_tasks.is_app_container({"Config": {"Labels": {"io.dragonball.app": ""}}})


def test_exec_runs_run_sh_with_the_input_on_stdin_never_in_argv():
    request = agent_tasks.exec_request({"container": "c0ffee", "action": "config_change",
                                        "input": {"password": "s3cret"}, "replace": True,
                                        "timeout": 30})
    argv = request.argv()
    assert argv == ["timeout", "-k", "5", "31", "/opt/dragon_ball/bin/run.sh",
                    "config_change", "-", "--json", "--replace"]
    assert "s3cret" not in " ".join(argv) and b"s3cret" in request.stdin()
    assert agent_tasks.exec_request({"container": "c", "action": "notify", "input": {}}
                                    ).argv()[-3:] == ["notify", "-", "--json"]
    status = agent_tasks.exec_request({"container": "c", "action": "status"})
    assert status.argv()[-2:] == ["status", "--json"] and status.stdin() == b""
    assert status.timeout == 60


@pytest.mark.parametrize("body, problem", [
    ({"action": "status"}, "container must be"),
    ({"container": "c", "action": "start"}, "action must be one of"),
    ({"container": "c", "action": "config_change"}, "config_change needs an input"),
    ({"container": "c", "action": "notify", "input": [1]}, "input must be a JSON object"),
    ({"container": "c", "action": "info", "timeout": 601}, "timeout must be"),
    ({"container": "c", "action": "info", "timeout": 0}, "timeout must be"),
    ({"container": "c", "action": "info", "timeout": "5"}, "timeout must be"),
    ({"container": "c", "action": "info", "replace": True}, "replace must be"),
    ({"container": "c", "action": "info", "env": {}}, "unknown fields: env"),
])
def test_exec_requests_that_are_refused(body, problem):
    with pytest.raises(agent_tasks.BadRequest) as refused:
        agent_tasks.exec_request(body)
    assert any(problem in p for p in refused.value.problems), refused.value.problems


def test_the_report_and_the_log_tail():
    assert agent_tasks.report_of(b'{"ok": true}\n') == {"ok": True}
    assert agent_tasks.report_of(b"refusing to run\n") is None
    assert agent_tasks.report_of(b"[1]") is None
    assert agent_tasks.logs_tail(None) == 200 and agent_tasks.logs_tail("5000") == 5000
    assert agent_tasks.text_tail("é".encode() * 3, 5) == "éé"  # a cut sequence dropped
    for bad in ("0", "5001", "-1", "ten"):
        with pytest.raises(agent_tasks.BadRequest):
            agent_tasks.logs_tail(bad)

"""The agent's application calls (the tasks, their logs, exec, the parameters) through the
portal's client, over the agent's real server with the engine played: what is answered,
what is refused, the body limits. Split from test_agent_server.py (its fixtures: the agent's
modules, the certificates, the settings)."""

from __future__ import annotations

import json
import os

import pytest

from dragonball.agent_client import AgentError
from test_agent_server import agentd, client, https, pem, settings_of  # noqa: F401

# --- the application calls, with the engine played (its adapter is tested for real in
# --- tests/integration/test_agent_app.py) ---------------------------------------------------

class PlayedEngine:
    """agent_engine.Engine's calls: one app container, one other, an exec that may hang."""

    def __init__(self, engine_module) -> None:
        self.api, self.execs = engine_module, []
        self.app = {"Id": "a" * 64, "Name": "/notes_api.1.t1", "State": {"Running": True},
                    "Config": {"Labels": {"io.dragonball.app": "notes",
                                          "io.dragonball.service": "api"}}}
        self.other = {"Id": "b" * 64, "Name": "/portal", "State": {"Running": True},
                      "Config": {"Labels": {}}}

    def inspect(self, ref):
        for c in (self.app, self.other):
            if ref in (c["Id"], c["Name"].lstrip("/")):
                return c
        raise self.api.DockerError(404, f"No such container: {ref}")

    def containers(self, label):
        return [self.app]

    def logs(self, container, tail):
        return ["one", "two"][-tail:]

    def exec_run(self, container_id, argv, stdin, timeout, output_limit):
        self.execs.append((container_id, argv, stdin))
        if json.loads(stdin or b"{}").get("hang"):
            raise self.api.ExecTimeout(timeout, b"still working")
        return self.api.ExecResult(0, b'{"ok": true}', b'{"ok": true}\nsaid on stderr', 0.5)


@pytest.fixture
def app_agent(agentd, pem, tmp_path):
    engine = PlayedEngine(agentd.agent_engine)
    server = agentd.agent_server.Agent(settings_of(agentd, pem, tmp_path), engine=engine).start()
    server.engine = engine
    yield server
    server.stop()


def test_the_application_calls_through_the_client(app_agent, pem, tmp_path):
    with client(pem, app_agent.port) as agents:
        assert [t["app"] for t in agents.tasks("127.0.0.1")] == ["notes"]
        done = agents.exec("127.0.0.1", "notes_api.1.t1", "config_change", {"pw": "s3cret"},
                           timeout=5, replace=True)
        assert done["exit_code"] == 0 and done["report"] == {"ok": True}
        assert done["container"] == "a" * 64 and "said on stderr" in done["output"]
        (_, argv, stdin), = app_agent.engine.execs
        assert "--replace" in argv and "s3cret" not in " ".join(argv)
        assert json.loads(stdin) == {"pw": "s3cret"}
        assert agents.logs("127.0.0.1", "a" * 64, tail=1) == ["two"]
        assert agents.put_params("127.0.0.1", "notes", "api", 2, {"pw": "x"})["revision"] == 2
        with pytest.raises(AgentError, match="HTTP 409") as older:
            agents.put_params("127.0.0.1", "notes", "api", 1, {})
        assert older.value.status == 409 and older.value.body["revision"] == 2
        assert (tmp_path / "params/notes/api/params.json").exists()
        assert agents.delete_params("127.0.0.1", "notes", "api")["removed"] is True
        assert not (tmp_path / "params/notes").exists()


@pytest.mark.parametrize("call, status", [
    (lambda a: a.exec("127.0.0.1", "portal", "status"), 403),
    (lambda a: a.logs("127.0.0.1", "portal"), 403),
    (lambda a: a.exec("127.0.0.1", "nothing", "status"), 404),
    (lambda a: a.exec("127.0.0.1", "notes_api.1.t1", "config_change", {"hang": 1},
                      timeout=1), 504),
    (lambda a: a.exec("127.0.0.1", "notes_api.1.t1", "start"), 400),
    (lambda a: a.logs("127.0.0.1", "notes_api.1.t1", tail=0), 400),
    (lambda a: a.put_params("127.0.0.1", "../etc", "api", 1, {}), 400),
    (lambda a: a.delete_params("127.0.0.1", "notes", "API"), 400),
    (lambda a: a.get("127.0.0.1", "/v1/exec"), 405),
])
def test_the_application_calls_refused(app_agent, pem, call, status):
    with client(pem, app_agent.port) as agents, pytest.raises(AgentError) as refused:
        call(agents)
    assert refused.value.status == status, refused.value
    if status == 504:
        assert refused.value.body["output"] == "still working"


def test_a_body_that_is_not_a_json_object_is_400(app_agent, pem):
    with client(pem, app_agent.port) as agents:
        url = agents.url("127.0.0.1", "/v1/exec")
        assert agents.session.post(url, data=b"[1]", timeout=5).status_code == 400
        assert agents.session.post(url, data=b"{", timeout=5).status_code == 400


def test_a_body_over_1_mib_is_413_with_a_length_or_chunked(app_agent, pem):
    conn = https(pem, app_agent.port)
    conn.putrequest("PUT", "/v1/params")
    conn.putheader("Content-Length", str(2 << 20))  # and no body sent: refused unread
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    conn = https(pem, app_agent.port)
    chunk = b"x" * 65536
    conn.request("PUT", "/v1/params", body=iter([chunk] * 17), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    answer = conn.getresponse()
    assert answer.status == 413 and "larger than 1048576" in json.loads(answer.read())["error"]
    conn.close()
    assert not os.path.exists(app_agent.settings.params_dir)  # nothing was written

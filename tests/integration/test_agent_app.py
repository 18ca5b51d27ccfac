"""The agent's application calls against this engine: the real agent image (its docker socket
and a params folder mounted as the service mounts them) and a real module container labelled
io.dragonball.app, built FROM dragonballbase. Spoken to with the portal's client over mutual
TLS: tasks, exec (stdin through the Docker exec API), the timeout, logs, params."""

from __future__ import annotations

import json
import stat

import pytest

from agent_lab import agent_container, answering_client, labelled_container, write_agent_pem
from dragonball.agent_client import AgentError
from support import RUN_ID, build_module_image, wait_for, write_module

APP = f"agenttest-{RUN_ID}"
FAST_HEALTH = {"test": ["CMD", "/opt/dragon_ball/bin/run.sh", "status"],
               "interval": 1_000_000_000, "timeout": 30_000_000_000, "retries": 1,
               "start_period": 0}
PROBE = {
    "start/1_serve.sh": 'echo "probe serving greeting=$PARAM_GREETING"\nsleep 100000 &',
    "status/1_ok.sh": "exit 0",
    "info/1_show.sh": 'echo "greeting=$PARAM_GREETING"',
    "config_change/1_apply.sh": 'echo "applying greeting=$PARAM_GREETING"\n'
                                'echo "a line on stderr" >&2\n'
                                'test "$PARAM_GREETING" != slow || sleep 30',
}


@pytest.fixture(scope="module")
def pem(tmp_path_factory):
    folder = write_agent_pem(tmp_path_factory.mktemp("agent-app"))
    (folder / "params").mkdir(mode=0o700)
    return folder


@pytest.fixture(scope="module")
def agent(docker_client, agent_image, pem):
    with agent_container(docker_client, agent_image, pem, f"dbtest-agent-app-{RUN_ID}",
                         {str(pem / "params"): {"bind": "/host/params", "mode": "rw"}}) as c:
        yield c


@pytest.fixture(scope="module")
def probe(docker_client, base_image, tmp_path_factory):
    """A module container of an application (io.dragonball.app), healthy within seconds."""
    image = build_module_image(docker_client, write_module(
        tmp_path_factory.mktemp("probe"), "probe", PROBE))
    with labelled_container(
            docker_client, image, name=f"dbtest-probe-{RUN_ID}", healthcheck=FAST_HEALTH,
            environment={"DRAGONBALL_PARAMS": json.dumps({"greeting": "hello"})},
            labels={"io.dragonball.app": APP, "io.dragonball.service": "probe",
                    "io.dragonball.kind": "backend"}) as container:
        yield container


@pytest.fixture(scope="module")
def agents(pem, agent, probe):
    with answering_client(pem, agent, timeout=10) as client:
        yield client


def probe_task(agents) -> dict | None:
    return next((t for t in agents.tasks("127.0.0.1") if t["app"] == APP), None)


def test_tasks_lists_the_app_container_with_its_health(agents, probe, agent):
    task = wait_for(lambda: (probe_task(agents) or {}).get("health") == "healthy" and
                    probe_task(agents), 60, lambda: json.dumps(probe_task(agents)))
    assert task["container"] == probe.id and task["name"] == probe.name
    assert task["service"] == "probe" and task["kind"] == "backend"
    assert task["state"] == "running" and task["started_at"].startswith("20")
    assert task["slot"] is None and task["task_id"] is None  # not a Swarm task
    assert agent.id not in [t["container"] for t in agents.tasks("127.0.0.1")]


def test_config_change_through_stdin_changes_the_parameters(agents, probe):
    done = agents.exec("127.0.0.1", probe.name, "config_change", {"greeting": "bonjour"},
                       timeout=30)
    assert done["exit_code"] == 0, done
    assert done["report"]["ok"] is True and done["action"] == "config_change"
    assert "applying greeting=bonjour" in done["output"]
    assert "a line on stderr" in done["output"]  # stderr frames too
    info = agents.exec("127.0.0.1", probe.id, "info", timeout=30)
    assert info["exit_code"] == 0
    assert info["report"]["scripts"][0]["output"] == "greeting=bonjour\n"
    status = agents.exec("127.0.0.1", probe.id, "status")
    assert status["exit_code"] == 0 and status["report"]["ok"] is True
    # the parameters went through stdin: not in any exec's command line or environment
    inspected = probe.client.api.inspect_container(probe.id)
    for exec_id in inspected.get("ExecIDs") or []:
        config = probe.client.api.exec_inspect(exec_id)
        assert "bonjour" not in json.dumps(config)


def test_exec_in_a_container_without_the_app_label_is_403(agents, agent):
    with pytest.raises(AgentError) as refused:
        agents.exec("127.0.0.1", agent.id, "status")
    assert refused.value.status == 403
    with pytest.raises(AgentError) as refused:
        agents.logs("127.0.0.1", agent.id)
    assert refused.value.status == 403
    with pytest.raises(AgentError) as missing:
        agents.exec("127.0.0.1", f"no-such-{RUN_ID}", "status")
    assert missing.value.status == 404


def test_an_action_past_its_timeout_is_504_and_is_stopped_in_the_container(agents, probe):
    with pytest.raises(AgentError) as late:
        agents.exec("127.0.0.1", probe.id, "config_change", {"greeting": "slow"}, timeout=2)
    assert late.value.status == 504, late.value
    assert 2 <= late.value.body["seconds"] < 5
    assert late.value.body["output"] == ""  # run.sh --json prints its report at the end

    def supervisor_gone():
        ps = probe.exec_run(["ps", "-eo", "args"]).output.decode()
        return "supervisor config_change" not in ps
    # timeout(1) stopped run.sh after the agent gave up. (Its script, in a session of its
    # own, is the supervisor's to stop when it gets SIGTERM: not asserted here.)
    wait_for(supervisor_gone, 15,
             lambda: probe.exec_run(["ps", "-eo", "pid,pgid,etimes,args"]).output.decode())


def test_logs_returns_the_containers_lines(agents, probe):
    lines = agents.logs("127.0.0.1", probe.id, tail=50)
    assert any("probe serving greeting=hello" in line for line in lines), lines
    assert len(agents.logs("127.0.0.1", probe.id, tail=1)) == 1


def test_put_params_writes_a_0600_file_and_refuses_an_older_revision(agents, pem):
    answer = agents.put_params("127.0.0.1", APP, "probe", 5, {"greeting": "hi", "pw": "s"})
    assert answer == {"app": APP, "service": "probe", "revision": 5}
    folder = pem / "params" / APP / "probe"
    assert json.loads((folder / "params.json").read_text()) == {"greeting": "hi", "pw": "s"}
    assert stat.S_IMODE((folder / "params.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    with pytest.raises(AgentError) as older:
        agents.put_params("127.0.0.1", APP, "probe", 4, {"greeting": "old"})
    assert older.value.status == 409 and older.value.body["revision"] == 5
    assert json.loads((folder / "params.json").read_text())["greeting"] == "hi"
    assert agents.delete_params("127.0.0.1", APP, "probe")["removed"] is True
    assert not (pem / "params" / APP).exists()

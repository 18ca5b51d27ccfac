"""The supervisor in real containers of dragonballbase, on the real engine."""

from __future__ import annotations

import json
import subprocess
import time

import docker
import pytest

from support import LABELS, build_module_image, wait_for, write_module

DOCKER = "/usr/bin/docker"
FAST_HEALTH = {"test": ["CMD", "/opt/dragon_ball/bin/run.sh", "status"],
               "interval": 1_000_000_000, "timeout": 30_000_000_000, "retries": 1,
               "start_period": 0}

EXAMPLE = {
    "start/1_first.sh": 'echo "1_first" >> "$DRAGONBALL_LOG_DIR/order"',
    "start/10_second.sh": 'echo "10_second" >> "$DRAGONBALL_LOG_DIR/order"',
    "start/2_third.sh": 'echo "2_third" >> "$DRAGONBALL_LOG_DIR/order"\n'
                        "sleep 777 &\necho server started",
    "status/1_flag.sh": 'test ! -e "$DRAGONBALL_STORAGE_DIR/sick" || { echo sick; exit 1; }',
    "status/2_hang.sh": 'test -e "$DRAGONBALL_STORAGE_DIR/hang" || exit 0\n'
                        "sleep 888 & sleep 999",
    "info/1_show.sh": 'echo "greeting=$PARAM_GREETING"',
    "config_change/1_apply.sh": 'echo "applied $PARAM_GREETING" >> "$DRAGONBALL_LOG_DIR/order"\n'
                                'echo "$DRAGONBALL_EVENT greeting=$PARAM_GREETING"\n'
                                'test -z "$DRAGONBALL_NOTIFICATION_FILE" || '
                                'cat "$DRAGONBALL_NOTIFICATION_FILE"',
    "stop/1_save.sh": 'echo stopped >> "$DRAGONBALL_LOG_DIR/order"',
}
MANIFEST = '{"timeouts": {"status/2_hang.sh": 1}}'


@pytest.fixture(scope="module")
def example_image(docker_client, base_image, tmp_path_factory):
    root = write_module(tmp_path_factory.mktemp("mod"), "probe", EXAMPLE, MANIFEST)
    return build_module_image(docker_client, root)


@pytest.fixture
def run_probe(docker_client, example_image, tmp_path):
    """Start a container of the probe module with host-mounted log/ and storage/."""
    (tmp_path / "log").mkdir()
    (tmp_path / "storage").mkdir()
    started = []

    def run(healthcheck=FAST_HEALTH, **kw):
        mounts = {str(tmp_path / d): {"bind": f"/opt/dragon_ball/service/probe/{d}",
                                      "mode": "rw"} for d in ("log", "storage")}
        container = docker_client.containers.run(
            example_image, detach=True, labels=LABELS, volumes=mounts,
            healthcheck=healthcheck, **kw)
        started.append(container)
        return container

    run.dir = tmp_path
    yield run
    for container in started:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass  # the test removed it itself


def health(container) -> str:
    container.reload()
    return container.attrs["State"].get("Health", {}).get("Status", "none")


def exec_run(container, *args, stdin: str | None = None):
    return subprocess.run([DOCKER, "exec", "-i", container.id,
                           "/opt/dragon_ball/bin/run.sh", *args],
                          input=stdin, capture_output=True, text=True, timeout=120)


def test_start_runs_in_ascii_order_and_health_follows_status(run_probe):
    container = run_probe()
    wait_for(lambda: health(container) == "healthy", 60, lambda: container.logs().decode())
    order = (run_probe.dir / "log" / "order").read_text().split()
    assert order == ["10_second", "1_first", "2_third"]
    assert b"[start/2_third.sh] server started" in container.logs()
    ps = container.exec_run(["ps", "-eo", "args"]).output.decode()
    assert "sleep 777" in ps, "the process left by a start script must keep running"
    container.exec_run(["touch", "/opt/dragon_ball/service/probe/storage/sick"])
    wait_for(lambda: health(container) == "unhealthy", 60)
    report = json.loads(exec_run(container, "status", "--json").stdout)
    assert report["failed_script"] == "1_flag.sh" and report["scripts"][0]["output"] == "sick\n"
    container.exec_run(["rm", "/opt/dragon_ball/service/probe/storage/sick"])
    wait_for(lambda: health(container) == "healthy", 60)


def test_a_timed_out_script_loses_its_whole_process_group(run_probe):
    # no HEALTHCHECK: its own status runs would start 2_hang.sh concurrently
    container = run_probe(healthcheck={"test": ["NONE"]})
    wait_for(lambda: exec_run(container, "status").returncode == 0, 60,
             lambda: container.logs().decode())
    (run_probe.dir / "storage" / "hang").touch()
    result = exec_run(container, "status", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert report["scripts"][1]["name"] == "2_hang.sh" and report["scripts"][1]["timed_out"]
    ps = container.exec_run(["ps", "-eo", "args"]).output.decode()
    assert "sleep 888" not in ps and "sleep 999" not in ps


def test_docker_stop_runs_stop_actions_and_exits_0(run_probe):
    container = run_probe()
    wait_for(lambda: health(container) == "healthy", 60, lambda: container.logs().decode())
    began = time.monotonic()
    container.stop(timeout=20)
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0, container.logs().decode()
    assert time.monotonic() - began < 15, "the leftover 'sleep 777' must be ended, not waited for"
    assert (run_probe.dir / "log" / "order").read_text().split()[-1] == "stopped"
    assert "stop ok" in (run_probe.dir / "log" / "dragonball" / "supervisor.log").read_text()


def test_parameters_and_storage_survive_container_recreation(run_probe):
    first = run_probe(environment={"DRAGONBALL_PARAMS": '{"greeting": "hello"}'})
    wait_for(lambda: health(first) == "healthy", 60, lambda: first.logs().decode())
    assert exec_run(first, "info").stdout == "greeting=hello\n"
    changed = exec_run(first, "config_change", "--json", stdin='{"greeting": "bonjour"}')
    assert changed.returncode == 0 and json.loads(changed.stdout)["ok"], changed.stdout
    assert exec_run(first, "info").stdout == "greeting=bonjour\n"
    first.remove(force=True)
    second = run_probe(environment={"DRAGONBALL_PARAMS": '{"greeting": "hello"}'})
    wait_for(lambda: health(second) == "healthy", 60, lambda: second.logs().decode())
    assert exec_run(second, "info").stdout == "greeting=bonjour\n"
    assert "applied bonjour" in (run_probe.dir / "log" / "order").read_text()


def test_notify_in_a_portal_owned_container_runs_once_per_seq(run_probe):
    portal = run_probe.dir / "portal"  # what the agent writes on the host
    portal.mkdir()
    (portal / "params.json").write_text('{"greeting": "hello"}')
    container = run_probe(
        environment={"DRAGONBALL_PARAMS_OWNER": "portal",
                     "DRAGONBALL_PARAMS_FROM": "/run/dragonball-params/params.json"},
        mounts=[docker.types.Mount("/run/dragonball-params", str(portal), type="bind",
                                   read_only=True)])
    wait_for(lambda: health(container) == "healthy", 60, lambda: container.logs().decode())
    changed = exec_run(container, "config_change", "-", "--json", stdin='{"greeting": "hi"}')
    assert changed.returncode == 0, changed.stdout + changed.stderr
    note = {"schema": 1, "seq": 1, "app": "notes", "service": "api", "event": "healthy",
            "replicas": {"desired": 1, "running": 1, "healthy": 1},
            "at": "2026-11-28T14:00:00Z", "to": "probe"}
    first = exec_run(container, "notify", "-", "--json", stdin=json.dumps(note))
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads(first.stdout)
    assert (report["event"], report["ok"], report["duplicate"]) == ("notify", True, False)
    output = report["scripts"][0]["output"]
    assert output.startswith("notify greeting=hi\n")
    assert json.loads(output.split("\n", 1)[1]) == note
    again = exec_run(container, "notify", "-", "--json", stdin=json.dumps(note))
    assert again.returncode == 0 and json.loads(again.stdout)["duplicate"] is True
    assert json.loads(again.stdout)["scripts"] == []
    bad = exec_run(container, "notify", "-", stdin='{"seq": 0}')
    assert bad.returncode == 2 and "seq: must be an integer >= 1" in bad.stderr
    assert b"[notify/1_apply.sh] notify greeting=hi" in container.logs()
    order = (run_probe.dir / "log" / "order").read_text().split("\n")
    assert order.count("applied hi") == 2, "config_change once, the notification once"
    assert not (run_probe.dir / "storage" / ".dragonball").exists()


def test_a_failed_start_exits_1_and_the_engine_restarts_it(docker_client, base_image, tmp_path):
    root = write_module(tmp_path, "failing", {"start/1_boom.sh": "echo no disk; exit 5"})
    image = build_module_image(docker_client, root)
    container = docker_client.containers.run(
        image, detach=True, labels=LABELS,
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
    try:
        wait_for(lambda: container.reload() or container.attrs["RestartCount"] >= 1, 60)
        logs = container.logs().decode()
        assert "action/start/1_boom.sh exited with status 5" in logs and "no disk" in logs
    finally:
        container.remove(force=True)


def test_an_invalid_module_is_refused(docker_client, base_image, tmp_path):
    root = write_module(tmp_path, "broken", {"start/1_a.sh": "true"})
    (root / "action" / "start" / "1_a.sh").chmod(0o644)
    (root / "action" / "reload").mkdir()
    image = build_module_image(docker_client, root)
    container = docker_client.containers.run(image, detach=True, labels=LABELS)
    try:
        assert container.wait(timeout=60)["StatusCode"] == 2
        logs = container.logs().decode()
        assert "action/start/1_a.sh: is not executable" in logs
        assert "action/reload/: is not an event folder" in logs
    finally:
        container.remove(force=True)

"""DRAGONBALL_PARAMS_OWNER=portal as real processes: the portal's file, the run folder's record."""

from __future__ import annotations

import json

from supervisor_cli import supervisor  # noqa: F401 (fixture)

SCRIPTS = {
    "config_change/1_apply.sh": 'test "$PARAM_GREETING" != boom || { echo "no boom"; exit 3; }',
    "info/1_show.sh": 'echo "greeting=$PARAM_GREETING file=$(cat "$DRAGONBALL_PARAMS_FILE")"',
    "start/1_show.sh": 'echo "started with $PARAM_GREETING"',
}


def portal_env(tmp_path, params: dict) -> dict:
    """What the orchestrator sets, with the portal's latest file written."""
    initial = tmp_path / "portal" / "params.json"
    initial.parent.mkdir(exist_ok=True)
    initial.write_text(json.dumps(params))
    return {"DRAGONBALL_PARAMS_OWNER": "portal", "DRAGONBALL_PARAMS_FROM": str(initial)}


def greeting(supervisor, env) -> str:
    shown = supervisor("info", env=env)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.split()[0]


def test_changes_live_as_long_as_the_container_and_a_restart_takes_the_portal_file(
        make_module, supervisor, tmp_path):
    root = make_module("demo", SCRIPTS)
    env = portal_env(tmp_path, {"greeting": "hi"})
    proc = supervisor.spawn(env=env)
    try:
        supervisor.wait_phase("running")
        assert greeting(supervisor, env) == "greeting=hi"
        assert supervisor("config_change", stdin='{"greeting": "bonjour"}',
                          env=env).returncode == 0
        assert greeting(supervisor, env) == "greeting=bonjour"
        assert supervisor("config_change", stdin='{"greeting": "boom"}', env=env).returncode == 1
        assert greeting(supervisor, env) == "greeting=bonjour", "a failed change is not kept"
        assert supervisor("status", env=env).returncode == 0
        assert greeting(supervisor, env) == "greeting=bonjour", "status must not undo a change"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    env = portal_env(tmp_path, {"greeting": "hallo"})  # the portal wrote its latest file
    proc = supervisor.spawn(env=env)
    try:
        supervisor.wait_phase("running")
        assert greeting(supervisor, env) == "greeting=hallo"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "[start/1_show.sh] started with hallo" in out
    record = tmp_path / "run" / "params.json"
    assert json.loads(record.read_text()) == {"greeting": "hallo"}
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    assert not (root / "storage" / ".dragonball").exists(), "storage/ is the module's only"


def test_without_a_start_the_initial_file_is_in_force(make_module, supervisor, tmp_path):
    root = make_module("demo", SCRIPTS)
    env = portal_env(tmp_path, {"greeting": "hi"})
    shown = supervisor("info", env=env)
    assert shown.stdout == 'greeting=hi file={"greeting": "hi"}\n'
    assert not (tmp_path / "run" / "params.json").exists(), "only start and changes record"
    assert supervisor("config_change", stdin='{"extra": 1}', env=env).returncode == 0
    assert json.loads((tmp_path / "run" / "params.json").read_text()) == \
        {"greeting": "hi", "extra": 1}
    assert not (root / "storage" / ".dragonball").exists()


def test_a_stale_storage_file_is_ignored_in_portal_mode(make_module, supervisor, tmp_path):
    root = make_module("demo", SCRIPTS)
    (root / "storage" / ".dragonball").mkdir(parents=True)
    stale = root / "storage" / ".dragonball" / "params.json"
    stale.write_text('{"greeting": "from an old deployment"}')
    env = portal_env(tmp_path, {"greeting": "hi"})
    assert greeting(supervisor, env) == "greeting=hi"
    assert supervisor("config_change", stdin='{"greeting": "yo"}', env=env).returncode == 0
    assert stale.read_text() == '{"greeting": "from an old deployment"}'


def test_notify_in_portal_mode_uses_the_applied_params(make_module, supervisor, tmp_path):
    root = make_module("demo", {
        "config_change/1_apply.sh": 'echo "$DRAGONBALL_EVENT $PARAM_GREETING"'})
    env = portal_env(tmp_path, {"greeting": "hi"})
    assert supervisor("config_change", stdin='{"greeting": "yo"}', env=env).returncode == 0
    payload = '{"seq": 1, "service": "api", "event": "stopped"}'
    result = supervisor("notify", "--json", stdin=payload, env=env)
    assert json.loads(result.stdout)["scripts"][0]["output"] == "notify yo\n"
    assert json.loads((tmp_path / "run" / "params.json").read_text()) == {"greeting": "yo"}
    assert not (root / "storage" / ".dragonball").exists()


def test_an_unknown_owner_is_refused(make_module, supervisor):
    make_module("demo", SCRIPTS)
    result = supervisor("info", env={"DRAGONBALL_PARAMS_OWNER": "someone"})
    assert result.returncode == 2
    assert "$DRAGONBALL_PARAMS_OWNER='someone' is not one of: module, portal" in result.stderr

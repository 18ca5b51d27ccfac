"""The module authors' parameter helper (dragonball.module.params, /opt/dragon_ball/bin/params)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dragonball.module import params


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    (tmp_path / "module").mkdir()
    (tmp_path / "module" / "defaults.json").write_text(json.dumps(
        {"port": 8080, "tls": False, "backends": ["api:8080"], "greeting": "hi"}))
    monkeypatch.setenv("DRAGONBALL_MODULE_DIR", str(tmp_path))
    for key in ("PARAM_PORT", "PARAM_TLS", "PARAM_BACKENDS", "DRAGONBALL_PARAMS_FILE"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def test_defaults_then_typed_variables_then_the_params_file(module_dir, monkeypatch):
    monkeypatch.setenv("PARAM_PORT", "9090")
    monkeypatch.setenv("PARAM_TLS", "true")
    monkeypatch.setenv("PARAM_BACKENDS", "a:1, b:2")
    file = module_dir / "p.json"
    file.write_text('{"greeting": "yo", "port": null}')
    monkeypatch.setenv("DRAGONBALL_PARAMS_FILE", str(file))
    assert params.load() == {"port": 9090, "tls": True, "backends": ["a:1", "b:2"],
                             "greeting": "yo"}


def test_a_badly_typed_variable_names_itself(module_dir, monkeypatch):
    monkeypatch.setenv("PARAM_PORT", "eighty")
    with pytest.raises(params.ParamError, match="PARAM_PORT='eighty' is not a valid int"):
        params.load()


def test_a_module_without_defaults_gets_the_file_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAGONBALL_MODULE_DIR", str(tmp_path))
    file = tmp_path / "p.json"
    file.write_text('{"a": 1}')
    assert params.load(str(file)) == {"a": 1}


def test_the_command_prints_shell_assignments_safely(module_dir):
    file = module_dir / "p.json"
    file.write_text(json.dumps({"greeting": "it's $(rm -rf /)"}))
    out = subprocess.run([sys.executable, "-m", "dragonball.module.params", "--file", str(file),
                          "sh", "greeting", "port"], capture_output=True, text=True, check=True,
                         env={"DRAGONBALL_MODULE_DIR": str(module_dir), "PATH": "/usr/bin:/bin"})
    assert out.stdout == "param_greeting='it'\"'\"'s $(rm -rf /)'\nparam_port=8080\n"


def test_the_command_exits_2_on_a_wrong_command_line_or_an_unreadable_file(module_dir):
    env = {"DRAGONBALL_MODULE_DIR": str(module_dir), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    usage = subprocess.run([sys.executable, "-m", "dragonball.module.params", "what"],
                           capture_output=True, text=True, env=env)
    assert usage.returncode == 2 and "params" in usage.stderr
    unreadable = subprocess.run([sys.executable, "-m", "dragonball.module.params", "--file",
                                 str(module_dir / "missing.json"), "get", "port"],
                                capture_output=True, text=True, env=env)
    assert unreadable.returncode == 2 and "cannot read parameters" in unreadable.stderr

"""The registry module's controller (base_images/registry/registry/module/registryctl.py), pure parts."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import yaml

from dragonball.module import scan, validate
from support import ROOT

MODULE_DIR = ROOT / "base_images" / "registry" / "registry"


@pytest.fixture(scope="module")
def ctl():
    sys.path.insert(0, str(MODULE_DIR / "module"))
    try:
        spec = importlib.util.spec_from_file_location("registryctl",
                                                      MODULE_DIR / "module" / "registryctl.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(MODULE_DIR / "module"))


@pytest.fixture
def defaults():
    return json.loads((MODULE_DIR / "module" / "defaults.json").read_text())


def test_the_registry_folder_follows_the_module_spec():
    _, problems = validate(scan(str(MODULE_DIR)))
    assert problems == []


def test_defaults_have_no_problems(ctl, defaults):
    assert ctl.problems(defaults) == []


def test_every_problem_is_listed_at_once(ctl, defaults):
    bad = {**defaults, "port": 70000, "tls_key": "", "delete_enabled": "yes", "log_level": "loud"}
    found = ctl.problems(bad)
    assert len(found) == 4
    assert any(p.startswith("port") for p in found)
    assert any(p.startswith("tls_key") for p in found)


def test_files_are_named_relative_to_the_mounted_folder(ctl, defaults):
    paths = ctl.source_paths({**defaults, "htpasswd": "/abs/htpasswd"})
    assert paths["tls_cert"] == "/etc/dragonball/registry/server.crt"
    assert paths["htpasswd"] == "/abs/htpasswd"


def test_config_is_yaml_distribution_reads(ctl, defaults):
    params = {**defaults, "port": 5443, "realm": 'odd "realm"', "delete_enabled": False}
    text = ctl.render_config(params, ctl.run_paths("/run/r"), "/data/registry", "s3cret")
    config = yaml.safe_load(text)
    assert config["http"] == {"net": "unix", "addr": "/run/r/registry.sock",
                              "relativeurls": True, "secret": "s3cret",
                              "headers": {"X-Content-Type-Options": ["nosniff"]}}
    assert config["auth"]["htpasswd"] == {"realm": 'odd "realm"', "path": "/run/r/htpasswd"}
    assert config["storage"]["filesystem"]["rootdirectory"] == "/data/registry"
    assert config["storage"]["delete"]["enabled"] is False


def test_nginx_takes_tls_and_lets_only_the_writers_file_write(ctl, defaults):
    text = ctl.render_nginx({**defaults, "port": 5443}, ctl.run_paths("/run/r"), "docker-registry")
    assert "user docker-registry;" in text
    assert "listen 5443 ssl;" in text
    assert 'ssl_certificate "/run/r/tls.crt";' in text
    assert 'upstream distribution { server "unix:/run/r/registry.sock"; }' in text
    location = text[text.index("location /v2/ {"):]
    readers = location.index('auth_basic_user_file "/run/r/htpasswd";')
    guarded = location.index("limit_except GET {")
    writers = location.index('auth_basic_user_file "/run/r/push.htpasswd";')
    assert readers < guarded < writers < location.index("}")
    assert "client_max_body_size 0;" in text and "proxy_request_buffering off;" in text


def test_nginx_runs_as_is_when_not_root(ctl, defaults):
    assert "user " not in ctl.render_nginx(defaults, ctl.run_paths("/run/r"), None)


def test_the_writers_file_is_required(ctl, defaults):
    found = ctl.problems({**defaults, "push_htpasswd": ""})
    assert any(p.startswith("push_htpasswd") for p in found)


def test_repositories_are_counted_at_any_depth(ctl, tmp_path):
    repos = tmp_path / "docker" / "registry" / "v2" / "repositories"
    for name in ("notes/web", "notes/api", "dragonball/registry", "single"):
        (repos / name / "_manifests" / "tags").mkdir(parents=True)
        (repos / name / "_layers" / "sha256").mkdir(parents=True)
    assert ctl.repository_count(str(tmp_path)) == 4
    assert ctl.repository_count(str(tmp_path / "missing")) == 0


@pytest.mark.parametrize("status,ok", [(200, True), (401, True), (500, False), (None, False)])
def test_healthy_means_the_api_answers(ctl, status, ok):
    assert ctl.healthy(status) is ok



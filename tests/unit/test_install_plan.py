"""The host's programs (their environment, a missing one) and the install plan: its order,
duplicate ids refused, role steps, the plugins loaded."""

from __future__ import annotations

import json

import pytest

from dragonball.errors import DragonBallError, InstallerError
from dragonball.installer import plan
from dragonball.installer.host import Host
from dragonball.installer.preflight.facts import Facts
from install_fakes import context, no_role_steps, server  # noqa: F401 (fixtures)
from test_install_osprep import load


def test_programs_get_the_callers_library_path_and_a_path_with_sbin(server):
    host = server.host()
    assert host.env["LD_LIBRARY_PATH"] == "/opt/lib"
    assert "LD_LIBRARY_PATH_ORIG" not in host.env
    assert host.env["PATH"].split(":")[0] == "/usr/sbin"
    frozen_only = Host(str(server.root), runner=server, environ={"LD_LIBRARY_PATH": "/tmp/_MEI9"})
    assert "LD_LIBRARY_PATH" not in frozen_only.env


def test_a_missing_program_is_an_error_naming_it(server):
    with pytest.raises(DragonBallError, match="setsid-like is not installed"):
        server.host().run(["setsid-like", "x"])


def test_plan_order_and_duplicate_ids_are_refused(server, tmp_path, no_role_steps):
    ctx = context(server, tmp_path, case="bare-lab-server", role="portal")
    ids = [s.id for s in plan.build_plan(ctx)]
    assert ids == ["os.kernel", "os.limits", "engine.unpack", "engine.packages",
                   "engine.config", "engine.start", "os.firewall"]
    plan.ROLE_STEPS["portal"].append(lambda c: [plan.Step("os.limits", "again", dict)])
    with pytest.raises(InstallerError, match="duplicate step ids: os.limits"):
        plan.build_plan(ctx)


def test_role_steps_come_after_the_firewall(server, tmp_path, no_role_steps):
    ctx = context(server, tmp_path, case="debian12-vm", role="device")
    plan.ROLE_STEPS["device"].append(lambda c: [plan.Step("join.swarm", "join", dict)])
    ids = [s.id for s in plan.build_plan(ctx)]
    assert ids == ["os.kernel", "os.limits", "engine.use", "os.firewall", "join.swarm"]


def test_facts_of_a_case_round_trip(tmp_path):
    _, facts = load("bare-lab-server")
    assert Facts(**json.loads(json.dumps(facts.to_dict()))) == facts


def test_the_plugins_loaded_can_be_limited_for_tests_of_the_base_layer(monkeypatch):
    loaded = []
    monkeypatch.setattr(plan, "PLUGINS", ["a.portal", "b.join"])
    monkeypatch.setattr(plan.importlib, "import_module", loaded.append)
    plan.load_plugins({})
    plan.load_plugins({plan.PLUGINS_ENV: ""})
    plan.load_plugins({plan.PLUGINS_ENV: "x.one, y.two"})
    assert loaded == ["a.portal", "b.join", "x.one", "y.two"]

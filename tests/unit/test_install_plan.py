"""The host's programs (their environment, a missing one) and the install plan: its order,
duplicate ids refused, each role's steps (installer/roles.py)."""

from __future__ import annotations

import json

import pytest

from dragonball.errors import DragonBallError, InstallerError
from dragonball.installer import plan, roles
from dragonball.installer.host import Host
from dragonball.installer.preflight.facts import Facts
from dragonball.shared import ports
from install_fakes import context, server  # noqa: F401 (fixtures)
from test_install_osprep import load


def test_programs_get_the_callers_library_path_and_a_path_with_sbin(server):
    host = server.host()
    assert host.env["LD_LIBRARY_PATH"] == "/opt/lib"
    assert "LD_LIBRARY_PATH_ORIG" not in host.env
    assert host.env["PATH"].split(":")[:2] == ["/opt/dragonball/engine/bin", "/usr/sbin"]
    frozen_only = Host(str(server.root), runner=server, environ={"LD_LIBRARY_PATH": "/tmp/_MEI9"})
    assert "LD_LIBRARY_PATH" not in frozen_only.env


def test_a_missing_program_is_an_error_naming_it(server):
    with pytest.raises(DragonBallError, match="setsid-like is not installed"):
        server.host().run(["setsid-like", "x"])


def test_plan_order_and_duplicate_ids_are_refused(server, tmp_path):
    ctx = context(server, tmp_path, case="bare-lab-server", role="portal")
    ids = [s.id for s in plan.build_plan(ctx, roles.BASE_ONLY)]
    assert ids == ["os.kernel", "os.limits", "engine.files", "engine.units", "engine.config", "engine.start", "os.firewall", "os.firewall_chain"]
    again = {"portal": lambda c: [*roles.base_steps(c), plan.Step("os.limits", "again", dict)]}
    with pytest.raises(InstallerError, match="duplicate step ids: os.limits"):
        plan.build_plan(ctx, again)


def test_role_steps_come_after_the_firewall(server, tmp_path):
    ctx = context(server, tmp_path, case="debian12-vm", role="device")
    ids = [s.id for s in plan.build_plan(ctx, roles.STEPS)]
    assert ids == ["os.kernel", "os.limits", "engine.use", "os.firewall", "os.firewall_chain",
                   "images.load", "release.record", "join.ca",
                   "join.enroll", "join.registry", "firewall.members", "agent.params",
                   "join.swarm", "join.report", "portal.runtime", "portal.standby",
                   "agent.ready"]


def test_the_portal_runs_its_steps_then_the_agents_then_its_first_code(server, tmp_path):
    ctx = context(server, tmp_path, case="bare-lab-server", role="portal")
    ids = [s.id for s in plan.build_plan(ctx, roles.STEPS)]
    assert ids[ids.index("os.firewall"):] == [
        "os.firewall", "os.firewall_chain", "images.load", "release.record", "portal.swarm", "portal.pki", "portal.registry_auth",
        "portal.registry_image", "portal.registry", "portal.registry_trust", "portal.images",
        "portal.runtime", "portal.etcd", "portal.config", "portal.store", "portal.service",
        "agent.params", "agent.pki", "agent.service", "portal.first_code"]  # no join.* step


def test_every_role_has_its_steps_and_base_only_is_the_base_for_each():
    assert set(roles.STEPS) == set(roles.BASE_ONLY) == set(ports.ROLES)
    assert all(make is roles.base_steps for make in roles.BASE_ONLY.values())


def test_facts_of_a_case_round_trip(tmp_path):
    _, facts = load("bare-lab-server")
    assert Facts(**json.loads(json.dumps(facts.to_dict()))) == facts

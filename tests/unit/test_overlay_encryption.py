"""Encrypted overlay networks (shared/overlay.py): decided once per app network, only when
every enrolled server said at its install that its kernel can; the tasks then only on
such servers; the probe a server runs changes nothing on it (its own network namespace)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dragonball.orchestrator import planning, specs
from dragonball.shared import node_labels, overlay
from dragonball.swarm import Node
from orchestrator_fakes import FakeSwarm
from test_orchestrator_control import (NOTES, REGISTRY, agents, registry,  # noqa: F401
                                       spec_file)

ENROLLED = {node_labels.ENROLLED: "true"}


def node(name: str, capable: str | None, enrolled: bool = True) -> Node:
    labels = {**(ENROLLED if enrolled else {}),
              **({overlay.CAPABLE: capable} if capable is not None else {})}
    return Node(f"id-{name}", name, "10.0.0.9", labels=labels)


def test_encrypted_only_when_every_enrolled_server_can():
    assert overlay.decide([node("a", "true"), node("b", "true")])[0] is True
    encrypt, note = overlay.decide([node("a", "true"), node("b", "false"), node("c", None)])
    assert encrypt is False
    assert "NOT encrypted: b, c cannot" in note and "docs/security.md" in note
    # a stranger (not enrolled) neither blocks it nor counts; nobody enrolled: no network
    assert overlay.decide([node("a", "true"), node("x", "false", enrolled=False)])[0] is True
    assert overlay.decide([node("x", "true", enrolled=False)]) == (False, None)


def test_a_long_list_of_servers_is_cut_short():
    note = overlay.decide([node(f"s{i:02}", "false") for i in range(12)])[1]
    assert "s00, s01, s02, s03, s04 and 7 more cannot" in note


def test_the_tasks_of_an_encrypted_app_run_only_where_encryption_works(tmp_path):
    from dragonball.app.spec import load
    spec = load(NOTES, "notes.app.yaml")
    service = spec.services["api"]
    plain = specs.service_spec("notes", "api", service, "img")
    sealed = specs.service_spec("notes", "api", service, "img", encrypted=True)
    assert overlay.CAPABLE_CONSTRAINT not in plain["TaskTemplate"]["Placement"]["Constraints"]
    assert overlay.CAPABLE_CONSTRAINT in sealed["TaskTemplate"]["Placement"]["Constraints"]


def capable_engine(value: str) -> FakeSwarm:
    return FakeSwarm(nodes=(node("node-a", value), node("node-b", value)))


@pytest.mark.parametrize("value,encrypted", [("true", True), ("false", False)])
def test_apply_makes_the_network_as_the_servers_allow_and_says_so(tmp_path, value, encrypted,
                                                                   agents, registry):
    from dragonball.orchestrator.control import Control
    from dragonball.orchestrator.state import AppStore
    from dragonball.portal.store import Store
    engine = capable_engine(value)
    store = Store.open(str(tmp_path / "portal.db"))
    now = [0.0]
    ctl = Control(engine, AppStore(store), agents, registry, REGISTRY, wait_s=5.0,
                  clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    try:
        prepared = ctl.prepare_text(NOTES, "notes.app.yaml")
        notes = prepared.deployment.shown.notes
        assert any(("encrypted (IPsec" in n) if encrypted else ("NOT encrypted" in n)
                   for n in notes), notes
        ctl.apply(spec_file(tmp_path))
        assert overlay.is_encrypted(engine.networks["notes_net"]) is encrypted
        constraints = engine.by_name["notes_api"]["TaskTemplate"]["Placement"]["Constraints"]
        assert (overlay.CAPABLE_CONSTRAINT in constraints) is encrypted
        # applied again: the network is kept as it is, nothing redefined
        engine.calls.clear()
        again = ctl.prepare_text(NOTES, "notes.app.yaml").deployment.shown.notes
        assert not [n for n in again if "overlay network" in n], again
    finally:
        store.close()


def test_an_existing_network_keeps_what_it_is():
    from dragonball.orchestrator.observe import Observation
    servers = (node("a", "true"), node("b", "true"))
    assert planning.network_of(Observation("notes", servers, network={})) == (False, None)
    assert planning.network_of(Observation("notes", (node("a", "false"),),
                                           network={"encrypted": ""})) == (True, None)


@pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("ip") is None,
                    reason="needs unshare and ip (util-linux, iproute2)")
def test_the_probe_runs_in_a_namespace_of_its_own_and_changes_nothing():
    """Whatever this kernel answers (the lab's lacks gcm: exit 3), the machine's own xfrm
    states and mangle rules are as they were."""
    def seen() -> tuple:
        states = subprocess.run(["ip", "xfrm", "state"], capture_output=True, text=True)
        mangle = subprocess.run(["iptables", "-w", "-t", "mangle", "-S"], capture_output=True,
                                text=True)
        return states.stdout, mangle.stdout
    before = seen()
    done = subprocess.run(["unshare", "-n", "sh", "-c", overlay.probe_script()],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode in (0, 3, 4), done.stderr
    if done.returncode:
        assert done.stderr.strip().splitlines()[-1].startswith("no "), done.stderr
    assert seen() == before

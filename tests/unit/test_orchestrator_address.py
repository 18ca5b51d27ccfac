"""A Service's moving address on Swarm (orchestrator.keepalived, orchestrator.address):
the keepalived configuration against its golden file, the Swarm service (host network, the
capabilities, global, placed as the Service), the plan (create, keep, update, remove), the
executor's order (an address off before a stop, on after the launches), the status row.

After a deliberate change of the configuration:
DRAGONBALL_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_orchestrator_address.py
"""

from __future__ import annotations

import base64
import dataclasses
import os
import pathlib

import pytest

from orchestrator_fakes import FakeSwarm, task
from dragonball.app import spec as app_spec
from dragonball.app.errors import AddressImageMissing
from dragonball.orchestrator import address, keepalived, naming, planning, status
from dragonball.orchestrator.observe import ADDRESS_IMAGE, Observation, Observer, names_in
from dragonball.orchestrator.slotting import expand
from dragonball.swarm import Node
from dragonball.shared.node_labels import ENROLLED_CONSTRAINT

GOLDEN = pathlib.Path(__file__).parent / "data" / "keepalived"
NODES = (Node("id-1", "s1", "10.0.0.11", role="manager"),
         Node("id-2", "s2", "10.0.0.12", role="manager"),
         Node("id-3", "s3", "10.0.0.13", role="manager"),
         Node("id-4", "d4", "10.0.0.14"))
PINNED = {"notes/web:0.1.0": "r:5000/notes/web@sha256:1", ADDRESS_IMAGE: "r:5000/k@sha256:2"}
TEXT = """app: notes
services:
  web:
    kind: service
    image: notes/web:0.1.0
    replicas: 2
    placement: {servers: [s2, s3]}
    ports: [{published: 8080, target: 8080}]
    address: 10.0.0.100
"""


def observation(**changes) -> Observation:
    return dataclasses.replace(Observation("notes", NODES, pinned=PINNED), **changes)


def load(text: str = TEXT, seen: Observation | None = None):
    return app_spec.load(text, "notes.app.yaml", (seen or observation()).checks())


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DRAGONBALL_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"differs from {path}"


def test_the_configuration_matches_its_golden_file():
    vrrp = address.vrrp_of("notes", "web", load().services["web"], observation())
    assert vrrp.peers == (("s2", "10.0.0.12"), ("s3", "10.0.0.13"))
    assert vrrp.managers == ("10.0.0.11", "10.0.0.12", "10.0.0.13")
    golden("notes_web.conf", keepalived.render(vrrp))


def test_without_a_placement_every_server_is_a_peer():
    spec = load(TEXT.replace("    placement: {servers: [s2, s3]}\n", ""))
    vrrp = address.vrrp_of("notes", "web", spec.services["web"], observation())
    assert [host for host, _ in vrrp.peers] == ["d4", "s1", "s2", "s3"]
    text = keepalived.render(vrrp)
    assert "    @d4 unicast_src_ip 10.0.0.14\n" in text and "        @^d4 10.0.0.14\n" in text


def test_with_fewer_than_three_managers_no_quorum_is_checked():
    two = tuple(dataclasses.replace(n, role="worker") if n.hostname == "s3" else n
                for n in NODES)
    vrrp = address.vrrp_of("notes", "web", load().services["web"], observation(nodes=two))
    assert vrrp.managers == ()
    assert 'script "/opt/dragon_ball/service/keepalived/module/check.sh 8080"\n' in \
        keepalived.render(vrrp)


def test_the_password_is_eight_characters_and_stable():
    vrrp = keepalived.Vrrp("notes", "web", "10.0.0.100/24", 8080)
    assert len(keepalived.auth_pass(vrrp)) == 8
    assert keepalived.auth_pass(vrrp) == keepalived.auth_pass(dataclasses.replace(vrrp))
    assert keepalived.auth_pass(vrrp) != keepalived.auth_pass(
        dataclasses.replace(vrrp, app="shop"))


def test_the_swarm_service_runs_keepalived_where_the_service_may_run():
    spec = address.service_spec("notes", "web", load().services["web"],
                                 PINNED[ADDRESS_IMAGE], observation())
    container = spec["TaskTemplate"]["ContainerSpec"]
    assert spec["Name"] == "notes_web_address" and spec["Mode"] == {"Global": {}}
    assert spec["TaskTemplate"]["Networks"] == [{"Target": "host"}]
    assert container["CapabilityAdd"] == ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BROADCAST"]
    assert container["Image"] == PINNED[ADDRESS_IMAGE]
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == [
        ENROLLED_CONSTRAINT, f"node.labels.{naming.placement_label('notes', 'web')}==true"]
    env = dict(e.split("=", 1) for e in container["Env"])
    assert env["DRAGONBALL_NODE"] == "{{.Node.Hostname}}"
    assert env["DRAGONBALL_ADDRESS"] == "10.0.0.100/24"
    assert base64.b64decode(env["DRAGONBALL_KEEPALIVED_CONF"]).decode() == keepalived.render(
        address.vrrp_of("notes", "web", load().services["web"], observation()))
    assert spec["Labels"][naming.ADDRESS_LABEL] == "web"
    assert spec["Labels"][naming.APP_LABEL] == "notes"
    assert naming.SERVICE_LABEL not in spec["Labels"]   # never taken for a unit of the app


def deployed(seen: Observation, spec) -> Observation:
    """The observation once the address of `spec` runs as planned."""
    step = address.plan(spec, seen)[0]
    swarm = FakeSwarm(NODES)
    swarm.add(dict(step.spec))
    return dataclasses.replace(seen, addresses=Observer.by_address(swarm.services()))


def test_the_plan_creates_keeps_updates_and_removes_the_address():
    spec = load()
    assert [s.op for s in address.plan(spec, observation())] == ["create"]
    running = deployed(observation(), spec)
    assert [s.op for s in address.plan(spec, running)] == ["keep"]
    moved = load(TEXT.replace("10.0.0.100", "10.0.0.101"))
    assert [(s.op, s.address) for s in address.plan(moved, running)] == [
        ("update", "10.0.0.101/24")]
    fewer = dataclasses.replace(running, nodes=NODES[:3] + (dataclasses.replace(
        NODES[3], address="10.0.0.15"),))
    assert [s.op for s in address.plan(spec, fewer)] == ["keep"]   # not a peer: no change
    gone = load(TEXT.replace("    address: 10.0.0.100\n", ""))
    assert [(s.op, s.swarm_name) for s in address.plan(gone, running)] == [
        ("remove", "notes_web_address")]


def test_apply_plans_the_address_and_says_so():
    deployment = planning.deploy(load(), observation())
    assert [s.op for s in deployment.addresses] == ["create"]
    assert "address 10.0.0.100/24 of web: held by a live server of web (new)" in \
        deployment.shown.notes


def test_apply_refuses_an_address_the_registry_has_no_image_for():
    seen = observation(pinned={"notes/web:0.1.0": PINNED["notes/web:0.1.0"]})
    with pytest.raises(AddressImageMissing, match="dragonball/keepalived"):
        planning.deploy(load(seen=seen), seen)


def test_the_spec_s_images_name_the_keepalived_image_only_with_an_address():
    assert names_in(TEXT) == ("notes", ["notes/web:0.1.0", ADDRESS_IMAGE])
    assert names_in(TEXT.replace("    address: 10.0.0.100\n", "")) == (
        "notes", ["notes/web:0.1.0"])


def test_the_status_row_shows_the_address_and_its_peers():
    spec = load()
    seen = deployed(observation(), spec)
    seen = dataclasses.replace(seen, tasks={"web address": (
        task("notes_web_address", 1, "id-2"), task("notes_web_address", 2, "id-3"),
        task("notes_web_address", 3, "id-1", state="shutdown", desired="shutdown"))})
    row = status.rows(expand(spec, seen.nodes, place_new=False), seen)[0]
    assert row["address"] == {"address": "10.0.0.100", "network": "10.0.0.100/24",
                              "deployed": True, "peers": ["s2", "s3"]}


def test_other_apps_addresses_are_observed_as_taken():
    swarm = FakeSwarm(NODES)
    shop = address.service_spec("shop", "front", load(TEXT.replace("10.0.0.100",
                                                                   "10.0.0.90")
                                                      ).services["web"], "k", observation())
    swarm.add(shop)
    observer = Observer(swarm, None, "r:5000")
    assert observer.taken("notes") == {"10.0.0.90/24": "shop/front"}
    assert observer.taken("shop") == {}

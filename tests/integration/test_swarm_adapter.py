"""The one Swarm adapter (dragonball.swarm.Swarm) against a real engine in Swarm mode: what
it gives back are domain types with the engine's own values, and its errors are
SwarmError. The Swarm is a private dockerd in a network namespace of its own (the fixture
of test_portal_api), so the host engine's Swarm state is never touched; everything made is
labelled io.dragonball.test and removed, and the private engine goes at the end."""

from __future__ import annotations

import datetime
import subprocess

import pytest

from dragonball.swarm import Swarm, SwarmError
from support import LABELS, RUN_ID, TEST_LABEL, wait_for
from test_portal_api import DOCKER, SWARM_ADDRESS, swarm_socket  # noqa: F401 (fixture)

NAME = f"dbtest_{RUN_ID}"
HASH_LABEL = "io.dragonball.spec-hash"


@pytest.fixture(scope="module")
def swarm(swarm_socket, base_image):  # noqa: F811 (the fixture imported above)
    """The adapter over the private engine, which holds the base image (loaded from the
    host engine: the private one has no network to pull from)."""
    save = subprocess.Popen([DOCKER, "save", base_image], stdout=subprocess.PIPE)
    subprocess.run([DOCKER, "-H", f"unix://{swarm_socket}", "load", "-q"], stdin=save.stdout,
                   check=True, capture_output=True, timeout=300)
    assert save.wait(timeout=60) == 0
    yield Swarm(str(swarm_socket))


def service_spec(image: str, replicas: int = 1) -> dict:
    labels = {**LABELS, HASH_LABEL: "0123456789abcdef"}
    return {"Name": NAME, "Labels": labels,
            "TaskTemplate": {"ContainerSpec": {"Image": image, "Labels": dict(LABELS),
                                               "Command": ["sleep", "3600"],
                                               # the base image checks a module's status
                                               "Healthcheck": {"Test": ["NONE"]}},
                             "RestartPolicy": {"Condition": "none"},
                             "Networks": [{"Target": NAME, "Aliases": ["probe"]}]},
            "Mode": {"Replicated": {"Replicas": replicas}},
            "UpdateConfig": {"Parallelism": 1, "Order": "stop-first"},
            "EndpointSpec": {"Mode": "dnsrr"}}


def test_the_swarm_its_node_and_its_labels(swarm):
    assert swarm.join_token().startswith("SWMTKN-")
    [node] = swarm.nodes()
    assert (node.ready, node.manager, node.leader, node.active) == (True, True, True, True)
    assert node.address == SWARM_ADDRESS and node.hostname
    assert swarm.node(node.id) == node and swarm.node("nosuchnode") is None
    try:
        assert swarm.update_node(node.id, labels={TEST_LABEL: RUN_ID, "zone": "a"})
        assert swarm.node(node.id).labels[TEST_LABEL] == RUN_ID
        assert not swarm.update_node(node.id, labels={"zone": "a"}, promote=True)  # as is
        assert swarm.update_node(node.id, labels={"zone": None})
        assert "zone" not in swarm.node(node.id).labels
    finally:
        swarm.update_node(node.id, labels={TEST_LABEL: None, "zone": None})
    with pytest.raises(SwarmError, match="not in this Swarm"):
        swarm.update_node("nosuchnode", labels={"a": "b"})


def test_a_service_created_scaled_updated_and_removed(swarm, base_image):
    network = {"Name": NAME, "Driver": "overlay", "Attachable": True, "Labels": dict(LABELS)}
    swarm.ensure_network(network)
    swarm.ensure_network(network)          # there already: nothing
    try:
        swarm.create_service(service_spec(base_image))
        running_service(swarm, running=1)
        [task] = [t for t in swarm.tasks(NAME) if t.up]
        assert task.slot == 1 and task.container_id and task.node_id == swarm.nodes()[0].id
        assert task.created <= task.timestamp <= swarm.now() + datetime.timedelta(seconds=5)
        swarm.update_service(NAME, service_spec(base_image), force=True)  # new tasks
        wait_for(lambda: [t.id for t in swarm.tasks(NAME) if t.up] not in ([], [task.id]),
                 120, lambda: swarm.tasks(NAME))
        swarm.scale(NAME, 0)
        wait_for(lambda: not any(t.state == "running" for t in swarm.tasks(NAME)), 120)
        assert swarm.service(NAME).replicas == 0
    finally:
        swarm.remove_service(NAME)
        swarm.remove_network(NAME)
    assert swarm.service(NAME) is None and swarm.tasks(NAME) == []
    swarm.scale(NAME, 0)                   # a service that is not there is stopped already
    swarm.remove_service(NAME)


def running_service(swarm, running: int):
    """Wait until the listing says `running` tasks run; check what it says of it."""
    def listed():
        found = [s for s in swarm.services({TEST_LABEL: RUN_ID}) if s.name == NAME]
        return found[0] if found and found[0].running == running else None
    state = wait_for(listed, 120, lambda: swarm.tasks(NAME))
    assert (state.replicas, state.desired, state.spec_hash) == (1, 1, "0123456789abcdef")
    assert state.image.startswith("dragonballbase:bookworm")
    return state


def test_an_engine_that_does_not_answer_is_a_swarm_error(tmp_path):
    with pytest.raises(SwarmError, match="list the Swarm's nodes") as caught:
        Swarm(str(tmp_path / "no.sock")).nodes()
    assert caught.value.__cause__ is not None

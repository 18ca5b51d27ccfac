"""The Swarm adapter over a stand-in for docker's APIClient: what it asks the engine, the
domain types it gives back, errors translated once (SwarmError, `from` the docker one),
node updates tried again only for what passes by itself, the registry login kept in memory
and made only before a service is created or updated."""

from __future__ import annotations

import copy
import json
import pathlib

import docker
import pytest

from dragonball.errors import Category
from dragonball.swarm import Swarm, SwarmError, transient_update_error
from dragonball.swarm.client import merged_node_spec

DATA = pathlib.Path(__file__).parent / "data" / "swarm"
NODE = json.loads((DATA / "node.json").read_text())
SERVICE = json.loads((DATA / "service.json").read_text())
TASK = json.loads((DATA / "task.json").read_text())
SPEC = {"Name": "notes_api", "Labels": {"a": "b"}, "TaskTemplate": {"ContainerSpec": {}},
        "Mode": {"Replicated": {"Replicas": 3}}, "UpdateConfig": {}, "EndpointSpec": {}}


class FakeAPI:
    """docker.APIClient's calls the adapter makes; `fail[method]` raises (once per item)."""

    def __init__(self) -> None:
        self.calls: list = []
        self.fail: dict = {}

    def _do(self, method: str, *args, result=None, **kwargs):
        self.calls.append((method, args, kwargs))
        errors = self.fail.get(method)
        if errors:
            raise errors.pop(0)
        return copy.deepcopy(result)

    def inspect_swarm(self):
        return self._do("inspect_swarm", result={"JoinTokens": {"Worker": "SWMTKN-w"}})

    def nodes(self):
        return self._do("nodes", result=[NODE])

    def inspect_node(self, node_id):
        return self._do("inspect_node", node_id, result=NODE)

    def update_node(self, node_id, version, spec):
        return self._do("update_node", node_id, version, spec)

    def services(self, filters=None, status=None):
        return self._do("services", filters=filters, status=status, result=[SERVICE])

    def inspect_service(self, name):
        return self._do("inspect_service", name, result=SERVICE)

    def create_service(self, task_template, **kwargs):
        return self._do("create_service", task_template, result={"ID": "new"}, **kwargs)

    def update_service(self, service_id, version, **kwargs):
        return self._do("update_service", service_id, version, **kwargs)

    def tasks(self, filters=None):
        return self._do("tasks", filters=filters, result=[TASK])

    def login(self, username, password, registry=None, reauth=False):
        return self._do("login", username, password, registry=registry, reauth=reauth)

    def info(self):
        return self._do("info", result={"SystemTime": "2025-01-01T00:00:09.5Z"})

    def named(self, method: str) -> list:
        return [c for c in self.calls if c[0] == method]


@pytest.fixture
def api():
    return FakeAPI()


@pytest.fixture
def swarm(api):
    now = [0.0]
    return Swarm(registry=("10.0.0.5:5000", "u", "p"), api=api, clock=lambda: now[0],
                 sleep=lambda s: now.__setitem__(0, now[0] + s))


def api_error(text: str, cls=docker.errors.APIError):
    return cls("500 Server Error", explanation=text)


def test_reads_give_domain_types(swarm, api):
    assert swarm.join_token() == "SWMTKN-w"
    [node] = swarm.nodes()
    assert (node.id, node.hostname, node.address, node.manager) == ("abc", "s2", "10.0.0.2", True)
    [state] = swarm.services({"io.dragonball.app": "notes"})
    assert (state.name, state.replicas, state.spec_hash) == ("notes_api", 2, "0123456789abcdef")
    assert api.named("services")[0][2] == {"filters": {"label": ["io.dragonball.app=notes"]},
                                           "status": True}
    [task] = swarm.tasks("notes_api")
    assert (task.slot, task.node_id, task.state) == (2, "abc", "failed")
    assert swarm.now().isoformat() == "2025-01-01T00:00:09.500000+00:00"


def test_a_missing_node_or_service_is_none_and_has_no_tasks(swarm, api):
    api.fail = {"inspect_node": [docker.errors.NotFound("404")],
                "inspect_service": [docker.errors.NotFound("404")],
                "tasks": [docker.errors.NotFound("404")]}
    assert swarm.node("gone") is None and swarm.service("gone") is None
    assert swarm.tasks("gone") == []


def test_errors_become_swarm_errors_from_the_docker_one(swarm, api):
    cause = api_error("This node is not a swarm manager.")
    api.fail = {"nodes": [cause]}
    with pytest.raises(SwarmError) as caught:
        swarm.nodes()
    assert caught.value.__cause__ is cause
    assert "list the Swarm's nodes: This node is not a swarm manager." in caught.value.message
    assert caught.value.category is Category.UNAVAILABLE
    api.fail = {"tasks": [ConnectionError("no socket")]}
    with pytest.raises(SwarmError, match="no socket"):
        swarm.tasks("x")


def test_update_node_merges_labels_removes_none_and_promotes(swarm, api):
    assert swarm.update_node("abc", labels={"disk": "ssd", "zone": None})
    [(_, (node_id, version, spec), _)] = api.named("update_node")
    assert (node_id, version) == ("abc", 41)
    assert spec["Labels"] == {"disk": "ssd"} and spec["Role"] == "manager"


def test_update_node_changes_nothing_when_already_so(swarm, api):
    assert not swarm.update_node("abc", labels={"zone": "a"}, promote=True)
    assert api.named("update_node") == []


def test_update_node_tries_again_what_passes_by_itself(swarm, api):
    api.fail = {"update_node": [api_error("update out of sequence"),
                                api_error("can't find manager in raft memberlist",
                                          docker.errors.NotFound)]}
    assert swarm.update_node("abc", labels={"disk": "ssd"})
    assert len(api.named("update_node")) == 3


def test_update_node_gives_up_on_other_errors_and_after_its_patience(swarm, api):
    api.fail = {"update_node": [api_error("invalid label")]}
    with pytest.raises(SwarmError, match="invalid label"):
        swarm.update_node("abc", labels={"disk": "ssd"})
    api.fail = {"update_node": [api_error("update out of sequence")] * 1000}
    with pytest.raises(SwarmError, match="out of sequence"):
        swarm.update_node("abc", labels={"disk": "ssd"})
    assert len(api.named("update_node")) < 100


def test_update_node_of_a_node_not_in_the_swarm(swarm, api):
    api.fail = {"inspect_node": [docker.errors.NotFound("404")]}
    with pytest.raises(SwarmError, match="node x is not in this Swarm"):
        swarm.update_node("x", promote=True)


def test_registry_login_only_before_creating_or_updating_and_once(swarm, api):
    swarm.nodes(), swarm.join_token(), swarm.services(), swarm.scale("notes_api", 0)
    assert api.named("login") == []
    assert swarm.create_service(SPEC) == "new"
    swarm.update_service("notes_api", SPEC)
    assert api.named("login") == [("login", ("u", "p"),
                                   {"registry": "10.0.0.5:5000", "reauth": True})]


def test_a_registry_that_refuses_the_login_stops_the_create(swarm, api):
    api.fail = {"login": [api_error("unauthorized")]}
    with pytest.raises(SwarmError, match="log in to the registry 10.0.0.5:5000: unauthorized"):
        swarm.create_service(SPEC)
    assert api.named("create_service") == []


def test_a_job_is_created_with_its_mode_and_no_update_config(swarm, api):
    job = {"Name": "notes_migrate", "Labels": {}, "TaskTemplate": {"ContainerSpec": {}},
           "Mode": {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}},
           "EndpointSpec": {"Mode": "dnsrr"}}
    assert swarm.create_service(job) == "new"
    [(_, _, kwargs)] = api.named("create_service")
    assert kwargs["mode"] == job["Mode"] and kwargs["update_config"] is None


def test_update_service_keeps_or_bumps_force_update(swarm, api):
    swarm.update_service("notes_api", SPEC)
    swarm.update_service("notes_api", SPEC, force=True)
    kept, forced = (c[2]["task_template"]["ForceUpdate"] for c in api.named("update_service"))
    assert (kept, forced) == (2, 3)
    assert api.named("update_service")[0][1] == ("svc1", 7)


def test_scale_asks_only_for_a_change_and_a_missing_service_is_stopped(swarm, api):
    swarm.scale("notes_api", 2)
    assert api.named("update_service") == []
    swarm.scale("notes_api", 0)
    [(_, _, kwargs)] = api.named("update_service")
    assert kwargs["mode"] == {"Replicated": {"Replicas": 0}}
    api.fail = {"inspect_service": [docker.errors.NotFound("404")]}
    swarm.scale("gone", 0)


def test_merged_node_spec_is_pure():
    spec = {"Role": "worker", "Labels": {"a": "1"}}
    assert merged_node_spec(spec, {"a": None, "b": "2"}, True) == {"Role": "manager",
                                                                   "Labels": {"b": "2"}}
    assert spec == {"Role": "worker", "Labels": {"a": "1"}}


def test_node_updates_retry_only_what_passes_by_itself():
    assert transient_update_error('404 Not Found ("rpc error: code = NotFound desc = can\'t find '
                                  'manager in raft memberlist")')
    assert transient_update_error("rpc error: code = Unknown desc = update out of sequence")
    assert not transient_update_error("node abc not found")

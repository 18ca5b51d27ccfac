"""The cluster's firewall members (docs/security.md, "The network"): the pure parts
(shared/firewall.py, the portal's members and targets), the portal's sync against fake
agents, the agent's PUT /v1/firewall checks and file, the answers' firewall_allow, and the
install step os.firewall_chain on a fake server, then its reset."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

from dragonball.agent_client import AgentError
from dragonball.installer import firewall as installer_firewall
from dragonball.installer.journal import Journal
from dragonball.installer.steps import run_steps
from dragonball.installer.undo import undo_all
from dragonball.portal import firewall as portal_firewall
from dragonball.shared import firewall as fw
from dragonball.wizard import validators
from install_fakes import FakeServer, context, snapshot
from support import ROOT

MODULE = ROOT / "base_images" / "agent" / "agent" / "module"


# --- shared/firewall.py -------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("10.0.0.7", "10.0.0.7"), (" 10.0.0.0/24 ", "10.0.0.0/24"), ("10.0.0.7/32", "10.0.0.7"),
    ("FD00::0001", "fd00::1"), ("fd00::/64", "fd00::/64")])
def test_a_source_is_normalised(text, expected):
    assert fw.source(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "10.0.0.7/24", "10.0.0.256", "host.example",
                                  "1.2.3.4; rm -rf /", "$(reboot)", "1" * 100, None])
def test_a_bad_source_is_refused_with_why(text):
    with pytest.raises(fw.BadAddress):
        fw.source(text)


def test_members_take_the_ip_of_any_form_and_add_loopback_in_order():
    found = fw.members(["https://10.0.0.2:8443", "10.0.0.1:8443", "[fd00::1]:8443",
                        "10.0.0.1", "portal.example:8443", ""])
    assert found == ("10.0.0.1", "10.0.0.2", "127.0.0.0/8", "::1", "fd00::1")


def test_reading_a_file_skips_comments_and_bad_lines():
    text = fw.file_text(["10.0.0.1", "fd00::1"], "the cluster's servers") + "junk; x\n"
    assert text.startswith("# the cluster's servers:")
    assert fw.read_sources(text) == ("10.0.0.1", "fd00::1")


def test_the_cluster_ports_are_every_port_but_the_portals():
    assert {str(p) for p in fw.cluster_ports()} == {
        "2377/tcp", "7946/tcp", "7946/udp", "4789/udp", "9443/tcp", "2379/tcp", "2380/tcp",
        "5000/tcp"}


# --- the answers -----------------------------------------------------------------------------

def test_firewall_allow_is_validated_and_normalised():
    assert validators.firewall_allow("10.0.0.0/24, 192.168.1.7") is True
    assert validators.firewall_allow("") is True
    assert "source 2 of 2" in validators.firewall_allow("10.0.0.1, 10.0.0.0/8/8")
    assert "empty" in validators.firewall_allow("10.0.0.1,,10.0.0.2")
    assert "at most" in validators.firewall_allow(",".join(["10.0.0.1"] * 65))
    assert validators.normalize_firewall_allow("192.168.1.7, 10.0.0.0/24") == \
        "10.0.0.0/24,192.168.1.7"


# --- the portal's side ------------------------------------------------------------------------

def device(address: str, state: str = "joined") -> types.SimpleNamespace:
    return types.SimpleNamespace(address=address, state=state)


def test_members_are_every_device_known_and_the_portal_agents_only_on_joined():
    devices = [device("10.0.0.2"), device("10.0.0.3", "enrolled")]
    assert portal_firewall.cluster_members(devices, ["10.0.0.1"]) == (
        "10.0.0.1", "10.0.0.2", "10.0.0.3", "127.0.0.0/8", "::1")
    assert portal_firewall.agent_addresses(devices) == ["10.0.0.2"]
    sent = {"a": (("x",), 100.0), "c": (("old",), 100.0)}
    assert portal_firewall.targets(["a", "b", "c"], sent, ("x",), now=110.0) == ["b", "c"]
    assert portal_firewall.targets(["a"], sent, ("x",), now=100.0 + portal_firewall.RESEND_S) \
        == ["a"]                                          # sent again after a while


class FakeAgents:
    def __init__(self, down=()) -> None:
        self.down, self.calls = set(down), []

    def put_firewall(self, address, members, timeout=None):
        self.calls.append((address, tuple(members), timeout))
        if address in self.down:
            raise AgentError(f"cannot reach the agent at {address}:9443")
        return {"members": len(members), "changed": True, "applied": True}


def test_a_round_sends_only_what_changed_and_tries_the_failed_again():
    devices = [device("10.0.0.1"), device("10.0.0.2")]
    agents = FakeAgents(down={"10.0.0.2"})
    sync = portal_firewall.MembersSync(lambda: devices, lambda: ["10.0.0.1"], lambda: agents)
    assert sync.round() == {"10.0.0.2": "cannot reach the agent at 10.0.0.2:9443"}
    assert sorted(a for a, _, _ in agents.calls) == ["10.0.0.1", "10.0.0.2"]
    agents.calls.clear()
    agents.down.clear()
    assert sync.round() == {} and [a for a, _, _ in agents.calls] == ["10.0.0.2"]
    agents.calls.clear()
    assert sync.round() == {} and agents.calls == []             # nothing new: nothing sent
    devices.append(device("10.0.0.3", "enrolled"))                # enrolled: a new member
    sync.round()
    assert sorted(a for a, _, _ in agents.calls) == ["10.0.0.1", "10.0.0.2"]
    assert all("10.0.0.3" in m for _, m, _ in agents.calls)


def test_now_sends_to_the_managers_urls_at_once_with_a_short_timeout():
    agents = FakeAgents()
    sync = portal_firewall.MembersSync(lambda: [device("10.0.0.5", "enrolled")],
                                       lambda: ["10.0.0.1"], lambda: agents)
    sync.now(["https://10.0.0.1:8443", "https://10.0.0.2:8443"])
    wait = portal_firewall.ENROLL_TIMEOUT_S
    assert [(a, t) for a, _, t in agents.calls] == [("10.0.0.1", wait), ("10.0.0.2", wait)]
    assert "10.0.0.5" in agents.calls[0][1]


def test_no_agent_client_is_a_warning_not_a_failure():
    def missing():
        raise AgentError("the portal's agent client certificate is missing: /x")
    sync = portal_firewall.MembersSync(lambda: [device("10.0.0.2")], lambda: [], missing)
    assert "missing" in sync.round()["10.0.0.2"]


# --- the agent's side ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def agent_firewall():
    sys.path.insert(0, str(MODULE))
    try:
        yield importlib.import_module("agent_firewall")
    finally:
        sys.path.remove(str(MODULE))


class ApiError(Exception):
    def __init__(self, status, message, **extra):
        super().__init__(message)
        self.status, self.extra = status, extra


@pytest.mark.parametrize("body, problem", [
    ([], "JSON object"), ({}, "non-empty list"), ({"members": "10.0.0.1"}, "non-empty list"),
    ({"members": ["10.0.0.1"], "x": 1}, "unknown fields: x"),
    ({"members": ["10.0.0.1; reboot"]}, "members[0]"), ({"members": [7]}, "members[0]"),
    ({"members": ["10.0.0.1/24"]}, "members[0]"),
    ({"members": ["10.0.0.1"] * 2001}, "at most 2000")])
def test_the_agent_refuses_a_bad_members_body(agent_firewall, body, problem):
    assert any(problem in p for p in agent_firewall.put_problems(body))


class Host:
    """The host's script as the agent sees it: after `delay` s of (fake) time, what the
    members file holds is copied to `applied`."""

    def __init__(self, folder, delay: float) -> None:
        self.folder, self.delay, self.now, self.seen = folder, delay, 0.0, None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.now >= self.delay:
            (self.folder / "applied").write_text((self.folder / "members").read_text())


def test_the_agent_writes_the_members_file_once_per_change_and_waits_for_the_host(
        agent_firewall, tmp_path):
    host = Host(tmp_path, delay=0.3)
    members = agent_firewall.MembersFile(str(tmp_path), clock=host.clock, sleep=host.sleep)
    api = agent_firewall.FirewallApi(members, ApiError)
    status, answer = api.put({}, {"members": ["10.0.0.2", "10.0.0.1", "10.0.0.1", "fd00::1"]})
    assert (status, answer) == (200, {"members": 3, "changed": True, "applied": True})
    assert 0.3 <= host.now < 0.5
    assert (tmp_path / "members").read_text().splitlines()[1:] == [
        "10.0.0.1", "10.0.0.2", "fd00::1"]
    again = api.put({}, {"members": ["10.0.0.1", "10.0.0.2", "fd00::1"]})[1]
    assert again == {"members": 3, "changed": False, "applied": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["applied", "members"]  # no temp file


def test_the_agent_says_when_the_host_did_not_apply_in_time(agent_firewall, tmp_path):
    host = Host(tmp_path, delay=60.0)
    members = agent_firewall.MembersFile(str(tmp_path), clock=host.clock, sleep=host.sleep)
    answer = agent_firewall.FirewallApi(members, ApiError).put({}, {"members": ["10.0.0.1"]})
    assert answer[1]["applied"] is False and host.now >= agent_firewall.APPLY_WAIT_S


def test_the_agent_refuses_a_hostile_entry_with_400_and_writes_nothing(agent_firewall,
                                                                       tmp_path):
    api = agent_firewall.FirewallApi(agent_firewall.MembersFile(str(tmp_path)), ApiError)
    with pytest.raises(ApiError) as refused:
        api.put({}, {"members": ["$(reboot)"]})
    assert refused.value.status == 400 and list(tmp_path.iterdir()) == []


def test_the_agent_says_when_the_folder_is_missing(agent_firewall, tmp_path):
    api = agent_firewall.FirewallApi(agent_firewall.MembersFile(str(tmp_path / "no")), ApiError)
    with pytest.raises(ApiError) as failed:
        api.put({}, {"members": ["10.0.0.1"]})
    assert failed.value.status == 500 and "os.firewall_chain" in str(failed.value)


# --- the install step and its reset -----------------------------------------------------------

class ChainServer(FakeServer):
    """A fake server with systemd that also plays `sh SCRIPT apply|remove`."""

    def __init__(self, root) -> None:
        super().__init__(root, programs=("systemctl", "sh", "iptables"))
        (root / "run/systemd/system").mkdir(parents=True)
        self.script_exit = 0

    def _systemctl(self, args, env):
        return (0, "", "") if args == ["daemon-reload"] else super()._systemctl(args, env)

    def _sh(self, args, env):
        assert args[0] == fw.SCRIPT and args[1] in ("apply", "remove")
        return self.script_exit, "", "dragonball-firewall: no iptables-restore\n"


def answers(role="device", **more):
    return types.SimpleNamespace(role=role, address="10.0.0.5", data_dir="/var/lib/dragonball",
                                 portals=["10.0.0.1:8443", "portal.example:8443"],
                                 firewall_allow="10.9.0.0/16", **more)


def test_the_chain_step_installs_script_files_and_units_then_reset_takes_all_away(tmp_path):
    server = ChainServer(tmp_path / "root")
    before = snapshot(server.root)
    ctx = context(server, tmp_path, answers=answers())
    run_steps([installer_firewall.chain_step(ctx)], ctx.journal)

    assert server.read(fw.SCRIPT.lstrip("/")) == installer_firewall.SCRIPT_SOURCE.read_text()
    assert fw.read_sources(server.read(fw.MEMBERS_FILE.lstrip("/"))) == (
        "10.0.0.1", "10.0.0.5", "127.0.0.0/8", "::1")
    assert fw.read_sources(server.read(fw.ALLOW_FILE.lstrip("/"))) == ("10.9.0.0/16",)
    assert "PathChanged=/var/lib/dragonball/firewall/members" in server.read(
        "etc/systemd/system/dragonball-firewall.path")
    assert ["enable", "--now", "dragonball-firewall.path"] in [c[-3:] for c in server.calls]
    assert [fw.SCRIPT, "apply"] in [c[-2:] for c in server.calls]

    results = undo_all(Journal.load(str(tmp_path / "data")), server.host())
    assert {r.status for r in results} == {"undone"}
    assert [fw.SCRIPT, "remove"] in [c[-2:] for c in server.calls]
    assert snapshot(server.root) == before


def test_a_failed_first_run_fails_the_step_with_what_the_script_said(tmp_path):
    server = ChainServer(tmp_path / "root")
    server.script_exit = 2
    ctx = context(server, tmp_path, answers=answers(role="portal"))
    with pytest.raises(Exception, match="chain could not be applied"):
        run_steps([installer_firewall.chain_step(ctx)], ctx.journal)


def test_a_device_adds_the_managers_its_enrollment_listed(tmp_path):
    server = ChainServer(tmp_path / "root")
    ctx = context(server, tmp_path, answers=answers())
    server.write("etc/dragonball/enrollment.json",
                 '{"portals": ["https://10.0.0.2:8443", "https://10.0.0.3:8443", 7]}')
    run_steps([installer_firewall.chain_step(ctx), installer_firewall.members_step(ctx)],
              ctx.journal)
    assert fw.read_sources(server.read(fw.MEMBERS_FILE.lstrip("/"))) == (
        "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5", "127.0.0.0/8", "::1")

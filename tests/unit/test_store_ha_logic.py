"""The pure parts of the replicated notes store (examples/store/store/module) and of the api's
sentinel parameters: the slot variables, the role a slot starts with, the sentinel's saved
state, the pinned addresses block and its DNS answers. The containers are
tests/integration/test_store_ha.py.
"""

from __future__ import annotations

import importlib
import socket
import struct
import sys

import pytest

from support import ROOT

STORE = ROOT / "examples" / "store" / "store" / "module"
API = ROOT / "examples" / "api" / "api" / "module"


def load(folder, name):
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


slots = load(STORE, "slots")
ha = load(STORE, "ha")
peers = load(STORE, "peers")
redis_conf = load(STORE, "redis_conf")
notes_api = load(API, "notes_api")

THREE = {"DRAGONBALL_SLOT": "2", "DRAGONBALL_SLOT_NAME": "store-2",
         "DRAGONBALL_PEERS": "store-1,store-2,store-3"}


# -- the slot variables ------------------------------------------------------------------------
def test_no_peers_means_a_single_unreplicated_slot():
    assert slots.from_environ({}) is None
    assert slots.from_environ({"DRAGONBALL_SLOT": "1", "DRAGONBALL_PEERS": ""}) is None
    one = slots.from_environ({"DRAGONBALL_SLOT": "1", "DRAGONBALL_SLOT_NAME": "store-1",
                              "DRAGONBALL_PEERS": "store-1"})
    assert one is not None and not one.replicated


def test_a_slot_of_three():
    slot = slots.from_environ(THREE)
    assert (slot.number, slot.name, slot.replicated) == (2, "store-2", True)
    assert slot.others == ("store-1", "store-3")
    assert slot.quorum == 2


@pytest.mark.parametrize("count, quorum", [(2, 2), (3, 2), (4, 3), (5, 3)])
def test_the_quorum_is_a_majority_of_the_slots(count, quorum):
    names = ",".join(f"store-{n}" for n in range(1, count + 1))
    slot = slots.from_environ({"DRAGONBALL_SLOT": "1", "DRAGONBALL_SLOT_NAME": "store-1",
                               "DRAGONBALL_PEERS": names})
    assert slot.quorum == quorum


def test_contradicting_slot_variables_are_refused_with_every_problem():
    with pytest.raises(slots.SlotError) as e:
        slots.from_environ({"DRAGONBALL_SLOT": "3", "DRAGONBALL_SLOT_NAME": "store-2",
                            "DRAGONBALL_PEERS": "store-1,store-2,Store_3,store-1"})
    text = str(e.value)
    assert "'Store_3' is not a DNS name" in text
    assert "names a slot twice" in text
    assert "DRAGONBALL_SLOT=3 but store-2 is slot 2" in text
    with pytest.raises(slots.SlotError, match="DRAGONBALL_SLOT_NAME is not set"):
        slots.from_environ({"DRAGONBALL_SLOT": "1", "DRAGONBALL_PEERS": "store-1,store-2"})
    with pytest.raises(slots.SlotError, match="is not one of DRAGONBALL_PEERS"):
        slots.from_environ({"DRAGONBALL_SLOT": "1", "DRAGONBALL_SLOT_NAME": "store-9",
                            "DRAGONBALL_PEERS": "store-1,store-2"})


# -- the role a slot starts with ----------------------------------------------------------------
SLOT1 = slots.Slot(1, "store-1", ("store-1", "store-2", "store-3"))
View, Peer = ha.View, ha.PeerRedis


def test_first_boot_slot_1_is_the_primary_the_others_replicate_from_it():
    d = ha.decide(SLOT1, None, [], {}, has_data=False)
    assert (d.role, d.master, d.fenced) == ("primary", "store-1", False)
    slot2 = slots.Slot(2, "store-2", SLOT1.peers)
    d = ha.decide(slot2, None, [], {}, has_data=False)
    assert (d.role, d.master) == ("replica", "store-1")


def test_the_newest_epoch_names_the_primary():
    views = [View(3, "store-3", 6379, frozenset({"master"}), "store-2"),
             View(1, "store-1", 6379, frozenset({"master"}), "store-3")]
    saved = View(2, "store-2", 6379)
    d = ha.decide(SLOT1, saved, views, {}, has_data=True)
    assert (d.role, d.master, d.epoch) == ("replica", "store-3", 3)
    assert "store-2's sentinel" in d.reason


def test_with_no_peer_answering_the_saved_view_decides():
    d = ha.decide(SLOT1, View(4, "store-2", 6379), [], {}, has_data=True)
    assert (d.role, d.master) == ("replica", "store-2")
    d = ha.decide(SLOT1, View(4, "store-1", 6379), [], {}, has_data=True)
    assert (d.role, d.fenced) == ("primary", False)  # alone: nobody else can take over


def test_a_restarted_primary_with_its_data_starts_fenced_when_peers_answer():
    views = [View(2, "store-1", 6379, frozenset({"master"}), "store-2")]
    d = ha.decide(SLOT1, View(2, "store-1", 6379), views,
                  {"store-2": Peer("slave", 900)}, has_data=True)
    assert (d.role, d.master, d.fenced) == ("primary", "store-1", True)
    text = ha.replication_conf(d, {"port": 6379}, SLOT1)
    assert "min-replicas-to-write 3" in text and "replicaof" not in text


def test_a_primary_without_its_data_never_comes_back_as_an_empty_primary():
    views = [View(2, "store-1", 6379, frozenset({"master"}), "store-2")]
    d = ha.decide(SLOT1, None, views,
                  {"store-2": Peer("slave", 900), "store-3": Peer("slave", 1200)}, has_data=False)
    assert (d.role, d.master, d.request_failover, d.watched) == \
        ("replica", "store-3", True, "store-1")
    assert "no data while store-3 has" in d.reason
    assert ha.replication_conf(d, {"port": 6379}, SLOT1).splitlines()[-1] == \
        'replicaof "store-3" 6379'


def test_a_slot_waits_while_the_sentinels_fail_over_from_it():
    failing = [View(2, "store-1", 6379, frozenset({"master", "s_down", "o_down"}), "store-2")]
    assert ha.failing_over_from("store-1", failing)
    assert not ha.failing_over_from("store-2", failing)
    moved = failing + [View(3, "store-2", 6379, frozenset({"master"}), "store-3")]
    assert not ha.failing_over_from("store-1", moved)


# -- sentinel.conf ------------------------------------------------------------------------------
REWRITTEN = '''port 26379
sentinel monitor store store-3 6379 2
sentinel auth-pass store "s3cr\\x22et"
# Generated by CONFIG REWRITE
user default on #0123 ~* &* +@all
sentinel myid 1a7b8c9aacc7e2f3a012e034fd9b60c33767dd4b
sentinel config-epoch store 3
sentinel leader-epoch store 3
sentinel current-epoch 3
sentinel known-replica store store-2 6379
sentinel known-replica store store-1 6379
sentinel known-sentinel store store-2 26379 0bf7900b4e7ac609cea04be8e511f6c720cb5369
sentinel known-sentinel store "store-3" 26379 3cd34b1ac49fe1c17c07ab2068ef81ac744cf1d5
sentinel known-replica other elsewhere 6379
'''
PARAMS = {"port": 6379, "sentinel_port": 26379, "master_name": "store", "password": "pw x",
          "down_after_ms": 3000, "appendfsync": "always", "maxmemory": "128mb",
          "maxmemory_policy": "noeviction"}


def test_the_saved_state_of_a_sentinel_is_read_for_its_master_only():
    state = ha.saved_state(REWRITTEN, "store")
    assert state["monitor"] == ("store-3", 6379)
    assert (state["config_epoch"], state["current_epoch"]) == (3, 3)
    assert state["myid"].startswith("1a7b8c9a")
    assert state["replicas"] == [("store-2", 6379), ("store-1", 6379)]
    assert [s[0] for s in state["sentinels"]] == ["store-2", "store-3"]
    assert ha.tokens('a "b\\x22c d" e') == ["a", 'b"c d', "e"]


def test_the_rendered_sentinel_conf_keeps_the_state_and_the_settings():
    slot = slots.Slot(1, "store-1", SLOT1.peers)
    decision = ha.Decision("replica", "store-3", 3, "why")
    text = ha.render_sentinel(PARAMS, slot, decision, ha.saved_state(REWRITTEN, "store"), "/s")
    lines = text.splitlines()
    assert "sentinel monitor store store-3 6379 2" in lines
    assert "sentinel myid 1a7b8c9aacc7e2f3a012e034fd9b60c33767dd4b" in lines
    assert "sentinel config-epoch store 3" in lines and "sentinel current-epoch 3" in lines
    assert "sentinel known-replica store store-1 6379" in lines
    assert "sentinel known-replica store store-2 6379" in lines
    assert not any("known-replica store store-3" in line for line in lines)  # the primary
    assert len([line for line in lines if "known-replica" in line]) == 2
    assert "sentinel known-sentinel store store-2 26379 0bf7900b4e7ac609cea04be8e511f6c720cb5369" in lines
    assert 'sentinel announce-ip "store-1"' in lines and "sentinel resolve-hostnames yes" in lines
    assert 'requirepass "pw\\x20x"' in lines and 'sentinel auth-pass store "pw\\x20x"' in lines
    assert lines.index("sentinel monitor store store-3 6379 2") < \
        lines.index("sentinel config-epoch store 3")


def test_a_replicated_redis_conf_refuses_unreplicated_writes_and_stale_reads():
    text = redis_conf.render(PARAMS, slots.from_environ(THREE))
    assert 'replica-announce-ip "store-2"' in text
    assert "min-replicas-to-write 1" in text and "replica-serve-stale-data no" in text
    assert "repl-diskless-sync-delay 0" in text
    assert 'masterauth "pw\\x20x"' in text
    assert text.rstrip().endswith('include "/run/notes-store/replication.conf"')
    single = redis_conf.render(PARAMS)
    assert "replica" not in single and "include" not in single
    assert "appendfsync always" in single


def test_what_every_slot_shares_cannot_change_live_in_a_replicated_store():
    slot = slots.from_environ(THREE)
    new = {**PARAMS, "port": 6380, "password": "other", "maxmemory": "64mb"}
    found = redis_conf.live_problems(PARAMS, new, slot)
    assert [p.split(" ", 1)[0] for p in found] == ["port", "password"]
    assert "other" not in " ".join(found)
    assert redis_conf.live_problems(PARAMS, new, None) == []


# -- pinned addresses ---------------------------------------------------------------------------
def test_the_block_has_a_fixed_size_and_is_rewritten_in_place():
    names = ("store-1", "store-2")
    first = peers.block(names, {"store-1": "10.0.0.2"})
    second = peers.block(names, {"store-1": "10.0.0.7", "store-2": "10.0.0.3"})
    assert len(first) == len(second)
    hosts = "127.0.0.1\tlocalhost\n10.0.0.5\tabc123"
    text, offset = peers.replace_block(hosts, first)
    assert text.startswith(hosts + "\n") and offset is None
    updated, offset = peers.replace_block(text, second)
    assert offset == len(hosts) + 1 and updated == hosts + "\n" + second
    assert "10.0.0.7 store-1" in updated and "# store-2: no address known yet" in text


def reply(qid: int, name: str, addresses: list[str], rcode: int = 0) -> bytes:
    question = peers.query_packet(name, qid)[12:]
    data = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, len(addresses), 0, 0) + question
    for address in addresses:  # the name as a pointer to the question (offset 12)
        data += struct.pack(">HHHIH", 0xC00C, 1, 1, 600, 4) + socket.inet_aton(address)
    return data


def test_dns_answers_are_read_without_the_hosts_file():
    assert peers.answer_addresses(reply(7, "store-2", ["10.0.0.3", "10.0.0.9"]), 7) == \
        ["10.0.0.3", "10.0.0.9"]
    assert peers.answer_addresses(reply(7, "store-2", [], rcode=3), 7) == []
    assert peers.answer_addresses(reply(8, "store-2", ["10.0.0.3"]), 7) is None  # not ours
    assert peers.query_packet("store-2", 1)[12:] == b"\x07store-2\x00\x00\x01\x00\x01"


# -- the api's parameters -----------------------------------------------------------------------
API_DEFAULTS = {"store_host": "store", "store_port": 6379, "store_password": "",
                "store_sentinels": [], "store_master_name": "store", "store_wait_replicas": 1,
                "store_wait_timeout_ms": 1000, "listen_port": 8080, "greeting": "hi"}


def test_the_api_checks_its_sentinel_parameters():
    assert notes_api.problems(API_DEFAULTS) == []
    ok = {**API_DEFAULTS, "store_sentinels": ["store-1:26379", "10.0.0.2:26379"]}
    assert notes_api.problems(ok) == []
    bad = {**API_DEFAULTS, "store_sentinels": ["store-1", "x:0", 5], "store_wait_replicas": 0,
           "store_wait_timeout_ms": 5, "store_master_name": "a b"}
    found = " | ".join(notes_api.problems(bad))
    for fragment in ("'store-1' is not", "'x:0' is not", "5 is not", "store_wait_replicas",
                     "store_wait_timeout_ms", "store_master_name"):
        assert fragment in found, found
    assert notes_api.problems({**API_DEFAULTS, "store_sentinels": "store-1:26379"})


# -- the HA app spec ----------------------------------------------------------------------------
def test_the_ha_spec_is_valid_and_names_a_sentinel_per_store_slot():
    import json

    from dragonball.app.spec import load as load_spec

    spec = load_spec((ROOT / "examples" / "notes-ha.app.yaml").read_text(), "notes-ha.app.yaml")
    store, api = spec.services["store"], spec.services["api"]
    assert store.replicas == 3 and store.storage
    assert store.parameters["password"].secret and api.parameters["store_password"].secret
    values = api.parameter_values()
    assert values["store_sentinels"] == [f"store-{n}:26379" for n in range(1, store.replicas + 1)]
    for module, service in (("api", api), ("store", store)):
        defaults = json.loads((ROOT / "examples" / module / module / "module" /
                               "defaults.json").read_text())
        assert set(service.parameter_values()) == set(defaults)
    assert notes_api.problems({**API_DEFAULTS, **values}) == []

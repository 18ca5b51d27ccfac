"""A Service's moving address (docs/app-address.md) on a 3-server lab of its own, installed
from the real .bin: web (2 tasks) on s2 and s3 with the address <lab subnet>.100, the store
on s1 (the portal), api x3. Under bounded load through the address (tests/load.py):

- the address is applied, shown by `dragonball services`, held by exactly one server, and
  the app answers at it; a bad address is refused with nothing changed;
- the server holding it lost (power cut): the other web server takes it, the app answers at
  it again and no request fails once it has (generous bounds: the failover time itself is
  bench/vip_failover.py's);
- the lost server back: it stands by, one holder;
- the network between s2 and s3 cut, then healed: one holder within seconds;
- the holder cut off from both others (no managers' quorum on its side): it gives the
  address up and the quorum side holds it (DESIGN, day 2, answer 10).

Traffic stays on this machine and the lab's internal network.
"""

from __future__ import annotations

import json
import time

import pytest

from support import wait_for
from tests.address_lab import (WEB_SERVERS, address_of, address_spec, holders,
                               kill_under_load, put_and_apply, wait_holders)
from tests.e2e.apps import get
from tests.lab.faults import bring_back, partition, running
from tests.lab.install import LabCluster

pytestmark = pytest.mark.e2e
HEAL_S = 15      # "within seconds": VRRP's master-down interval is ~3 s


@pytest.fixture(scope="module")
def cluster(make_lab, release_bin):
    lab = make_lab(servers=3, internal=True)
    path, _ = release_bin
    installed = LabCluster(lab, path)
    installed.install_cluster()
    run = put_and_apply(installed, address_spec(lab), check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return installed


@pytest.fixture(scope="module")
def url(cluster) -> str:
    return f"http://{address_of(cluster.lab)}:8080"


def one_holder(cluster, timeout: float = 60) -> str:
    found, waited = wait_holders(cluster.lab, address_of(cluster.lab),
                                 lambda h: len(h) == 1, timeout)
    assert waited is not None, f"holders after {timeout} s: {found}"
    return found[0]


def web_row(cluster) -> dict:
    rows = json.loads(cluster.dragonball("services", "--json").stdout)["services"]
    return next(r for r in rows if r["service"] == "web")


def test_the_address_is_shown_held_once_and_answers(cluster, url):
    one_holder(cluster)
    assert wait_for(lambda: get(f"{url}/api/info")[0] == 200, timeout=120)
    row = web_row(cluster)
    assert row["address"]["address"] == address_of(cluster.lab)
    assert wait_for(lambda: web_row(cluster)["address"]["peers"] == list(WEB_SERVERS),
                    timeout=60), web_row(cluster)
    text = cluster.dragonball("services").stdout
    assert f"web answers at {address_of(cluster.lab)}" in " ".join(text.split()), text


def test_a_bad_address_is_refused_and_nothing_changes(cluster):
    lab = cluster.lab
    before = cluster.docker("s1", "service", "inspect", "--format", "{{.Version.Index}}",
                            "notes_web_address").stdout
    spec = address_spec(lab, address=lab.ip("s2"))          # a server's own address
    spec["services"]["api"]["address"] = address_of(lab)    # a Backend, and taken twice
    run = put_and_apply(cluster, spec, "/root/bad-address.app.yaml", check=False)
    assert run.returncode == 2, run.stdout + run.stderr
    messages = " | ".join(p["message"] for p in json.loads(run.stdout)["problems"])
    assert "is the address of server s2" in messages, messages
    assert "only a Service (kind: service) has an address" in messages, messages
    one = address_spec(lab)
    one["services"]["web"]["placement"] = {"servers": ["s2"]}
    one["services"]["web"]["replicas"] = 1
    run = put_and_apply(cluster, one, "/root/one-server.app.yaml", check=False)
    assert run.returncode == 2 and "the address cannot move" in run.stdout, run.stdout
    after = cluster.docker("s1", "service", "inspect", "--format", "{{.Version.Index}}",
                           "notes_web_address").stdout
    assert before == after


def test_losing_the_holder_under_load_moves_the_address(cluster, url):
    lab, address = cluster.lab, address_of(cluster.lab)
    holder = one_holder(cluster)
    other = next(s for s in WEB_SERVERS if s != holder)
    result = kill_under_load(cluster, url, holder)
    print(f"\n{holder} (holding {address}) lost under load: {result}")
    found, waited = wait_holders(lab, address, lambda h: h == [other], 60)
    assert waited is not None, f"holders: {found}"
    assert result.first_good_after_s is not None and result.first_good_after_s < 60, result
    assert result.failed_late == 0, result        # answering again, and no failure since
    assert result.longest_gap_s < 60, result
    assert get(f"{url}/api/info")[0] == 200


def test_the_lost_server_comes_back_standing_by(cluster):
    lab, address = cluster.lab, address_of(cluster.lab)
    for server in WEB_SERVERS:
        if not running(lab, server):
            bring_back(lab, server)
    assert wait_for(lambda: web_row(cluster)["address"]["peers"] == list(WEB_SERVERS),
                    timeout=240, interval=3), web_row(cluster)
    seen = set()
    for _ in range(20):             # 10 s: always exactly one holder
        found = holders(lab, address)
        seen.add(tuple(found))
        time.sleep(0.5)
    assert all(len(h) == 1 for h in seen), seen


def test_a_cut_between_the_two_servers_heals_to_one_holder(cluster, url):
    lab, address = cluster.lab, address_of(cluster.lab)
    one_holder(cluster)
    during = set()
    with partition(lab, "s2", ["s3"]):
        for _ in range(16):
            during.add(tuple(holders(lab, address)))
            time.sleep(0.5)
    found, waited = wait_holders(lab, address, lambda h: len(h) == 1, HEAL_S)
    print(f"\ncut s2 | s3: holders during the cut {sorted(during)}; one holder "
          f"({found}) {waited} s after it healed")
    assert waited is not None, f"holders {HEAL_S} s after the cut healed: {found}"
    assert wait_for(lambda: get(f"{url}/api/info")[0] == 200, timeout=60)


def test_the_side_without_the_managers_quorum_gives_the_address_up(cluster):
    lab, address = cluster.lab, address_of(cluster.lab)
    holder = one_holder(cluster)
    other = next(s for s in WEB_SERVERS if s != holder)
    with partition(lab, holder):      # cut off from s1 and the other: 1 manager of 3
        found, waited = wait_holders(lab, address, lambda h: h == [other], 60)
        print(f"\n{holder} cut off: {other} alone holds {address} after {waited} s")
        assert waited is not None, f"holders during the cut: {found}"
    found, waited = wait_holders(lab, address, lambda h: len(h) == 1, HEAL_S)
    assert waited is not None, f"holders {HEAL_S} s after the cut healed: {found}"

"""The notes app with a moving address on an installed lab cluster (docs/app-address.md),
shared by tests/e2e/test_app_address.py and bench/vip_failover.py:

    spec = address_spec(lab)                   # web on s2 and s3, at <lab subnet>.100
    put_and_apply(cluster, spec)
    holders(lab, address_of(lab))              # the servers holding it now: ['s2']
    result = kill_under_load(cluster, url, "s2")   # a Failover: failed requests, gaps

Faults come from tests/lab/faults.py, the load from tests/load.py. Traffic stays on this
machine and the lab's network.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import pathlib
import tempfile
import time

import yaml

from tests.lab.faults import lose_server
from tests.load import Load, NotesWorkload

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC_ON_LAB = "/root/notes-address.app.yaml"
WEB_SERVERS = ("s2", "s3")
ADDRESS_HOST = 100          # the address: this host number in the lab's subnet


def address_of(lab) -> str:
    """A free address of the lab's subnet (its servers are .11, .12, ...)."""
    subnet = ipaddress.ip_network(str(lab.subnet))
    return str(subnet.network_address + ADDRESS_HOST)


def address_spec(lab, address: str | None = None) -> dict:
    """The notes example: web (2 tasks) on s2 and s3 with the address, the store on s1,
    api x3 anywhere. `address=""`: the same app without an address (the baseline)."""
    spec = yaml.safe_load((ROOT / "examples" / "notes.app.yaml").read_text())
    web = spec["services"]["web"]
    web["placement"] = {"servers": list(WEB_SERVERS)}
    web["replicas"] = len(WEB_SERVERS)
    address = address_of(lab) if address is None else address
    if address:
        web["address"] = f"{address}/{ipaddress.ip_network(str(lab.subnet)).prefixlen}"
    spec["services"]["store"]["placement"] = {"servers": ["s1"]}
    spec["services"]["api"]["replicas"] = 3
    return spec


def put_and_apply(cluster, spec: dict, path: str = SPEC_ON_LAB, check: bool = True):
    """The spec copied to the portal and applied there (`dragonball apply --json`)."""
    with tempfile.TemporaryDirectory() as folder:
        local = pathlib.Path(folder) / pathlib.Path(path).name
        local.write_text(yaml.safe_dump(spec, sort_keys=False))
        cluster.lab.copy_in(cluster.portal, str(local), "/root")
    return cluster.dragonball("apply", path, "--json", check=check, timeout=900)


def holds(lab, server: str, address: str) -> bool:
    """Whether `server` has `address` on an interface now (a server that is off: no)."""
    try:
        out = lab.exec(server, ["ip", "-4", "-o", "addr", "show"], timeout=10).stdout
    except Exception:   # an off or cut server: it holds nothing we can reach
        return False
    return f"inet {address}/" in out


def holders(lab, address: str, servers=WEB_SERVERS) -> list[str]:
    """The servers holding `address` now, asked at once."""
    with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
        found = list(pool.map(lambda s: holds(lab, s, address), servers))
    return [s for s, held in zip(servers, found) if held]


def wait_holders(lab, address: str, wanted, timeout: float, servers=WEB_SERVERS):
    """Poll until `wanted(holders)` is true; (holders, seconds waited), or (last, None)."""
    began = time.monotonic()
    while True:
        found = holders(lab, address, servers)
        if wanted(found):
            return found, time.monotonic() - began
        if time.monotonic() - began > timeout:
            return found, None
        time.sleep(0.5)


@dataclasses.dataclass
class Failover:
    """One server killed under load: what the clients saw."""

    server: str
    requests: int
    failed: int
    longest_gap_s: float            # the longest stretch with no good answer
    without_answer_s: float         # every stretch over 1 s without one, summed
    first_good_after_s: float | None
    answering_again_s: float | None   # the kill to the end of the longest gap (None: never)
    failed_late: int                # failed requests from `settle` s after the kill on
    reasons: dict


def kill_under_load(cluster, url: str, server: str, before: float = 8, after: float = 25,
                    settle: float = 20, rate: float = 20) -> Failover:
    """A bounded load through `url` (the notes API), `server` lost (docker kill) `before`
    s in, the load kept `after` s more; the server stays off (bring it back yourself)."""
    lab = cluster.lab
    load = Load(url, NotesWorkload(), threads=4, rate=rate, seconds=before + after + 30,
                budget=int(rate * (before + after + 30)), timeout=5, allowed=[lab.subnet])
    load.start()
    try:
        time.sleep(before)
        killed = time.monotonic()
        lose_server(lab, server).do()
        load.ledger.mark(f"{server} lost", killed)
        time.sleep(after)
    finally:
        load.stop()
    ledger = load.ledger
    attempts = ledger._sorted()
    gap = ledger.longest_gap(start=killed - 1)
    late = [a for a in ledger.failed if a.sent >= killed + settle]
    span_end = ledger.span()[1] if ledger.span() else killed
    again = round(gap[2] - killed, 2) if gap[2] < span_end - 0.5 else None
    return Failover(server, len(attempts), len(ledger.failed), round(gap[0], 2),
                    round(ledger.seconds_without_answer(1.0, start=killed - 1), 2),
                    ledger.first_good_after(killed), again, len(late),
                    ledger.failures_by_reason())

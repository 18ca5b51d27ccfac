"""When certificates end and what is said about it (shared/cert_expiry, pure), and the
facts the portal gathers (portal/certificates) from files and a played Swarm."""

from __future__ import annotations

import datetime

import pytest

from dragonball import pki
from dragonball.portal import certificates
from dragonball.shared import paths
from dragonball.shared.cert_expiry import (DAY, CertFact, down_node_fact, warning_of,
                                           warnings)
from dragonball.swarm.model import Node

NOW = datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc)


def leaf(days: float, kind: str = "leaf") -> CertFact:
    return CertFact("portal TLS", kind, NOW + days * DAY, renew="'dragonball certs renew'")


@pytest.mark.parametrize("days, level", [
    (400, None), (31, None), (30, "warning"), (8, "warning"), (7, "error"), (0.5, "error"),
    (-1, "error")])
def test_a_leaf_warns_30_days_ahead_and_is_an_error_7_days_ahead(days, level):
    found = warning_of(leaf(days), NOW)
    assert (found.level if found else None) == level
    if found:
        assert "dragonball certs renew" in found.hint


def test_an_expired_certificate_says_so_with_its_day():
    found = warning_of(leaf(-3), NOW)
    assert found.text == "expired on 2026-12-29 00:00 UTC"


@pytest.mark.parametrize("days, level", [(366, None), (365, "warning"), (90, "error")])
def test_a_ca_warns_a_year_ahead(days, level):
    found = warning_of(leaf(days, "ca"), NOW)
    assert (found.level if found else None) == level


def test_a_down_node_ends_in_a_window_from_a_fifth_of_its_lifetime():
    fact = down_node_fact("s2", NOW - 10 * DAY, 365 * DAY, "'dragonball rejoin s2'")
    assert fact.earliest == NOW + 63 * DAY and fact.not_after == NOW + 355 * DAY
    assert warning_of(fact, NOW) is None                       # 63 days: not yet
    soon = warning_of(fact, NOW + 40 * DAY)
    assert soon.level == "warning" and "down since" in soon.text
    maybe = warning_of(fact, NOW + 64 * DAY)
    assert maybe.level == "error" and maybe.text.startswith("may have expired")
    assert "dragonball rejoin s2" in maybe.hint
    assert warning_of(fact, NOW + 356 * DAY).text.startswith("expired on")


def test_warnings_put_errors_first_then_the_soonest():
    found = warnings([leaf(20), leaf(3), leaf(400), leaf(10)], NOW)
    assert [round(w.days_left) for w in found] == [3, 10, 20]
    assert [w.level for w in found] == ["error", "warning", "warning"]


def test_hours_and_minutes_when_less_than_two_days_are_left():
    assert "ends in 5 hours" in warning_of(leaf(5 / 24), NOW).text
    assert "ends in 30 minutes" in warning_of(leaf(0.5 / 24), NOW).text


# --- the portal's facts ---------------------------------------------------------------------

class PlayedSwarm:
    def __init__(self, nodes, lifetime=365 * DAY, trust_root=""):
        self._nodes, self.lifetime, self.trust_root = nodes, lifetime, trust_root

    def ca_config(self):
        return self.lifetime, self.trust_root

    def nodes(self):
        return self._nodes


def test_the_report_reads_the_files_and_the_swarm():
    ca = pki.create_ca(days=3650)
    portal = pki.issue_server_cert(ca, "portal", ips=["10.0.0.1"], days=20)
    own = pki.issue_server_cert(ca, "node", dns_names=["n"], days=300)
    files = {paths.CLUSTER_CA_CERT: ca.cert_pem, "/p/server.crt": portal.cert_pem,
             paths.SWARM_NODE_CERT: own.cert_pem}
    read = files.get
    nodes = [Node("a", "s1", ready=True, updated="2026-12-01T00:00:00Z"),
             Node("b", "s2", ready=False, updated="2026-01-01T00:00:00.123456789Z")]
    facts = certificates.local_facts("/p/server.crt", read) + certificates.swarm_facts(
        PlayedSwarm(nodes, trust_root=ca.cert_pem.decode()), "s1", read)
    assert [(f.name, f.server) for f in facts] == [
        ("cluster CA", ""), ("portal TLS", ""), ("Swarm node certificate", "s1"),
        ("Swarm root CA", ""), ("Swarm node certificate", "s2")]
    found = warnings(facts, datetime.datetime.now(datetime.timezone.utc))
    subjects = [w.subject for w in found]
    assert "portal TLS" in subjects                  # 20 days left
    assert "s2: Swarm node certificate" in subjects  # down for about a year


def test_the_report_says_why_the_swarm_could_not_be_read():
    from dragonball.swarm.model import SwarmError

    class Down:
        def ca_config(self):
            raise SwarmError("the engine could not inspect the Swarm: refused")
    out = certificates.report("/nonexistent/server.crt", Down(), "s1")
    assert out["note"].startswith("the Swarm's certificates cannot be read")
    assert isinstance(out["warnings"], list)


def test_each_devices_identity_is_reported_with_the_way_to_renew_it():
    """A device's agent identity ends like any leaf; the portal does not hold its key, so
    the warning says to enroll it again (dragonball rejoin)."""
    from dragonball import agent_client
    from dragonball.swarm.model import SwarmError

    class Down:
        def ca_config(self):
            raise SwarmError("not asked here")
    ca = pki.create_ca()
    soon = agent_client.sign_agent_csr(ca, pki.csr_pem(pki.new_key_pem(), "s2"), "10.0.0.2",
                                       "s2", days=10)
    fresh = agent_client.sign_agent_csr(ca, pki.csr_pem(pki.new_key_pem(), "s3"), "10.0.0.3",
                                        "s3")
    out = certificates.report("/nonexistent/server.crt", Down(), "s1",
                              identities={"s2": soon.decode(), "s3": fresh, "s4": "junk"})
    rows = [(c["name"], c["server"]) for c in out["certificates"]]
    assert rows == [("agent identity", "s2"), ("agent identity", "s3")]
    [warning] = out["warnings"]
    assert warning["subject"] == "s2: agent identity" and warning["level"] == "warning"
    assert "dragonball rejoin s2" in warning["hint"]

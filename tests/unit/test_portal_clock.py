"""The portal's clock for preflight's clock rule, read from an HTTP Date header."""

from __future__ import annotations

from dragonball.installer.enrollment_api import http_date_seconds
from dragonball.installer.preflight.facts import Facts
from dragonball.installer.preflight.requirements import SKEW_FAIL_S
from dragonball.installer.preflight.rules_cluster import clock


def test_http_dates_parse_and_junk_is_none():
    assert http_date_seconds("Sat, 28 Nov 2026 15:00:00 GMT") == 1795878000.0
    assert http_date_seconds(None) is None and http_date_seconds("yesterday") is None


def test_a_server_far_behind_the_portal_fails_preflight():
    facts = Facts.__new__(Facts)
    facts.cluster, facts.time = {"portal_time": 1795878000.0}, 1795878000.0 - SKEW_FAIL_S - 1
    (check,) = clock(facts, None)
    assert check.status == "fail" and "behind the portal" in check.detail and "NTP" in check.hint
    facts.time = 1795878000.0 + 1
    assert clock(facts, None)[0].status == "pass"

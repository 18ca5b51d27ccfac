"""The portal's Swarm and CA steps (portal.swarm, portal.pki) on a played server
(portal_fakes): certificates kept or reissued, a Swarm joined already."""

from __future__ import annotations

import datetime
import json

import pytest

from dragonball import pki
from dragonball.errors import InstallerError
from dragonball.installer.portal import cluster
from portal_fakes import (  # noqa: F401 (fixtures)
    PlayedServer, _context, _step, bin_file, played)

def test_a_new_address_reissues_the_server_certificates_from_the_same_ca(played, tmp_path):
    _step(_context(played, tmp_path), "portal.pki", cluster.make_pki)
    etc = played.root / "etc/dragonball"
    ca_before, cert_before = (etc / "ca/ca.crt").read_bytes(), (etc / "portal/server.crt").read_bytes()
    _step(_context(played, tmp_path / "again", address="10.0.0.7"), "portal.pki",
          cluster.make_pki)
    assert (etc / "ca/ca.crt").read_bytes() == ca_before
    assert (etc / "portal/server.crt").read_bytes() != cert_before
    pair = pki.KeyPair((etc / "portal/server.crt").read_bytes(),
                       (etc / "portal/server.key").read_bytes())
    assert cluster.cert_fits(pair, ca_before, ["10.0.0.7"], ["s1"])


def test_cert_fits_refuses_another_ca_other_names_and_a_near_end():
    ca = pki.create_ca()
    pair = pki.issue_server_cert(ca, "p", ips=["10.0.0.1"], dns_names=["s1"])
    fits = cluster.cert_fits
    assert fits(pair, ca.cert_pem, ["10.0.0.1"], ["s1"])
    assert not fits(pair, pki.create_ca().cert_pem, ["10.0.0.1"], ["s1"])
    assert not fits(pair, ca.cert_pem, ["10.0.0.2"], ["s1"])
    assert not fits(pair, ca.cert_pem, ["10.0.0.1"], ["s2"])
    assert not fits(pki.KeyPair(pair.cert_pem, ca.key_pem), ca.cert_pem, ["10.0.0.1"], ["s1"])
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=800)
    assert not fits(pair, ca.cert_pem, ["10.0.0.1"], ["s1"], now=later)


@pytest.mark.parametrize("info, state", [
    ({}, "none"), ({"LocalNodeState": "inactive"}, "none"),
    ({"LocalNodeState": "active", "ControlAvailable": True}, "manager"),
    ({"LocalNodeState": "active", "ControlAvailable": False}, "worker"),
    ({"LocalNodeState": "locked"}, "locked"),
])
def test_swarm_state(info, state):
    assert cluster.swarm_state(info) == state


def test_a_manager_already_is_done_and_a_worker_is_refused(played, tmp_path):
    played.swarm = "active"
    ctx = _context(played, tmp_path)
    ctx.journal.start("portal.swarm")
    assert cluster.swarm_init(ctx) == {}
    assert not played.docker_calls("swarm", "init")

    class Worker(PlayedServer):
        def _docker(self, args):
            if args[:3] == ["info", "--format", "{{json .Swarm}}"]:
                return 0, json.dumps({"LocalNodeState": "active", "ControlAvailable": False}), ""
            return super()._docker(args)
    ctx = _context(Worker(tmp_path / "w"), tmp_path / "w")
    ctx.journal.start("portal.swarm")
    with pytest.raises(InstallerError, match="leave the other Swarm first"):
        cluster.swarm_init(ctx)


def test_a_manager_with_swarms_default_lifetime_gets_a_year_once(played, tmp_path):  # noqa: F811
    """A Swarm made before DragonBall set it (90 days) gets `swarm update --cert-expiry`;
    the next run finds it set and changes nothing."""
    played.swarm = "active"
    ctx = _context(played, tmp_path)
    ctx.journal.start("portal.swarm")
    cluster.swarm_init(ctx)
    assert played.docker_calls("swarm", "update") == [
        ["swarm", "update", "--cert-expiry", "8760h"]]
    cluster.swarm_init(ctx)
    assert len(played.docker_calls("swarm", "update")) == 1
    assert played.cert_expiry_ns == cluster.NODE_CERT_EXPIRY_NS

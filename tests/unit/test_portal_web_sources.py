"""The pages' real sources (web.sources.PortalSources) against local stand-ins: the store,
a TLS registry on 127.0.0.1 (test_registry_client's), agents that cannot be reached."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dragonball import pki
from dragonball.portal.store import Store
from dragonball.portal.web.sources import PortalSources, SourceError
from portal_web_fakes import make_settings
from test_registry_client import PASSWORD, USER, registry, tls  # noqa: F401 (fixtures)


@pytest.fixture
def settings(tmp_path, registry, tls):  # noqa: F811
    pki.write_private(tmp_path / "registry.json",
                      json.dumps({"username": USER, "password": PASSWORD}).encode())
    return dataclasses.replace(make_settings(tmp_path), registry=registry,
                               ca_cert=str(tls / "ca.crt"),
                               registry_credentials=str(tmp_path / "registry.json"))


@pytest.fixture
def store(settings):
    s = Store.open(settings.db_path)
    yield s
    s.close()


def test_images_come_from_the_registry_catalog(store, settings):
    assert PortalSources(store, settings).images() == {
        "dragonball/agent": ["0.1.0", "latest"], "dragonball/registry": []}


def test_a_registry_that_refuses_is_a_source_error(store, settings, tmp_path):
    pki.write_private(tmp_path / "registry.json",
                      json.dumps({"username": USER, "password": "wrong"}).encode())
    with pytest.raises(SourceError) as caught:
        PortalSources(store, settings).images()
    assert "refused the credentials" in caught.value.message


def test_missing_registry_credentials_are_a_source_error(store, settings):
    broken = dataclasses.replace(settings, registry_credentials="/nonexistent/registry.json")
    with pytest.raises(SourceError):
        PortalSources(store, broken).images()


def test_agents_without_the_portals_client_certificate_are_errors_per_address(store, settings):
    files = {"ca": settings.ca_cert, "cert": "/nonexistent/client.crt", "key": "/nonexistent/k"}
    found = PortalSources(store, settings, files).metrics(["10.0.0.1", "10.0.0.2"])
    assert set(found) == {"10.0.0.1", "10.0.0.2"}
    assert all("missing" in e.message for e in found.values())


def test_new_enrollment_gives_the_join_command_with_the_ca_fingerprint(store, settings):
    info = PortalSources(store, settings).new_enrollment(3600, "admin (web)", "10.0.0.9")
    with open(settings.ca_cert, "rb") as f:
        fingerprint = "SHA256:" + pki.fingerprint(f.read())
    assert info["ca_fingerprint"] == fingerprint
    assert info["command"][-2:] == ["--ca-fingerprint", fingerprint]
    assert info["code"] not in info["command"]
    assert store.events(1)[0]["client"] == "10.0.0.9"


def test_new_enrollment_without_the_ca_is_a_source_error(store, settings):
    broken = dataclasses.replace(settings, ca_cert="/nonexistent/ca.crt")
    with pytest.raises(SourceError):
        PortalSources(store, broken).new_enrollment(3600, "admin (web)", "10.0.0.9")
    assert store.codes() == []

"""Schemathesis fuzzes the portal's own OpenAPI document against the portal served for real
over HTTPS (uvicorn, the portal's TLS certificate, 127.0.0.1) and no call may answer 5xx.

The portal here is `create_app` with fakes where a cluster would answer (the Swarm, the
orchestrator's engine, agents and registry: tests/unit's fakes), so an app exists, its
services run and their parameters can be set: the fuzzer reaches the code behind the
validation, not only 404s. The document is fetched with the admin's API token
(GET /api/v1/openapi.json needs auth) and every generated call carries the token.
A small deterministic number of examples per operation keeps it under a minute.
"""

from __future__ import annotations

import sys
import threading
import time

import pytest
import requests

from dragonball.portal import serve as serve_mod
from dragonball.portal.api import create_app
from dragonball.portal.store import Store
from support import ROOT, wait_for
from test_portal_cli_remote import ADMIN_PASSWORD
from tests.portal_lab import write_portal

schemathesis = pytest.importorskip("schemathesis", reason="pip install -e '.[dev]'")
hypothesis = pytest.importorskip("hypothesis")

sys.path.insert(0, str(ROOT / "tests" / "unit"))  # the fakes the unit tests use
from orchestrator_fakes import FakeAgents, FakeRegistry, FakeSwarm  # noqa: E402
from test_portal_app import FakeCluster  # noqa: E402

EXAMPLES = 25
NOTES = (ROOT / "examples" / "notes.app.yaml").read_text()
REGISTRY = "127.0.0.1:5000"
DIGESTS = {f"notes/{m}:0.1.0": f"sha256:{m[0] * 64}" for m in ("web", "api", "store")}


def control_factory(store):
    """Controls over one shared fake cluster, its rollouts without real sleeps."""
    from dragonball.orchestrator.control import Control
    from dragonball.orchestrator.state import AppStore
    engine, agents, registry = FakeSwarm(), FakeAgents(), FakeRegistry(DIGESTS)

    def make():
        return Control(engine, AppStore(store), agents, registry, REGISTRY, wait_s=5.0,
                       sleep=lambda s: None)
    return make


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """(URL, CA path, token) of the portal app served over HTTPS in this process."""
    import uvicorn
    folder = tmp_path_factory.mktemp("portal-schema")
    settings = write_portal(folder, ADMIN_PASSWORD, "portal-schema", "plant-a")
    store = Store.open(settings.db_path)
    factory = control_factory(store)
    (folder / "notes.app.yaml").write_text(NOTES)
    factory().apply(str(folder / "notes.app.yaml"))  # an app to fuzz, its services running
    app = create_app(store, settings, FakeCluster(), control_factory=factory)
    sock = serve_mod.bind(settings.address, settings.port)
    server = uvicorn.Server(uvicorn.Config(
        app, ssl_certfile=settings.tls_cert, ssl_keyfile=settings.tls_key, log_level="warning",
        loop="asyncio", http="h11", ws="none", lifespan="off",
        timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"https://{settings.address}:{settings.port}"
    session = _session(settings.ca_cert)
    wait_for(lambda: _healthy(session, url), 30)
    token = session.post(url + "/api/v1/tokens", auth=("admin", ADMIN_PASSWORD),
                         json={}).json()["token"]
    yield url, settings.ca_cert, token
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()
    store.close()


def _session(ca: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # the cluster CA, whatever REQUESTS_CA_BUNDLE says
    session.verify = ca
    return session


def _healthy(session, url) -> bool:
    try:
        return session.get(url + "/healthz", timeout=2).ok
    except requests.ConnectionError:
        return False


def test_the_openapi_document_needs_auth(portal):
    url, ca, token = portal
    assert _session(ca).get(url + "/api/v1/openapi.json").status_code == 401
    assert _session(ca).get(url + "/api/v1/openapi.json", auth=("admin", ADMIN_PASSWORD)).ok


def test_no_operation_answers_5xx(portal):
    url, ca, token = portal
    session = _session(ca)
    document = session.get(url + "/api/v1/openapi.json",
                           headers={"Authorization": f"Bearer {token}"}).json()
    schema = schemathesis.openapi.from_dict(document)
    headers = {"Authorization": f"Bearer {token}"}
    failures, calls, began = [], [], time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5, [op.label for op in operations]

    for operation in operations:
        if operation.label == "DELETE /api/v1/tokens/current":
            continue  # it would end the token every other call carries

        @hypothesis.settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
                             database=None, suppress_health_check=list(hypothesis.HealthCheck),
                             phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
        @hypothesis.given(case=operation.as_strategy())
        def fuzz(case):
            response = case.call(base_url=url, session=session, headers=headers, timeout=30,
                                 verify=ca)  # else schemathesis passes verify=True
            calls.append(operation.label)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> "
                                f"{response.status_code}: {response.text[:300]}")
        fuzz()
    assert failures == [], "\n".join(failures)
    assert len(set(calls)) == len(operations) - 1
    print(f"{len(calls)} calls over {len(set(calls))} operations in "
          f"{time.monotonic() - began:.1f} s")

"""The built-in Service (issue 15: "a Service that is part of the product"), on the real engine.

`dragonballservice:bookworm` is run as it is, with no Dockerfile of its own, configured only by
its parameters: two routes by path prefix to two sets of backends, a body size, a health path,
a header, then TLS with a certificate of a test CA; the backends are small HTTP servers on the
base image's python3 that answer with what they received. Bad values and a mismatched key are
refused by config_change with the config in force still serving. The notes app's web is the
same image with a static page (tests/integration/test_service_lb.py: eviction under load).
Only loopback (the Service's published port) and the test's own bridge network are used.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import docker
import pytest

from dragonball import pki
from notes_app import config_change, health, run_sh
from support import LABELS, RUN_ID, wait_for

SERVICE_IMAGE = "dragonballservice:bookworm"
# A backend: answers every request with its name, the path, the headers and the body's size.
ECHO = r"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def answer(self):
        size = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(size)
        body = json.dumps({"name": os.environ["NAME"], "path": self.path, "size": size,
                           "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = answer
    def log_message(self, *a): pass
ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
"""
PARAMS = {"backends": ["alpha:8000"], "routes": ["/a/", "/b/=beta:8000"],
          "body_size": "2k", "health_path": "/healthz", "headers": ["X-Team: blue"],
          "resolve_interval": 1}
NO_PROXY = urllib.request.ProxyHandler({})


@pytest.fixture(scope="module")
def service(docker_client, base_image):
    docker_client.images.get(SERVICE_IMAGE)   # built by build.py base with the base
    network = docker_client.networks.create(f"svc-{RUN_ID}", driver="bridge", labels=LABELS)
    containers = []
    try:
        for name in ("alpha", "beta"):
            containers.append(docker_client.containers.run(
                base_image, ["python3", "-c", ECHO], entrypoint=[], detach=True,
                name=f"svc-{name}-{RUN_ID}", labels=LABELS, environment={"NAME": name},
                network=network.name,
                networking_config={network.name: docker_client.api.create_endpoint_config(
                    aliases=[name])}))
        svc = docker_client.containers.run(
            SERVICE_IMAGE, detach=True, name=f"svc-service-{RUN_ID}", labels=LABELS,
            environment={"DRAGONBALL_PARAMS": json.dumps(PARAMS)}, network=network.name,
            ports={"8080/tcp": ("127.0.0.1", None)})
        containers.append(svc)
        wait_for(lambda: health(svc) == "healthy", 90,
                 lambda: f"{health(svc)}\n{svc.logs().decode()}", interval=0.5)
        svc.reload()
        svc.port = int(svc.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
        yield svc
    finally:
        for container in containers:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
        network.remove()


def request(url: str, body: bytes | None = None, headers: dict | None = None,
            context: ssl.SSLContext | None = None) -> tuple[int, str]:
    opener = urllib.request.build_opener(NO_PROXY, urllib.request.HTTPSHandler(context=context))
    req = urllib.request.Request(url, data=body, headers=headers or {},
                                 method="POST" if body is not None else "GET")
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_each_prefix_goes_to_its_own_backends_with_the_path_unchanged(service):
    status, body = request(f"http://127.0.0.1:{service.port}/a/notes?x=1")
    assert status == 200 and json.loads(body)["name"] == "alpha"
    assert json.loads(body)["path"] == "/a/notes?x=1"
    status, body = request(f"http://127.0.0.1:{service.port}/b/")
    assert status == 200 and json.loads(body)["name"] == "beta"


def test_a_path_no_route_takes_answers_a_json_404_naming_the_routes(service):
    status, body = request(f"http://127.0.0.1:{service.port}/elsewhere")
    assert status == 404 and json.loads(body) == {"error": "no route takes this path",
                                                  "routes": ["/a/", "/b/"]}


def test_the_backends_are_told_the_host_with_its_port_and_the_forwarded_headers(service):
    _, body = request(f"http://127.0.0.1:{service.port}/a/",
                      headers={"Host": f"wiki.site:{service.port}"})
    headers = json.loads(body)["headers"]
    assert headers["Host"] == f"wiki.site:{service.port}"
    assert headers["X-Forwarded-Host"] == f"wiki.site:{service.port}"
    assert headers["X-Forwarded-Proto"] == "http" and headers["X-Forwarded-For"]
    assert headers["X-Team"] == "blue"


def test_a_body_over_body_size_is_refused_with_413_and_one_under_it_passes(service):
    assert request(f"http://127.0.0.1:{service.port}/a/", body=b"x" * 1500)[0] == 200
    assert request(f"http://127.0.0.1:{service.port}/a/", body=b"x" * 4096)[0] == 413


def test_the_health_path_is_answered_by_the_service_itself(service):
    assert request(f"http://127.0.0.1:{service.port}/healthz") == (200, "ok\n")
    done = run_sh(service, "status", "--json")
    assert done.returncode == 0 and "GET /healthz on port 8080 -> 200" in done.stdout


def test_bad_values_are_refused_all_at_once_and_the_config_in_force_stays(service):
    code, report = config_change(service, {**PARAMS, "routes": ["/a/", "nope"],
                                           "body_size": "huge", "headers": ["X-A: $evil"]})
    assert code == 1, report
    output = json.dumps(report)
    for expected in ("the prefix must start with /", "body_size must be a size",
                     "without ' \\\\ or $", "the config in force is unchanged"):
        assert expected in output, output
    status, body = request(f"http://127.0.0.1:{service.port}/b/")
    assert status == 200 and json.loads(body)["name"] == "beta"


def test_tls_with_a_given_certificate_then_a_mismatched_key_is_refused(service, tmp_path):
    ca = pki.create_ca("test CA")
    leaf = pki.issue_server_cert(ca, "service.test", ips=["127.0.0.1"])
    tls = {**PARAMS, "tls_cert": leaf.cert_pem.decode(), "tls_key": leaf.key_pem.decode()}
    code, report = config_change(service, tls)
    assert code == 0, report
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    url = f"https://127.0.0.1:{service.port}"
    wait_for(lambda: request(f"{url}/healthz", context=context)[0] == 200, 15, interval=0.2)
    status, body = request(f"{url}/a/", context=context)
    assert status == 200 and json.loads(body)["headers"]["X-Forwarded-Proto"] == "https"
    assert run_sh(service, "status").returncode == 0           # its own check speaks TLS too
    key_mode = service.exec_run(["sh", "-c", "stat -c %a /run/dragonball-service/tls/*.key"])
    assert key_mode.output.decode().split() == ["600"], key_mode.output

    other = pki.issue_server_cert(ca, "other", dns_names=["other.test"])
    code, report = config_change(service, {**tls, "tls_key": other.key_pem.decode()})
    assert code == 1 and "nginx -t refused" in json.dumps(report), report
    assert request(f"{url}/b/", context=context)[0] == 200     # the old certificate serves
    assert "PRIVATE KEY" not in service.logs().decode()        # never in the log
    code, report = config_change(service, {**PARAMS, "tls_cert": "", "tls_key": ""})  # HTTP again
    assert code == 0, report
    wait_for(lambda: request(f"http://127.0.0.1:{service.port}/healthz")[0] == 200, 15,
             interval=0.2)

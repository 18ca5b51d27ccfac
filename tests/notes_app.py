"""The notes example app (examples/) run in real containers, for tests and benches.

One copy of what tests/integration/test_examples.py, test_service_lb.py and
bench/service_eviction.py share: the app's containers on a network of their own (`NotesApp`),
plain HTTP on loopback, `run.sh` in a container, and the web Service's upstream state.
The images are the ones `build.py examples` builds.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request

import docker

from support import LABELS, RUN_ID, wait_for

DOCKER = "/usr/bin/docker"
RUN_SH = "/opt/dragon_ball/bin/run.sh"
MODULES = ("store", "api", "web")
STORE_PASSWORD = f"pw-{RUN_ID}-never-printed"
HEALTHY_WITHIN = 90  # seconds; the images check every 10 s
WEB_STATE = "/run/dragonball-service/state.json"
# The web is the built-in Service (docs/service.md): its module folder is the Service's.
MODULE_FOLDER = {"web": "service"}
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy


def image(name: str) -> str:
    return f"dragonball-example/{name}:latest"


class NotesApp:
    """The three containers of one notes app on a network of their own."""

    def __init__(self, client, network, root) -> None:
        self.client, self.network, self.root = client, network, root
        self.containers: dict = {}

    def params(self, name: str) -> dict:
        return {"store": {"password": STORE_PASSWORD, "maxmemory": "64mb"},
                "api": {"store_host": "store", "store_password": STORE_PASSWORD,
                        "greeting": "hello from the test"},
                "web": {"backends": ["api:8080"], "resolve_interval": 2}}[name]

    def run(self, name: str, key: str | None = None, params: dict | None = None):
        """Start module `name`; storage/ and log/ are host folders that outlive it.

        `key` names one of several containers of the module (all answer to the alias `name`,
        as Swarm's dnsrr tasks do); `params` is merged over the usual parameters.
        """
        key = key or name
        mounts = {}
        for folder in ("storage", "log"):
            host = self.root / key / folder
            host.mkdir(parents=True, exist_ok=True)
            module = MODULE_FOLDER.get(name, name)
            mounts[str(host)] = {"bind": f"/opt/dragon_ball/service/{module}/{folder}", "mode": "rw"}
        endpoint = self.client.api.create_endpoint_config(aliases=[name])
        container = self.client.containers.run(
            image(name), detach=True, name=f"notes-{key}-{RUN_ID}", labels=LABELS,
            volumes=mounts,
            environment={"DRAGONBALL_PARAMS": json.dumps({**self.params(name), **(params or {})})},
            network=self.network.name, networking_config={self.network.name: endpoint},
            ports={"8080/tcp": ("127.0.0.1", None)} if name == "web" else {})
        self.containers[key] = container
        return container

    def logs(self) -> str:
        parts = []
        for name, container in self.containers.items():
            try:
                parts.append(f"--- docker logs of {name} ---\n{container.logs().decode()}")
            except docker.errors.NotFound:
                parts.append(f"--- {name}: container gone ---")
        return "\n".join(parts)

    def wait_healthy(self, *names: str) -> None:
        for name in names or tuple(self.containers):
            container = self.containers[name]
            wait_for(lambda: health(container) == "healthy", HEALTHY_WITHIN,
                     lambda: f"{name} is {health(container)}\n{self.logs()}", interval=0.5)

    @property
    def web_url(self) -> str:
        web = self.containers["web"]
        web.reload()
        port = web.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        return f"http://127.0.0.1:{port}"


def health(container) -> str:
    try:
        container.reload()
    except docker.errors.NotFound:
        return "gone"
    state = container.attrs["State"]
    return state.get("Health", {}).get("Status", "none") if state["Running"] else state["Status"]


def http(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with HTTP.open(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def run_sh(container, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER, "exec", "-i", container.id, RUN_SH, *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def config_change(container, params: dict) -> tuple[int, dict]:
    """`run.sh config_change --json` with the parameters on stdin: (exit code, report)."""
    done = run_sh(container, "config_change", "--json", stdin=json.dumps(params))
    return done.returncode, json.loads(done.stdout)


# -- the web Service's backends --------------------------------------------------------------
def web_state(app: NotesApp, attempts: int = 5) -> dict:
    """The web's last render: backends, servers (address per line), mode, digest.

    The web moves the file aside (state.json.prev) an instant before it writes the new one, so
    a poll can find it missing: read again shortly.
    """
    for _ in range(attempts):
        done = subprocess.run([DOCKER, "exec", app.containers["web"].id, "cat", WEB_STATE],
                              capture_output=True, text=True)
        if done.returncode == 0:
            return json.loads(done.stdout)
        time.sleep(0.05)
    raise AssertionError(f"cannot read {WEB_STATE} in the web: {done.stderr.strip()}")


def upstream(app: NotesApp) -> set[str]:
    return {s["server"] for s in web_state(app)["servers"]}


def address(app: NotesApp, key: str) -> str:
    container = app.containers[key]
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][app.network.name]["IPAddress"] + ":8080"


def start_api(app: NotesApp, key: str) -> str:
    """One more api container answering to the alias `api`; its address once healthy."""
    app.run("api", key=key)
    app.wait_healthy(key)
    return address(app, key)


def notification(seq: int) -> dict:
    """What the orchestrator tells the web when the api service scaled."""
    return {"schema": 1, "seq": seq, "app": "notes", "service": "api", "event": "scaled",
            "replicas": {"desired": 3, "running": 3, "healthy": 3},
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "to": "web"}


def parse_wrk(text: str) -> dict:
    """Requests, non-2xx, socket errors and of them read errors from wrk's summary (absent
    lines mean 0)."""
    requests = re.search(r"^\s*(\d+) requests in", text, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    assert requests, f"no summary in wrk's output:\n{text}"
    return {"requests": int(requests.group(1)),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(map(int, sockets.groups())) if sockets else 0,
            "read_errors": int(sockets.group(2)) if sockets else 0}

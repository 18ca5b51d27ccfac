"""The notes app's replicated store (examples/store with DRAGONBALL_PEERS) in real containers.

What the orchestrator will give each slot of a stateful service on a cluster, done by hand on
one bridge network: a container per slot, the alias `store-<n>` (its stable name), the slot
variables (DRAGONBALL_SLOT, DRAGONBALL_SLOT_NAME, DRAGONBALL_PEERS), its own storage/ and log/
on the host. An api container asks the slots' sentinels for the primary (store_sentinels).
Shared by tests/integration/test_store_ha.py (and benches that want the same layout).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import docker

from support import LABELS, ROOT, RUN_ID, wait_for

DOCKER = "/usr/bin/docker"
RUN_SH = "/opt/dragon_ball/bin/run.sh"
PASSWORD = f"ha-{RUN_ID}-never-printed"
READY_WITHIN = 90  # seconds
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy


def build_images(client) -> dict[str, str]:
    """store and api from examples/, built by the builder under tags of this run only.

    `build.py examples` tags dragonball-example/<name>:latest, which other checkouts on the
    same engine may rebuild from other code at any moment; these tags are this run's.
    """
    from builder.engine import Engine
    from builder.images import ExampleBuild
    from builder.pipeline import BuildEnv, build_example, plan_build
    from builder.progress import Reporter

    engine = Engine()
    try:
        env = BuildEnv(reporter=Reporter(), engine=engine, root=ROOT)
        plan = plan_build(env, with_examples=True)
        return {name: build_example(env, ExampleBuild(name, f"examples/{name}",
                                                      f"dragonball-test/ha-{name}:{RUN_ID}"),
                                    plan.mirror)
                for name in ("store", "api")}
    finally:
        engine.close()


def remove_images(client, images: dict[str, str]) -> None:
    for tag in images.values():
        try:
            client.images.remove(tag)
        except docker.errors.APIError:
            pass


class HaStore:
    """N store slots (store-1..N) and one api on a network of their own."""

    def __init__(self, client, images: dict[str, str], root: pathlib.Path, slots: int = 3,
                 prefix: str = "ha", params: dict | None = None) -> None:
        """`slots`: 1 is a single, unreplicated store (DRAGONBALL_PEERS names only store-1);
        `params`: store parameters over the password."""
        self.client, self.images, self.root = client, images, root
        self.params = {"password": PASSWORD, **(params or {})}
        self.names = [f"store-{n}" for n in range(1, slots + 1)]
        self.prefix = prefix
        self.network = client.networks.create(f"notes-{prefix}-{RUN_ID}", driver="bridge",
                                              labels=LABELS)
        self.containers: dict = {}

    # -- containers ------------------------------------------------------------------------
    def _mounts(self, key: str, module: str) -> dict:
        mounts = {}
        for folder in ("storage", "log"):
            host = self.root / key / folder
            host.mkdir(parents=True, exist_ok=True)
            mounts[str(host)] = {"bind": f"/opt/dragon_ball/service/{module}/{folder}",
                                 "mode": "rw"}
        return mounts

    def start_slot(self, name: str):
        """Create (or re-create, same storage) the container of slot `name`."""
        number = self.names.index(name) + 1
        endpoint = self.client.api.create_endpoint_config(aliases=[name])
        container = self.client.containers.run(
            self.images["store"], detach=True, name=f"notes-{self.prefix}-{name}-{RUN_ID}",
            labels=LABELS, volumes=self._mounts(name, "store"),
            environment={"DRAGONBALL_SLOT": str(number), "DRAGONBALL_SLOT_NAME": name,
                         "DRAGONBALL_PEERS": ",".join(self.names),
                         "DRAGONBALL_PARAMS": json.dumps(self.params)},
            network=self.network.name, networking_config={self.network.name: endpoint})
        self.containers[name] = container
        return container

    def start_api(self, params: dict | None = None):
        """The api on the slots' sentinels; a single slot: on store-1 directly."""
        sentinels = [f"{name}:26379" for name in self.names] if len(self.names) > 1 else []
        endpoint = self.client.api.create_endpoint_config(aliases=["api"])
        container = self.client.containers.run(
            self.images["api"], detach=True, name=f"notes-{self.prefix}-api-{RUN_ID}",
            labels=LABELS, volumes=self._mounts("api", "api"),
            environment={"DRAGONBALL_PARAMS": json.dumps(
                {"store_password": PASSWORD, "store_sentinels": sentinels, "store_host": "store-1",
                 **(params or {})})},
            network=self.network.name, networking_config={self.network.name: endpoint},
            ports={"8080/tcp": ("127.0.0.1", None)})
        self.containers["api"] = container
        return container

    def remove(self) -> None:
        for container in self.containers.values():
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
        self.network.remove()

    def wipe_storage(self, name: str) -> None:
        """The slot's disk replaced: its storage/ emptied (root-owned files included)."""
        storage = self.root / name / "storage"
        shutil.rmtree(storage)
        storage.mkdir()

    # -- looking ---------------------------------------------------------------------------
    def logs(self) -> str:
        parts = []
        for key, container in self.containers.items():
            try:
                parts.append(f"--- docker logs of {key} ---\n"
                             f"{container.logs(tail=150).decode(errors='replace')}")
            except docker.errors.NotFound:
                parts.append(f"--- {key}: container gone ---")
        return "\n".join(parts)

    def run_sh(self, key: str, *args: str, stdin: str | None = None):
        return subprocess.run([DOCKER, "exec", "-i", self.containers[key].id, RUN_SH, *args],
                              input=stdin, capture_output=True, text=True, timeout=120)

    def ready(self, key: str) -> bool:
        """`run.sh status` exits 0: a slot's redis has a known role (a replica: in sync) and
        its sentinel answers; the api reaches the primary."""
        try:
            return self.run_sh(key, "status").returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def wait_ready(self, *keys: str, within: float = READY_WITHIN) -> None:
        for key in keys or tuple(self.containers):
            wait_for(lambda: self.ready(key), within,
                     lambda: f"{key} not ready:\n{self.run_sh(key, 'status').stdout}\n"
                             f"{self.logs()}", interval=0.5)

    def redis(self, name: str, *args: str, port: int = 6379) -> str:
        """redis-cli in slot `name`, the password through the environment only."""
        code, out = self.containers[name].exec_run(
            ["redis-cli", "-p", str(port), *args], environment={"REDISCLI_AUTH": PASSWORD})
        assert code == 0, out
        return out.decode().strip()

    def role(self, name: str) -> list[str]:
        return self.redis(name, "ROLE").splitlines()

    def note_ids(self, name: str) -> set[int]:
        """Every note id slot `name` holds (a replica answers only once in sync)."""
        out = self.redis(name, "LRANGE", "notes", "0", "-1")
        lines = out.splitlines()
        assert all(line.startswith("{") for line in lines), f"{name} answered: {out[:300]}"
        return {json.loads(line)["id"] for line in lines}

    def primary(self) -> str:
        """The slot the sentinels name as primary (asked of any slot that answers)."""
        for name, container in self.containers.items():
            if name == "api":
                continue
            try:
                code, out = container.exec_run(
                    ["redis-cli", "-p", "26379", "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "store"],
                    environment={"REDISCLI_AUTH": PASSWORD})
            except docker.errors.APIError:  # a stopped slot
                continue
            if code == 0 and out.decode().strip() and "error" not in out.decode().lower():
                return out.decode().split()[0]
        raise AssertionError(f"no sentinel answers\n{self.logs()}")

    @property
    def api_url(self) -> str:
        api = self.containers["api"]
        api.reload()
        return f"http://127.0.0.1:{api.attrs['NetworkSettings']['Ports']['8080/tcp'][0]['HostPort']}"


def http(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with HTTP.open(request, timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError as e:
        return 0, {"error": str(e)}


class Client(threading.Thread):
    """One client in a loop for `seconds`: POST a note, then GET the list; every answer kept.

    `events` holds (seconds since start, "write"|"read", status, body).
    """

    def __init__(self, url: str, seconds: float, label: str) -> None:
        super().__init__(daemon=True)
        self.url, self.seconds, self.label = url, seconds, label
        self.events: list[tuple[float, str, int, dict]] = []
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def run(self) -> None:
        n = 0
        while self.now() < self.seconds:
            n += 1
            status, body = http("POST", f"{self.url}/api/notes", {"text": f"{self.label} {n}"})
            self.events.append((self.now(), "write", status, body))
            status, body = http("GET", f"{self.url}/api/notes")
            self.events.append((self.now(), "read", status, body))

    # -- what happened ---------------------------------------------------------------------
    def acknowledged(self) -> list[int]:
        return [body["id"] for _, kind, status, body in self.events
                if kind == "write" and status == 201]

    def writes(self) -> list[tuple[float, int, dict]]:
        return [(t, status, body) for t, kind, status, body in self.events if kind == "write"]

    def empty_reads_after_first_write(self) -> int:
        seen_ack, empty = False, 0
        for _, kind, status, body in self.events:
            if kind == "write" and status == 201:
                seen_ack = True
            elif kind == "read" and status == 200 and seen_ack and \
                    (body.get("total") == 0 or not body.get("notes")):
                empty += 1
        return empty

    def refused_window(self, since: float) -> tuple[float, float | None]:
        """(seconds without an acknowledged write around the first failure after `since`:
        from the last acknowledged write before it to the first one after it; when that
        first one came — None if none did). 0 when no write failed."""
        writes = self.writes()
        failed = [t for t, status, _ in writes if t >= since and status != 201]
        if not failed:
            return 0.0, since
        # a write's time is when its answer came: a failure's request started after the
        # acknowledged write before it
        before = [t for t, status, _ in writes if t < failed[0] and status == 201]
        start = before[-1] if before else since
        after = [t for t, status, _ in writes if t > failed[0] and status == 201]
        if not after:
            return self.now() - start, None
        return after[0] - start, after[0]

    def failures(self) -> list[tuple[float, int, str]]:
        return [(round(t, 2), status, str(body.get("error", ""))[:160])
                for t, status, body in self.writes() if status != 201]

"""A killed api backend under load: the web Service's eviction against nginx without failover.

    .venv/bin/python bench/service_eviction.py             # 3 rounds, ~3 minutes on the 2-core VM
    .venv/bin/python bench/service_eviction.py --rounds 5 --keepalive --skip-build

On this machine's engine (no Swarm): the notes app (tests/notes_app.py) with three api
containers sharing the network alias `api` behind the web module as shipped (its rendered
config, its default resolve_interval), and, in the same rounds, a **baseline**: a plain
`nginx` from the same web image with a hand-written config proxying to the same three api
addresses round-robin, identical except `proxy_next_upstream off` (no retry on the next
backend). Each round:

1. wrk (-t2 -c16, 10 s, GET /api/info, one connection per request unless --keepalive) runs
   against the web and the baseline at once, on their ports published on 127.0.0.1 only;
   3 s in, one api container is `docker kill`ed: the same kill for both;
2. eviction: kill -> its address gone from the web's /run/dragonball-service/state.json (polled every
   0.1 s through docker exec);
3. replacement by the resolve interval: a new api container with the alias `api`, `docker run`
   returned -> its address in the web's upstream state (the watcher's next round);
4. replacement by notification: resolve_interval 0, one more api container, `docker run`
   returned -> `run.sh notify -` returned with its address in the state; then that extra one is
   removed and the interval restored.

It prints each round and the medians, and the baseline's failed requests against the web's.
Everything it starts carries the test label and is removed at the end, on Ctrl-C and on failure.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import docker  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from notes_app import (DOCKER, NotesApp, address, config_change, http, image,  # noqa: E402
                       notification, parse_wrk, run_sh, start_api, upstream, web_state)
from support import LABELS, RUN_ID, wait_for  # noqa: E402

console = Console(highlight=False)
WRK_SECONDS, WRK_CONNECTIONS, KILL_AFTER, POLL = 10, 16, 3, 0.1
SHIPPED_INTERVAL = json.loads(
    (ROOT / "examples/web/defaults.json").read_text())["resolve_interval"]
BASELINE_CONF = "/etc/nginx/baseline.conf"
# The web module's upstream and proxy settings (base_images/service/service/module/service_conf.py:
# max_fails=1 fail_timeout=5s in a shared zone, connect 2 s, 2 workers, every request logged),
# so that the one difference measured is proxy_next_upstream.
BASELINE = """daemon off;
user www-data;
worker_processes 2;
pid /run/nginx-baseline.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log /dev/stdout combined;
    upstream notes_api {{
        zone notes_api 64k;
{servers}
    }}
    server {{
        listen 8080;
        location /api/ {{
            proxy_pass http://notes_api;
            proxy_next_upstream off;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""


class Lab:
    """The notes app and the baseline nginx on a network of their own; `close` removes all."""

    def __init__(self, client, folder: pathlib.Path, interval: int) -> None:
        self.client, self.folder, self.interval = client, folder, interval
        self.network = client.networks.create(f"notes-bench-{RUN_ID}", driver="bridge",
                                              labels=LABELS)
        self.app = NotesApp(client, self.network, folder)
        self.apis: list[str] = []  # keys of the api containers meant to serve, oldest first
        self.baseline = None
        self.serial = 0

    def start(self) -> None:
        self.app.run("store")
        self.app.wait_healthy("store")
        for _ in range(3):
            self.add_api()
        self.app.run("web", params={"resolve_interval": self.interval})
        self.app.wait_healthy("web")
        self.wait_upstream()

    def add_api(self) -> str:
        self.serial += 1
        key = f"api-{self.serial}"
        start_api(self.app, key)
        self.apis.append(key)
        return key

    def wait_upstream(self) -> None:
        want = {address(self.app, key) for key in self.apis}
        wait_for(lambda: upstream(self.app) == want, self.interval + 30,
                 lambda: f"want {want}, state {web_state(self.app)}", interval=POLL)

    def start_baseline(self) -> str:
        """A plain nginx from the web image on the current three api addresses; its URL."""
        servers = "\n".join(f"        server {address(self.app, key)} max_fails=1 fail_timeout=5s;"
                            for key in self.apis)
        conf = self.folder / "baseline.conf"
        conf.write_text(BASELINE.format(servers=servers))
        self.baseline = self.client.containers.run(
            image("web"), entrypoint=["nginx", "-c", BASELINE_CONF], command=[], detach=True,
            name=f"notes-baseline-{self.serial}-{RUN_ID}", labels=LABELS,
            volumes={str(conf): {"bind": BASELINE_CONF, "mode": "ro"}},
            network=self.network.name, ports={"8080/tcp": ("127.0.0.1", None)})
        self.baseline.reload()
        url = f"http://127.0.0.1:{self.baseline.ports['8080/tcp'][0]['HostPort']}"
        wait_for(lambda: answers(url), 15, lambda: self.baseline.logs().decode(), interval=POLL)
        return url

    def stop_baseline(self) -> None:
        if self.baseline is not None:
            remove(self.baseline)
            self.baseline = None

    def close(self) -> None:
        self.stop_baseline()
        for container in self.app.containers.values():
            remove(container)
        self.network.remove()


def remove(container) -> None:
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass


def answers(url: str) -> bool:
    try:
        return http("GET", f"{url}/api/info")[0] == 200
    except OSError:
        return False


def wrk(url: str, keepalive: bool) -> subprocess.Popen:
    close = [] if keepalive else ["-H", "Connection: close"]
    return subprocess.Popen(["wrk", "-t2", f"-c{WRK_CONNECTIONS}", f"-d{WRK_SECONDS}s",
                             "--timeout", "5s", *close, f"{url}/api/info"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(load: subprocess.Popen) -> dict:
    output, _ = load.communicate(timeout=WRK_SECONDS + 30)
    result = parse_wrk(output)
    return {**result, "failed": result["non_2xx"] + result["socket_errors"]}


def kill_under_load(lab: Lab, keepalive: bool) -> dict:
    """Both fronts loaded at once, the oldest api killed KILL_AFTER s in: wrk's numbers, eviction."""
    base_url = lab.start_baseline()
    victim = lab.apis.pop(0)
    gone = address(lab.app, victim)
    loads = {"web": wrk(lab.app.web_url, keepalive), "baseline": wrk(base_url, keepalive)}
    try:
        time.sleep(KILL_AFTER)
        subprocess.run([DOCKER, "kill", lab.app.containers[victim].id], check=True,
                       capture_output=True)
        killed = time.monotonic()
        wait_for(lambda: gone not in upstream(lab.app), lab.interval + 15,
                 lambda: str(web_state(lab.app)), interval=POLL)
        eviction = time.monotonic() - killed
        results = {front: finish(load) for front, load in loads.items()}
    finally:
        for load in loads.values():
            if load.poll() is None:
                load.kill()
    console.print(f"  baseline's failed answers by status: "
                  f"{failed_statuses(lab.baseline.logs().decode()) or 'none'}")
    lab.stop_baseline()
    remove(lab.app.containers.pop(victim))
    return {**results, "eviction": eviction}


def failed_statuses(access_log: str) -> dict:
    """Status -> count of the non-2xx answers in nginx's combined access log."""
    codes = collections.Counter(re.findall(r'" (\d{3}) ', access_log))
    return {code: n for code, n in sorted(codes.items()) if not code.startswith("2")}


def pickup_by_interval(lab: Lab) -> float:
    """The replacement: `docker run` returned -> its address in the web's upstream state."""
    lab.serial += 1
    key = f"api-{lab.serial}"
    lab.app.run("api", key=key)
    began = time.monotonic()
    new = address(lab.app, key)
    wait_for(lambda: new in upstream(lab.app), lab.interval + 15, interval=POLL)
    took = time.monotonic() - began
    lab.app.wait_healthy(key)
    lab.apis.append(key)
    return took


def pickup_by_notify(lab: Lab, seq: int) -> float:
    """One more api with the watcher off: `docker run` returned -> `run.sh notify -` returned
    with its address in the state. The extra one is removed again and the interval restored."""
    web = lab.app.containers["web"]
    ensure(config_change(web, {"resolve_interval": 0}), "config_change resolve_interval 0")
    lab.serial += 1
    key = f"api-{lab.serial}"
    lab.app.run("api", key=key)
    began = time.monotonic()
    new = address(lab.app, key)
    notify(web, seq)
    wait_for(lambda: new in upstream(lab.app), 15, interval=POLL)
    took = time.monotonic() - began
    remove(lab.app.containers.pop(key))
    notify(web, seq + 1)
    ensure(config_change(web, {"resolve_interval": lab.interval}), "config_change restore")
    lab.wait_upstream()
    return took


def notify(web, seq: int) -> None:
    done = run_sh(web, "notify", "-", "--json", stdin=json.dumps(notification(seq)))
    if done.returncode != 0:
        raise RuntimeError(f"run.sh notify failed ({done.returncode}): {done.stdout}{done.stderr}")


def ensure(outcome: tuple[int, dict], what: str) -> None:
    code, report = outcome
    if code != 0:
        raise RuntimeError(f"{what} failed ({code}): {report}")


def one_round(lab: Lab, number: int, keepalive: bool) -> dict:
    console.print(f"round {number}: wrk on both fronts, {lab.apis[0]} killed {KILL_AFTER} s in")
    measured = kill_under_load(lab, keepalive)
    measured["interval"] = pickup_by_interval(lab)
    measured["notify"] = pickup_by_notify(lab, seq=2 * number - 1)
    return measured


def ratio(baseline: float, web: float) -> str:
    if web == 0:
        return "both 0" if baseline == 0 else f"{baseline:g} against 0"
    return f"{baseline / web:.1f}×"


def medians(rounds: list[dict]) -> dict:
    middle = {key: statistics.median(r[key] for r in rounds)
              for key in ("eviction", "interval", "notify")}
    for front in ("web", "baseline"):
        middle[front] = {key: statistics.median(r[front][key] for r in rounds)
                         for key in rounds[0][front]}
    return middle


def requests_table(rows: list[tuple[str, dict]]) -> Table:
    table = Table(title="wrk during the kill")
    for column in ("round", "front", "requests", "non-2xx", "socket errors", "failed"):
        table.add_column(column, justify="right")
    for label, r in rows:
        for front in ("web", "baseline"):
            w = r[front]
            table.add_row(label, front, *(f"{w[k]:g}" for k in
                                          ("requests", "non_2xx", "socket_errors", "failed")))
    return table


def times_table(rows: list[tuple[str, dict]], interval: int) -> Table:
    table = Table(title="web: seconds until its upstream state shows it")
    for column in ("round", "killed one gone", f"new one, by the {interval} s interval",
                   "new one, by notify"):
        table.add_column(column, justify="right")
    for label, r in rows:
        table.add_row(label, *(f"{r[k]:.2f}" for k in ("eviction", "interval", "notify")))
    return table


def report(rounds: list[dict], interval: int, keepalive: bool) -> None:
    middle = medians(rounds)
    rows = [(str(i), r) for i, r in enumerate(rounds, 1)] + [("median", middle)]
    console.print(f"one of 3 api backends killed {KILL_AFTER} s into wrk -t2 "
                  f"-c{WRK_CONNECTIONS} {WRK_SECONDS} s on each front "
                  f"({'keep-alive' if keepalive else 'Connection: close'}); "
                  f"web = the module as shipped, baseline = nginx with proxy_next_upstream off")
    console.print(requests_table(rows))
    console.print(times_table(rows, interval))
    web, base = middle["web"]["failed"], middle["baseline"]["failed"]
    console.print(f"failed requests (median): baseline {base:g}, web {web:g}: "
                  f"{ratio(base, web)}")
    console.print(f"new backend (median): by notify {middle['notify']:.2f} s, by the "
                  f"{interval} s interval {middle['interval']:.2f} s "
                  f"(interval/notify {middle['interval'] / middle['notify']:.1f})")


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--resolve-interval", type=int, default=SHIPPED_INTERVAL,
                        help=f"the web's resolve_interval (default: the shipped {SHIPPED_INTERVAL})")
    parser.add_argument("--keepalive", action="store_true",
                        help="keep-alive clients (default: a connection per request)")
    parser.add_argument("--skip-build", action="store_true", help="use the images already built")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, interrupted)
    if not args.skip_build:
        console.print("build.py examples (cached) ...")
        subprocess.run([sys.executable, "build.py", "examples"], check=True, cwd=ROOT,
                       capture_output=True)
    client = docker.DockerClient(base_url="unix:///var/run/docker.sock", version="1.41")
    folder = pathlib.Path(tempfile.mkdtemp(prefix="db-bench-eviction-"))
    lab = None
    try:
        lab = Lab(client, folder, args.resolve_interval)
        console.print("starting store, 3 api, web ...")
        lab.start()
        rounds = [one_round(lab, n, args.keepalive) for n in range(1, args.rounds + 1)]
        report(rounds, args.resolve_interval, args.keepalive)
        return 0
    except KeyboardInterrupt:
        console.print("interrupted: removing what the bench started")
        return 130
    except (docker.errors.DockerException, subprocess.CalledProcessError, RuntimeError,
            AssertionError) as e:
        console.print(f"[red]bench failed:[/red] {e}")
        if lab is not None:
            console.print(lab.app.logs()[-4000:], markup=False)
        return 1
    finally:
        if lab is not None:
            lab.close()
        shutil.rmtree(folder, ignore_errors=True)
        client.close()


if __name__ == "__main__":
    sys.exit(main())

"""The notes app (examples/notes.app.yaml) on a 3-server cluster installed from the real
.bin (the `installed_cluster` fixture: s1 portal, s2 and s3 devices), driven by the
installed `dragonball` on the portal, as an implementer would (docs/orchestrator.md):

    web (Service, nginx, on s1, port 8080) -> api (Backend, 3 tasks) -> store (redis, on s2)

- specs with a cycle or an unknown backend are refused with their lines; nothing deployed;
- apply starts leaves first: the actions' own log lines show the store running before
  the api's first start line, and every api task running before the web's;
- requests through web reach every api task; a parameter set on the portal reaches every
  task (config_change) and each task says so;
- an api task killed under load (wrk, on this machine, into the lab network) costs no
  failed request; the eviction time is measured; web is notified of the api's change;
(test_server_lost.py, last: a server lost, its tasks move, web keeps answering.)

Traffic stays on this machine and the lab's own network.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from support import wait_for
from tests.e2e.apps import API_REPLICAS, db, get, lab_spec, put_spec, task_containers

def app_services(cluster) -> list[str]:
    out = cluster.docker("s1", "service", "ls", "--filter", "label=io.dragonball.app",
                         "--format", "{{.Name}}").stdout
    return sorted(out.split())


def snapshot(cluster) -> dict:
    """What an apply would change: the app's services (with their versions), networks and
    the nodes' labels."""
    names = app_services(cluster)
    versions = cluster.docker("s1", "service", "inspect", "--format",
                              "{{.Spec.Name}} {{.Version.Index}}", *names).stdout if names else ""
    networks = cluster.docker("s1", "network", "ls", "--format", "{{.Name}}").stdout
    labels = cluster.docker("s1", "node", "inspect", "--format", "{{.Spec.Labels}}",
                            "s1", "s2", "s3").stdout
    return {"services": versions.split("\n"), "networks": sorted(networks.split()),
            "labels": labels}


# --- refused specs deploy nothing (first: nothing runs yet) ------------------------------

def test_a_cycle_is_refused_with_its_path_and_nothing_is_deployed(installed_cluster):
    before = snapshot(installed_cluster)
    spec = lab_spec()
    spec["services"]["store"]["depends_on"] = ["web"]
    path = put_spec(installed_cluster, spec, "/root/cycle.app.yaml")
    run = db(installed_cluster, "apply", path, check=False)
    assert run.returncode == 2, run.stdout + run.stderr
    text = run.stdout + run.stderr
    assert "dependency cycle" in text and re.search(r"cycle\.app\.yaml:\d+", text), text
    assert re.search(r"(web -> api -> store -> web|store -> web -> api -> store|"
                     r"api -> store -> web -> api)", text), text
    assert snapshot(installed_cluster) == before


def test_an_unknown_backend_and_image_are_refused_and_nothing_is_deployed(installed_cluster):
    before = snapshot(installed_cluster)
    spec = lab_spec()
    spec["services"]["web"]["backends"] = ["apii"]
    spec["services"]["store"]["image"] = "notes/store:9.9.9"
    path = put_spec(installed_cluster, spec, "/root/missing.app.yaml")
    run = db(installed_cluster, "apply", path, "--json", check=False)
    assert run.returncode == 2, run.stdout + run.stderr
    problems = json.loads(run.stdout)["problems"]
    messages = " | ".join(p["message"] for p in problems)
    assert "unknown service 'apii'" in messages and "not in the portal registry" in messages
    assert all(p["line"] for p in problems), problems
    assert snapshot(installed_cluster) == before


# --- apply ---------------------------------------------------------------------------------

def start_lines(cluster, service: str) -> dict:
    """task -> (first `[start/` line time, `is running` line time) from the actions' logs."""
    out = cluster.docker("s1", "service", "logs", "--timestamps", "--no-task-ids",
                         f"notes_{service}").stdout
    found: dict = {}
    for line in out.splitlines():
        match = re.match(r"(\S+)\s+(\S+)\s+\|\s(.*)$", line)
        if not match:
            continue
        stamp, task, text = match.groups()
        first, running = found.get(task, (None, None))
        if text.startswith("[start/") and first is None:
            first = stamp
        if text.endswith("is running") and running is None:
            running = stamp
        found[task] = (first, running)
    return found


def test_apply_starts_leaves_first_as_the_actions_logs_show(installed_cluster, applied):
    events = [(e["service"], e["state"]) for e in applied["events"]]
    order = [s for s, state in events if state == "healthy"]
    assert order == ["store-1", "api", "web"], events   # the store's storage: its slot 1
    assert events.index(("store-1", "healthy")) < events.index(("api", "starting"))
    assert events.index(("api", "healthy")) < events.index(("web", "starting"))

    logs = {s: start_lines(installed_cluster, s) for s in ("store-1", "api", "web")}
    assert len(logs["api"]) == API_REPLICAS, logs
    for service in logs:
        for task, (first, running) in logs[service].items():
            assert first and running, (service, task, logs[service])
    store_running = max(r for _, r in logs["store-1"].values())
    api_first = min(f for f, _ in logs["api"].values())
    api_running = max(r for _, r in logs["api"].values())
    web_first = min(f for f, _ in logs["web"].values())
    assert store_running < api_first < api_running < web_first, logs


def test_services_report_every_task_healthy_across_servers(installed_cluster, applied):
    rows = json.loads(db(installed_cluster, "services", "--json").stdout)["services"]
    by_name = {r["service"]: r for r in rows}
    assert {n: (r["state"], r["healthy"]) for n, r in by_name.items()} == {
        "store-1": ("healthy", 1), "api": ("healthy", API_REPLICAS), "web": ("healthy", 1)}
    assert {t["server"] for t in by_name["web"]["tasks"]} == {"s1"}
    assert {t["server"] for t in by_name["store-1"]["tasks"]} == {"s2"}
    assert (by_name["store-1"]["server"], by_name["store-1"]["waiting"]) == ("s2", None)


def served_by(url: str, want: int, tries: int = 60) -> dict:
    """hostname -> its /api/info answer, until `want` hosts answered (or tries ran out)."""
    seen: dict = {}
    for _ in range(tries):
        status, body = get(f"{url}/api/info")
        if status == 200 and body:
            seen[body["hostname"]] = body
        if len(seen) >= want:
            break
    return seen


def test_web_balances_over_every_api_task(applied, web_url):
    seen = served_by(web_url, API_REPLICAS)
    assert sorted(seen) == [f"api-{i}" for i in range(1, API_REPLICAS + 1)], seen


def test_a_parameter_set_on_the_portal_reaches_every_task(installed_cluster, applied, web_url):
    run = db(installed_cluster, "params", "set", "api", "greeting=Hello from the lab",
             "--json", check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    tasks = json.loads(run.stdout)["tasks"]
    assert len(tasks) == API_REPLICAS and all(t["ok"] for t in tasks), tasks
    assert len({t["server"] for t in tasks}) >= 2, tasks  # really across servers
    seen = served_by(web_url, API_REPLICAS)
    assert {h: b["greeting"] for h, b in seen.items()} == {
        f"api-{i}": "Hello from the lab" for i in range(1, API_REPLICAS + 1)}
    shown = json.loads(db(installed_cluster, "params", "get", "api", "--json").stdout)
    assert shown["parameters"]["greeting"]["value"] == "Hello from the lab"
    assert shown["parameters"]["store_password"]["secret"] is True


def test_a_wrong_parameter_type_is_refused_and_changes_nothing(installed_cluster, applied):
    before = json.loads(db(installed_cluster, "params", "get", "api", "--json").stdout)
    run = db(installed_cluster, "params", "set", "api", "listen_port=eighty", check=False)
    assert run.returncode == 2 and "listen_port is an int" in run.stdout + run.stderr
    after = json.loads(db(installed_cluster, "params", "get", "api", "--json").stdout)
    assert after == before


# --- a backend killed under load --------------------------------------------------------------

def container_ip(cluster, server: str, container: str) -> str:
    return cluster.docker(server, "inspect", "--format",
                          '{{(index .NetworkSettings.Networks "notes_net").IPAddress}}',
                          container).stdout.strip()


def web_upstreams(cluster) -> list[str]:
    (server, container), = task_containers(cluster, "web")
    state = cluster.docker(server, "exec", container, "cat", "/run/dragonball-service/state.json",
                           check=False).stdout
    try:
        return [s["server"].rsplit(":", 1)[0] for s in json.loads(state)["servers"]]
    except (ValueError, KeyError):
        return []


def wrk(url: str, seconds: int) -> subprocess.Popen:
    """16 clients, each request on a new connection (as test_service_lb.py, and why: when
    web drops the killed task it reloads nginx, whose old workers close their idle
    keep-alive connections; a client that sends on one at that instant sees it closed and
    must send again, which HTTP clients do for a GET and wrk does not: bench/README.md,
    service_eviction.py --keepalive). A request fails when it gets no 2xx within 5 s (those
    sent to the killed task before its eviction wait nginx's 1 s connect timeout)."""
    return subprocess.Popen(["wrk", "-t2", "-c16", f"-d{seconds}s", "--timeout", "5s",
                             "-H", "Connection: close", "--latency", url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_counts(output: str) -> dict:
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    latency = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", output)
    return {"requests": requests, "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            "max_latency": latency.group(1) if latency else "?",
            "socket_errors": sum(map(int, errors.groups())) if errors else 0}


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed "
                    "(scripts/setup.sh installs it)")
def test_an_api_task_killed_under_load_costs_no_failed_request(installed_cluster, applied,
                                                               web_url):
    cluster = installed_cluster
    victims = [(s, c) for s, c in task_containers(cluster, "api") if s != "s1"]
    server, container = victims[0]
    address = container_ip(cluster, server, container)
    assert address in web_upstreams(cluster)
    load = wrk(f"{web_url}/api/info", 12)
    time.sleep(4)
    killed = time.monotonic()
    cluster.docker(server, "kill", container)
    evicted = wait_for(lambda: address not in web_upstreams(cluster), timeout=60,
                       interval=0.2)
    eviction_s = time.monotonic() - killed
    output, _ = load.communicate(timeout=60)
    counts = wrk_counts(output)
    print(f"\nbackend kill under load: {counts['requests']} requests, {counts['non_2xx']} "
          f"non-2xx, {counts['socket_errors']} socket errors, slowest {counts['max_latency']}; "
          f"the killed task left web's "
          f"upstreams {eviction_s:.1f} s after the kill")
    assert evicted
    assert counts["requests"] > 100, output
    assert counts["non_2xx"] == 0 and counts["socket_errors"] == 0, output
    # Swarm replaces the task; the portal tells web (api's dependent) of each change
    assert wait_for(lambda: _healthy(cluster, "api"), timeout=120)


def _healthy(cluster, service: str) -> bool:
    rows = json.loads(db(cluster, "services", "--json").stdout)["services"]
    row = next(r for r in rows if r["service"] == service)
    return row["healthy"] == row["desired"] and row["desired"] > 0


def test_web_is_told_when_the_api_changes_state(installed_cluster, applied):
    """After the kill above: web (api's dependent) got api's changes, in order, and its
    config_change ran for them (DRAGONBALL_EVENT=notify)."""
    cluster = installed_cluster

    def delivered():
        found = json.loads(db(cluster, "notifications", "--json").stdout)["notifications"]
        return [n for n in found if n["to"] == "web" and n["delivered"]]
    notes = wait_for(delivered, timeout=120, interval=2)
    assert all(n["payload"]["service"] == "api" for n in notes), notes
    events = [n["payload"]["event"] for n in sorted(notes, key=lambda n: n["seq"])]
    assert "unhealthy" in events or "healthy" in events, events
    seqs = sorted(n["seq"] for n in notes)
    assert seqs == list(range(1, len(seqs) + 1)), seqs   # in order, none skipped
    (server, container), = task_containers(cluster, "web")
    out = cluster.docker(server, "logs", container, check=False)
    assert "[notify/" in out.stdout + out.stderr



"""The portal's web UI in a real headless Chromium (Debian's, driven by Playwright) against
the lab cluster installed from the real .bin with the notes app applied (the
`installed_cluster` and `applied` fixtures): `https://<s1's lab address>:8443`, from this
machine, over the lab network only.

- log in; the Dashboard's services tree is all healthy; the Devices page lists s1-s3;
- the Services page: store, api, web healthy with their tasks per server;
- a parameter edit of api through its form: each task's config_change result is ok, then
  web (web_url/api/info) answers the new greeting from every api task;
- the log tail of api shows each task's lines;
- a placement change on the Placement page (web's replicas 1 -> 0, on s1 still) shown as a
  plan, applied only after "Apply this plan": `dragonball services --json` on the portal
  reflects it;
- Add device: a one-time code and the exact command (no server joins with it).

What it changes is put back at the end, even when a test fails: the greeting unset, the lab
spec applied again (tests/e2e/test_app_cluster.py runs after this module and expects the
app as `applied` left it). The placement change is web's and not api's on purpose: scaling
api down and up again would leave an api task that started after web, and
test_app_cluster's leaves-first check reads the order of the start lines in the services'
logs; a web task started anew still starts after every api task.

TLS: the browser checks the portal's certificate against the cluster CA, copied from s1's
/etc/dragonball/ca.crt: Chromium runs with HOME set to a temporary folder whose NSS
database (`~/.pki/nssdb`, made with `certutil` from libnss3-tools) trusts that CA only, and
`ignore_https_errors` is off. Without certutil the chain is checked with Python's `ssl` and
the CA (the certificate must name s1's address), and the browser ignores certificate
errors; the test prints which it did. Python's check runs in both cases.

Screenshots go to docs/screenshots/cluster-*.png only when missing or with
DRAGONBALL_SCREENSHOTS=1 (so a run leaves the tree clean).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess

import pytest

from dragonball import pki
from support import wait_for
from tests.browser import CHROMIUM, CHROMIUM_ARGS, NEEDS_CHROMIUM, shot
from tests.e2e.apps import API_REPLICAS, SPEC, db, get
from tests.lab.install import ADMIN_PASSWORD

GREETING = "Hello from the portal's form"

pytestmark = [
    NEEDS_CHROMIUM,
]
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is missing: pip install -e '.[dev]'")


def services(cluster) -> dict:
    rows = json.loads(db(cluster, "services", "--json").stdout)["services"]
    return {r["service"]: r for r in rows}


# --- the portal, its CA, a browser that trusts it ------------------------------------------

@pytest.fixture(scope="module")
def portal(installed_cluster, tmp_path_factory) -> tuple[str, str]:
    """(URL, CA file): the CA copied from s1, the certificate chain checked with `ssl`."""
    address = installed_cluster.lab.ip("s1")
    ca = tmp_path_factory.mktemp("cluster-ca") / "ca.crt"
    ca.write_text(installed_cluster.lab.exec("s1", ["cat", "/etc/dragonball/ca.crt"],
                                             check=True).stdout)
    context = ssl.create_default_context(cafile=str(ca))  # the CA only, hostname checked
    with socket.create_connection((address, 8443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=address) as tls:
            assert tls.version(), "no TLS session with the portal"
    return f"https://{address}:8443", str(ca)


def trusting_home(ca: str, folder) -> str | None:
    """A HOME whose NSS database trusts `ca` (what Chromium reads on Linux); None without
    certutil."""
    if shutil.which("certutil") is None:
        return None
    nssdb = folder / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "dragonball-cluster-ca",
                    "-t", "C,,", "-i", ca], check=True)
    return str(folder)


@pytest.fixture(scope="module")
def page(portal, applied, tmp_path_factory):
    """A logged-in tab, shared by the module's tests (one session, like a person's)."""
    url, ca = portal
    home = trusting_home(ca, tmp_path_factory.mktemp("chromium-home"))
    print("\nbrowser TLS: " + ("the cluster CA in an NSS database" if home
                              else "errors ignored (no certutil); the chain checked with ssl"))
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                    env={**os.environ, "HOME": home} if home else None)
        context = browser.new_context(ignore_https_errors=home is None,
                                      viewport={"width": 1280, "height": 800})
        tab = context.new_page()
        tab.set_default_timeout(20_000)
        tab.problems = []
        tab.on("console", lambda m: tab.problems.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: tab.problems.append(str(e)))
        tab.url_base = url
        try:
            tab.goto(url + "/")
            assert tab.url.startswith(url + "/login")
            tab.fill("input[name=username]", "admin")
            tab.fill("input[name=password]", ADMIN_PASSWORD)
            tab.click("button[type=submit]")
            tab.wait_for_url(url + "/")
            yield tab
        finally:
            browser.close()


@pytest.fixture(scope="module")
def put_back(installed_cluster, applied, web_url):
    """After the module: api's greeting unset, the lab spec applied again, web answering."""
    yield
    cluster = installed_cluster
    shown = json.loads(db(cluster, "params", "get", "api", "--json").stdout)
    if shown["parameters"]["greeting"]["set"]:
        db(cluster, "params", "set", "api", "--unset", "greeting")
    db(cluster, "apply", SPEC)
    rows = services(cluster)
    assert {n: (r["healthy"], r["desired"]) for n, r in rows.items()} == {
        "store-1": (1, 1), "api": (API_REPLICAS, API_REPLICAS), "web": (1, 1)}, rows
    assert {t["server"] for t in rows["web"]["tasks"]} == {"s1"}, rows["web"]
    wait_for(lambda: get(f"{web_url}/api/info")[0] == 200, 60)


def no_problems(tab) -> None:
    problems, tab.problems[:] = list(tab.problems), []
    assert problems == []  # no script error, no CSP violation


def go(tab, path: str) -> None:
    tab.goto(tab.url_base + path)
    assert tab.url == tab.url_base + path


def settled(tab, path: str, ready, timeout: float = 90) -> None:
    """Open `path` again until `ready()` (the cluster may still settle after a change)."""
    def check():
        go(tab, path)
        return ready()
    wait_for(check, timeout, lambda: tab.inner_text("main"), interval=3)


# --- the pages -----------------------------------------------------------------------------

def test_the_dashboard_shows_the_services_tree_all_healthy(page):
    settled(page, "/", lambda: page.locator(
        "#dashboard-services li[data-service^='notes/'] .badge").all_inner_texts() == [
        "healthy"] * 3)
    assert page.inner_text("main h1") == "Dashboard"
    names = page.locator("#dashboard-services li[data-service]")
    assert sorted(names.nth(i).get_attribute("data-service") for i in range(names.count())) == [
        "notes/api", "notes/store-1", "notes/web"]   # the store: its slot
    assert "Every service is healthy." in page.inner_text("#dashboard-services")
    assert "3/3" in page.inner_text("#health")  # agents answering (cpu alerts may show:
    # the lab's servers share this machine's 2 cores)
    shot(page, "cluster-dashboard")
    no_problems(page)


def test_the_devices_page_lists_every_server_with_its_metrics(page):
    go(page, "/devices")
    rows = page.locator("tr[data-hostname]")
    assert sorted(rows.nth(i).get_attribute("data-hostname") for i in range(rows.count())) == [
        "s1", "s2", "s3"]
    for i in range(rows.count()):
        text = rows.nth(i).inner_text()
        assert "joined" in text and "does not answer" not in text, text
    shot(page, "cluster-devices")
    no_problems(page)


def test_the_services_page_shows_each_service_healthy_with_its_tasks_per_server(page):
    settled(page, "/services", lambda: page.locator(
        "#service-tree tr[data-state='healthy']").count() == 3)
    tasks = {}
    for name in ("store-1", "api", "web"):
        row = page.locator(f"#service-tree tr[data-service='{name}']")
        assert row.get_attribute("data-state") == "healthy", row.inner_text()
        labels = row.locator("span.label").all_inner_texts()  # "s2: 1"
        tasks[name] = {s: int(n) for s, n in (label.split(": ") for label in labels)}
    assert tasks["store-1"] == {"s2": 1} and tasks["web"] == {"s1": 1}, tasks
    assert "on s2" in page.inner_text("#service-tree tr[data-service='store-1'] .pinned")
    assert sum(tasks["api"].values()) == API_REPLICAS and len(tasks["api"]) >= 2, tasks
    assert page.inner_text("#service-tree tr[data-service='api'] td:nth-child(4)") == (
        f"{API_REPLICAS}/{API_REPLICAS}")
    shot(page, "cluster-services")
    no_problems(page)


def test_a_parameter_edit_reaches_every_api_task(page, put_back, web_url):
    go(page, "/services?app=notes&service=api")
    page.fill("#p-greeting", GREETING)
    page.click("#apply-params")
    results = page.locator("#params table.results tr[data-task]")
    results.first.wait_for()
    rows = [results.nth(i).inner_text() for i in range(results.count())]
    assert len(rows) == API_REPLICAS, rows
    badges = page.locator("#params table.results .badge").all_inner_texts()
    assert badges == ["ok"] * API_REPLICAS, rows
    assert page.input_value("#p-greeting") == GREETING

    seen: dict = {}
    for _ in range(60):  # web balances over the tasks: ask until each one answered
        status, body = get(f"{web_url}/api/info")
        if status == 200 and body:
            seen[body["hostname"]] = body["greeting"]
        if len(seen) == API_REPLICAS:
            break
    assert seen == {f"api-{i}": GREETING for i in range(1, API_REPLICAS + 1)}, seen
    page.locator("#logs pre.log").first.wait_for()
    shot(page, "cluster-params")
    no_problems(page)


def test_the_log_tail_shows_each_api_task_s_lines(page):
    """After the parameter edit above."""
    go(page, "/services?app=notes&service=api")
    logs = page.locator("#logs pre.log")
    logs.first.wait_for()
    assert page.locator("#logs h3").count() == API_REPLICAS
    assert logs.count() == API_REPLICAS, page.inner_text("#logs")
    for text in logs.all_inner_texts():  # each task's start, then the edit's config_change
        assert "[start/" in text and "config_change" in text, page.inner_text("#logs")
    last = page.inner_text("#last-action")  # the edit above, kept as a `params` job
    assert "params" in last and "done" in last, last
    no_problems(page)


def web_stopped(cluster) -> bool:
    web = services(cluster)["web"]
    return web["desired"] == 0 and web["healthy"] == 0 and not web["tasks"]


def test_a_placement_change_is_planned_then_applied_after_confirmation(page, put_back,
                                                                       installed_cluster):
    cluster = installed_cluster
    go(page, "/placement")
    grid = "#placement-grid tr[data-server='{}'] td[data-service='{}']"
    assert page.inner_text(grid.format("s1", "web")) == "1"
    assert page.inner_text(grid.format("s2", "store-1")) == "1"
    assert sum(int(page.inner_text(grid.format(s, "api")).replace("·", "0"))
               for s in ("s1", "s2", "s3")) == API_REPLICAS
    shot(page, "cluster-placement")

    page.select_option("select[name=service]", "web")
    page.check("input[name='server:s1']")
    page.fill("input[name=replicas]", "0")
    page.click("#plan-placement")
    page.locator("#plan").wait_for()
    steps = {s: page.inner_text(f"#plan tr[data-service='{s}']") for s in ("web", "api",
                                                                          "store-1")}
    assert "change" in steps["web"] and "replicas 1 -> 0" in steps["web"], steps
    assert "keep" in steps["api"] and "keep" in steps["store-1"], steps
    assert services(cluster)["web"]["desired"] == 1  # nothing changed before the confirmation
    shot(page, "cluster-placement-plan")

    page.click("#confirm-placement")
    page.locator("#job .badge.job-done, #job .badge.job-failed").wait_for(timeout=300_000)
    assert page.inner_text("#job .badge") == "done", page.inner_text("#job")
    wait_for(lambda: web_stopped(cluster), 60, lambda: services(cluster)["web"])
    assert services(cluster)["api"]["healthy"] == API_REPLICAS
    go(page, "/placement")
    assert page.inner_text(grid.format("s1", "web")) == "·"
    assert "0 replicas" in page.inner_text("#placement-grid tr.totals")
    no_problems(page)


def test_add_device_shows_a_code_and_the_command(page, portal, installed_cluster):
    url, ca = portal
    go(page, "/devices")
    page.select_option("select[name=ttl]", "1h")
    page.click("#add-device")
    code = page.inner_text("#enrollment-code")
    with open(ca, "rb") as f:
        fingerprint = "SHA256:" + pki.fingerprint(f.read())
    name = os.path.basename(installed_cluster.local_bin)
    # every manager serves the portal (issue 12): the command names them all, the first first
    portals = ",".join(installed_cluster.lab.ip(s) for s in ("s1", "s2", "s3"))
    assert page.inner_text("#enrollment-command") == (     # the code is asked, never in ps
        f"sudo ./{name} install --role device --portal {portals} "
        f"--ca-fingerprint {fingerprint}")
    assert code in page.inner_text("#enrollment")
    no_problems(page)

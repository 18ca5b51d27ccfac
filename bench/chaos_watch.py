"""What `dragonball status` and the portal's dashboard said while a chaos fault ran
(bench/chaos.py): the texts each gives, condensed, and `Watch`, which polls both every few
seconds from the lab's portal and this machine. Split from bench/chaos.py."""

from __future__ import annotations

import html
import json
import pathlib
import re
import tempfile
import threading
import time

import requests
from rich.console import Console

from tests.lab import LabError, faults
from tests.lab.install import ADMIN_PASSWORD, RUNTIMES, LabCluster

console = Console(highlight=False, width=160)
PORTAL_PORT = 8443


def status_text(document: dict) -> str:
    """`dragonball status --json` in a few words: devices by state; services not healthy."""
    devices = document.get("devices", {})
    parts = [f"{devices.get('total', '?')} devices " + ", ".join(
        f"{n} {s}" for s, n in devices.get("by_state", {}).items())]
    for app, found in document.get("apps", {}).items():
        bad = [f"{r['service']} {r['state']} {r['healthy']}/{r['desired']}"
               for r in found.get("not_healthy", [])]
        parts.append(f"{app}: " + ("; ".join(bad) if bad else "all healthy"))
    if document.get("note"):
        parts.append(document["note"][:80])
    return " | ".join(parts)


def status_answer(returncode: int, stdout: str, stderr: str) -> str:
    """What one `dragonball status --json` run said, in a few words: the summary, or its
    error (the JSON document's message: the portal cannot be reached, say)."""
    try:
        document = json.loads(stdout)
    except ValueError:
        document = None
    if returncode == 0 and isinstance(document, dict):
        return status_text(document)
    if returncode in (137, -9):
        return "no answer: the CLI was killed (its server lost power)"
    if isinstance(document, dict) and document.get("error"):
        return f"exit {returncode}: {str(document['error'])[:100]}"
    lines = (stderr or stdout).strip().splitlines()
    return f"exit {returncode}: {(lines or ['no output'])[0][:100]}"


_ALERT = re.compile(r'<li class="(\w+)"><strong>(.*?)</strong>:\s*(.*?)</li>', re.S)
_BUSY = re.compile(r" \d+% busy")
_ANSWERING = re.compile(r'<span class="big">(\d+/\d+)</span>\s*agents answering')
_SERVICE = re.compile(r'data-service="[^"]*/([^"]+)".*?badge state-[\w-]+">([\w-]+)</span>\s*'
                      r'<span class="muted small">(\d+/\d+)', re.S)


def _plain(fragment: str) -> str:
    return html.unescape(re.sub("<[^>]+>", "", fragment))


def dashboard_text(health: str, services_html: str) -> str:
    """The dashboard's health and services parts in a few words: agents answering,
    services not healthy, and the alerts."""
    parts = []
    answering = _ANSWERING.search(health)
    if answering:
        parts.append(f"{answering.group(1)} agents answering")
    unwell = [f"{n} {s} {c}" for n, s, c in _SERVICE.findall(services_html) if s != "healthy"]
    parts.append("services: " + ("; ".join(unwell) if unwell else "all healthy"))
    alerts = [f"{_plain(s)}: {_plain(t)}" for _, s, t in _ALERT.findall(health + services_html)]
    # "cpu 97% busy" -> "cpu busy": the figure moves every sample, the alert does not
    parts += ["alert " + _BUSY.sub(" busy", a.strip())[:90] for a in alerts[:6]]
    return " | ".join(parts)


def condense(texts: list[str]) -> str:
    """Samples in order (each 'part | part | ...') as one line for the table: the parts
    every sample shares once ('throughout: ...'), then what changed, sample by sample."""
    if not texts:
        return "-"
    split = [[p.strip() for p in t.split(" | ")] for t in texts]
    common = [p for p in split[0] if all(p in parts for parts in split[1:])]
    changes: list[str] = []
    for parts in split:
        text = "; ".join(p for p in parts if p not in common) or "(as throughout)"
        if not changes or changes[-1] != text:
            changes.append(text)
    head = f"throughout: {'; '.join(common)}" if common else ""
    body = " → ".join(changes) if len(split) > 1 or not common else ""
    return " ‖ ".join(filter(None, [head, body]))


class Watch:
    """Polls `dragonball status --json` on the portal and the dashboard's two parts over
    HTTPS (from this machine, to the lab's address, a Bearer token, the cluster's CA)
    every `every` s; keeps (time, what, text) samples."""

    def __init__(self, cluster: LabCluster, every: float) -> None:
        self.cluster, self.every = cluster, every
        self.samples: list[tuple[float, str, str]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="dragonball-chaos-ca-")
        self._session: requests.Session | None = None
        self.status_servers: list[str] = []

    def prepare(self) -> None:
        """Log in on every server that has the runtime; fetch the CA and a token."""
        lab, cluster = self.cluster.lab, self.cluster
        for server in lab.servers:
            if any(lab.exec(server, ["test", "-x", p]).ok for p in RUNTIMES):
                try:
                    cluster.login(server)
                    self.status_servers.append(server)
                except LabError as e:
                    console.print(f"[yellow]no dragonball login on {server}:[/yellow] {e}")
        ca = pathlib.Path(self._folder.name) / "ca.crt"
        ca.write_text(lab.exec(cluster.portal, ["cat", "/etc/dragonball/ca.crt"],
                               check=True).stdout)
        session = requests.Session()
        session.trust_env = False           # never the machine's CA bundle or a proxy
        session.verify = str(ca)
        token = session.post(f"{self._portal()}/api/v1/tokens", json={},
                             auth=("admin", ADMIN_PASSWORD), timeout=20)
        token.raise_for_status()
        session.headers["Authorization"] = f"Bearer {token.json()['token']}"
        self._session = session

    def _portal(self, server: str | None = None) -> str:
        return f"https://{self.cluster.lab.ip(server or self.cluster.portal)}:{PORTAL_PORT}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(60)
        self._folder.cleanup()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.samples.append((began, "status", self.status()))
            self.samples.append((began, "dashboard", self.dashboard()))
            self._stop.wait(max(0.0, self.every - (time.monotonic() - began)))

    def status(self) -> str:
        lab = self.cluster.lab
        for server in self.status_servers:
            if not faults.running(lab, server):
                continue
            try:
                run = self.cluster.dragonball("status", "--json", server=server, check=False,
                                              timeout=30)
            except LabError:
                return f"no answer within 30 s (on {server})"
            return status_answer(run.returncode, run.stdout, run.stderr)
        return "no server with a login is running"

    def dashboard(self) -> str:
        if self._session is None:
            return "-"
        try:
            parts = [self._session.get(f"{self._portal()}{path}", timeout=10)
                     for path in ("/dashboard/health", "/dashboard/services")]
        except requests.RequestException as e:
            return f"unreachable ({type(e).__name__})"
        if any(p.status_code != 200 for p in parts):
            return "HTTP " + "/".join(str(p.status_code) for p in parts)
        return dashboard_text(parts[0].text, parts[1].text)

    def between(self, start: float, end: float, what: str) -> list[str]:
        """The distinct texts of `what` seen in [start, end], in order of first sight."""
        seen: list[str] = []
        for t, kind, text in list(self.samples):
            if kind == what and start <= t <= end and (not seen or seen[-1] != text):
                seen.append(text)
        return seen


# --- one scenario -----------------------------------------------------------------------------

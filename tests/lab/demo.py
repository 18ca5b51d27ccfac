"""The demo cluster of README's first command: the real .bin installed on a lab.

    python -m tests.lab.demo up [--servers 3] [--bin dist/DragonBall-<v>.bin]
    python -m tests.lab.demo down

`up` brings up a lab of bare Debian servers on an internal network (no way out),
installs the portal on s1 from the .bin with an answers file, enrolls the other
servers, waits until every node is Ready in the Swarm, and prints the portal's
address, the CA fingerprint and where the admin password is. The admin password is
made once (random) and kept 0600 in /var/lib/dragonball-demo/.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import pathlib
import secrets
import sys
import tempfile
import time

import yaml

from tests.lab.errors import LabError
from tests.lab.install import LabCluster
from tests.lab.lab import Lab

NAME = "dbdemo"
ROOT = pathlib.Path(__file__).resolve().parents[2]
STATE = pathlib.Path("/var/lib/dragonball-demo")
PASSWORD_FILE = STATE / "portal-admin-password"
ADDRESS_HOST = 100   # the example's moving address: this host number of the lab's subnet


def admin_password() -> str:
    """The demo portal's admin password: made once, kept 0600."""
    if PASSWORD_FILE.exists():
        return PASSWORD_FILE.read_text().strip()
    STATE.mkdir(parents=True, exist_ok=True)
    password = "demo-" + secrets.token_urlsafe(18)
    PASSWORD_FILE.touch(mode=0o600)
    PASSWORD_FILE.write_text(password + "\n")
    return password


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def up(servers: int, bin_path: pathlib.Path) -> int:
    if not bin_path.is_file():
        raise LabError(f"no .bin at {bin_path}", "build it first: .venv/bin/python build.py")
    try:
        Lab.attach(NAME).down()
        say("removed the previous demo lab")
    except LabError:
        pass  # there was none
    say(f"a lab of {servers} bare Debian 12 servers on an internal network (no way out)")
    lab = Lab(NAME, servers, internal=True).up()
    cluster = LabCluster(lab, bin_path)
    began = time.monotonic()
    cluster.copy_bin()
    say(f"s1: installing the portal from {bin_path.name}")
    _check(cluster.install("s1", cluster.portal_answers("s1", admin_password=admin_password())))
    devices = lab.servers[1:]
    if devices:
        say(f"{', '.join(devices)}: joining with one-time enrollment codes")
        runs = cluster.install_many({s: cluster.device_answers(s, cluster.enroll())
                                     for s in devices})
        for run in runs.values():
            _check(run)
    nodes = _ready_nodes(cluster, len(lab.servers))
    enrollment = cluster.enroll()
    say(f"{len(nodes)} servers joined in {time.monotonic() - began:.0f} s; leak counter "
        f"{lab.leak_packets()} (packets that tried to leave the lab)")
    for node in nodes:
        print(f"    {node}")
    app_url, moving = _apply_example(cluster)
    ca = STATE / "ca.crt"
    ca.write_text(lab.exec("s1", ["cat", "/etc/dragonball/ca.crt"], check=True).stdout)
    url = f"https://{lab.ip('s1')}:8443"
    print(f"\nportal:          {url}/  (web UI, login admin; API: /api/v1/openapi.json)")
    print(f"notes app:       {app_url}  (examples/notes.app.yaml: web -> api x2 -> store)")
    if moving:
        print(f"                 {moving}")
    # the demo applies the spec with the lab's moving address; the .bin carries the plain one
    print("the release's app: on s1, `dragonball apply` (no file) applies the spec the .bin "
          "carries; `dragonball deploy` asks where each service runs")
    print(f"CA fingerprint:  {enrollment['ca_fingerprint']}  (CA saved in {ca})")
    print(f"admin password:  {PASSWORD_FILE} (user admin)")
    print(f"try it:          curl --cacert {ca} -u admin:\"$(sudo cat {PASSWORD_FILE})\" "
          f"{url}/api/v1/devices")
    print("add a server:    scripts/lab.sh --name dbdemo shell s1, then: dragonball enroll")
    print("take it down:    sudo bash scripts/demo.sh --down")
    return 0


def demo_spec(lab) -> dict:
    """The example app; on 2 servers or more, web runs on two of them with a moving address
    (docs/app-address.md): the lab subnet's .100."""
    spec = yaml.safe_load((ROOT / "examples" / "notes.app.yaml").read_text())
    if len(lab.servers) >= 2:
        subnet = ipaddress.ip_network(str(lab.subnet))
        spec["services"]["web"]["replicas"] = 2
        spec["services"]["web"]["address"] = (f"{subnet.network_address + ADDRESS_HOST}/"
                                              f"{subnet.prefixlen}")
    return spec


def _apply_example(cluster: LabCluster) -> tuple[str, str]:
    """`dragonball apply` of the example app on the portal, its output shown; (its URL, a
    line on its moving address, or "")."""
    with tempfile.TemporaryDirectory() as folder:
        local = pathlib.Path(folder) / "notes.app.yaml"
        local.write_text(yaml.safe_dump(demo_spec(cluster.lab), sort_keys=False))
        spec = cluster.lab.copy_in("s1", local, "/root")
    say("applying the example app (dragonball apply notes.app.yaml on s1)")
    run = cluster.dragonball("apply", spec, check=False, timeout=900)
    print(run.stdout.rstrip(), flush=True)
    if run.returncode != 0:
        raise LabError(f"apply failed:\n{run.stderr[-3000:]}",
                       "the lab stays up for a look: scripts/lab.sh --name dbdemo shell s1")
    rows = json.loads(cluster.dragonball("services", "--json").stdout)["services"]
    web = next(r for r in rows if r["service"] == "web")
    if web.get("address"):
        servers = sorted({t["server"] for t in web["tasks"]})
        return (f"http://{web['address']['address']}:8080/",
                f"(web's moving address: held by one of {', '.join(servers)}, moves to "
                "the other if it dies; dragonball services shows it)")
    server = web["tasks"][0]["server"] if web["tasks"] else "s1"
    return f"http://{cluster.lab.ip(server)}:8080/", ""


def _check(run) -> None:
    if not run.ok:
        raise LabError(f"install on {run.server} failed:\n{run.output[-3000:]}",
                       "read the output above; the lab stays up for a look: "
                       "scripts/lab.sh --name dbdemo shell " + run.server)


def _ready_nodes(cluster: LabCluster, want: int, timeout: float = 120) -> list:
    """The Swarm's nodes once `want` are Ready and min(3, want) managers are reachable."""
    managers = min(3, want) if want >= 3 else 1
    deadline = time.monotonic() + timeout
    while True:
        out = cluster.docker("s1", "node", "ls", "--format",
                             "{{.Hostname}} {{.Status}} {{.ManagerStatus}}").stdout
        nodes = [line for line in out.splitlines() if line.strip()]
        ready = sum(" Ready" in n for n in nodes)
        reachable = sum(n.endswith(("Leader", "Reachable")) for n in nodes)
        if (ready >= want and reachable >= managers) or time.monotonic() > deadline:
            return nodes
        time.sleep(1)


def down() -> int:
    Lab.attach(NAME).down()
    say("the demo lab is gone")
    return 0


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.demo",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up")
    start.add_argument("--servers", type=int, default=3)
    start.add_argument("--bin", type=pathlib.Path)
    sub.add_parser("down")
    args = parser.parse_args(argv)
    try:
        if args.command == "down":
            return down()
        bin_path = args.bin or _default_bin()
        return up(args.servers, bin_path)
    except LabError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 1


def _default_bin() -> pathlib.Path:
    manifest = json.loads(pathlib.Path("dist/manifest.json").read_text())
    return pathlib.Path("dist") / f"DragonBall-{manifest['version']}.bin"


if __name__ == "__main__":
    sys.exit(main())

"""One cluster on four userlands (issue 14), every server from the same .bin:

    s1  the portal on a server with no dpkg or apt whose os-release names RHEL 9 (the lab's
        stand-in for an rpm-based server: only Debian's packages can be fetched here)
    s2  Debian 13 (trixie, glibc 2.41)
    s3  Debian 11 (bullseye, glibc 2.31)
    s4  Debian 12 with its distribution's own Docker engine, which install adopts

The runtime carries its own C library (builder/loader.py) and the bundled engine is a private
tree of files with its own libraries and loader (builder/engine_tree.py): no package manager,
no glibc floor. The notes app runs across them with its store on Debian 11.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from support import ROOT
from tests.e2e.apps import SPEC, db, get, lab_spec, put_spec

USERLANDS = {"s1": "dragonball-bare:rhel", "s2": "dragonball-bare:trixie",
             "s3": "dragonball-bare:bullseye", "s4": "dragonball-bare:docker"}
#: server -> (os-release ID and VERSION_ID, glibc, how its engine came)
EXPECTED = {"s1": ("rhel 9.3", "2.36", "engine.files"), "s2": ("debian 13", "2.41", "engine.files"),
            "s3": ("debian 11", "2.31", "engine.files"), "s4": ("debian 12", "2.36", "engine.use")}


@pytest.fixture(scope="module")
def mixed(make_lab, release_bin):
    from tests.lab.install import LabCluster
    for target in ("bare-rhel", "bare-trixie", "bare-bullseye", "bare-docker"):  # cached
        subprocess.run([sys.executable, str(ROOT / "build.py"), target], check=True, cwd=ROOT)
    lab = make_lab(servers=4, internal=True, images=USERLANDS)
    path, _ = release_bin
    cluster = LabCluster(lab, path)
    cluster.runs = cluster.install_cluster()   # the portal on s1, then the others at once
    return cluster


def test_every_release_installs_from_the_same_bin(mixed):
    for server, (version, glibc, engine_step) in EXPECTED.items():
        facts = mixed.lab.exec(server, ["sh", "-c", ". /etc/os-release; echo $ID $VERSION_ID; "
                                        "getconf GNU_LIBC_VERSION"]).stdout.split()
        assert facts == [*version.split(), "glibc", glibc], (server, facts)
        journal = mixed.journal(server)
        assert engine_step in journal["steps"], (server, sorted(journal["steps"]))
        engine_s = sum(r["finished"] - r["started"] for k, r in journal["steps"].items()
                       if k.startswith("engine.") and k != "engine.start" and r["finished"])
        print(f"{server}: {version}, glibc {glibc}, {engine_step} {engine_s:.2f} s, install "
              f"{mixed.runs[server].seconds:.1f} s")
    # no package manager on s1: the engine came as files
    assert mixed.lab.exec("s1", ["sh", "-c", "command -v dpkg apt-get rpm"]).stdout == ""
    for server in ("s1", "s2", "s3"):
        where = mixed.lab.exec(server, ["readlink", "/usr/local/bin/docker"]).stdout.strip()
        assert where == "/opt/dragonball/engine/bin/docker", (server, where)
    # Debian 12's own engine on s4, adopted as it was: no tree there
    assert mixed.lab.exec("s4", ["test", "-e", "/opt/dragonball/engine"]).returncode == 1
    nodes = mixed.docker("s1", "node", "ls", "--format", "{{.Hostname}} {{.Status}}").stdout
    assert sorted(nodes.splitlines()) == ["s1 Ready", "s2 Ready", "s3 Ready", "s4 Ready"], nodes
    rule = json.loads(mixed.dragonball("preflight", "--json", check=False).stdout)
    distro = next(c for c in rule["checks"] if c["name"] == "distro")
    assert "rhel" in (distro["detail"] + json.dumps(rule["facts"]["distro"])).lower(), distro


def test_the_installed_runtime_runs_on_each_as_a_plain_program(mixed):
    """/opt/dragonball/runtime/dragonball, started by the kernel through the loader it
    carries: the same answer on glibc 2.31, 2.36 and 2.41, with or without dpkg."""
    for server in EXPECTED:
        out = mixed.lab.exec(server, ["/opt/dragonball/runtime/dragonball", "--version"])
        assert out.ok and out.stdout.startswith("dragonball "), (server, out)


#: A one-shot job (issue 15) before the api: it reads its parameter, writes into the store
#: (on the app's network) and says so.
MIGRATE = {"image": "notes/store:0.1.0", "depends_on": ["store"], "timeout": 120,
           "command": ["sh", "-c", "v=$(/opt/dragon_ball/bin/params get schema); "
                       "redis-cli -h store SET schema \"$v\" && echo migrated to $v"],
           "parameters": {"schema": {"type": "string", "default": "v1"}}}


def notes_with_job(command=None) -> dict:
    spec = lab_spec()
    spec["services"]["store"]["placement"] = {"servers": ["s3"]}
    spec["jobs"] = {"migrate": {**MIGRATE, **({"command": command} if command else {})}}
    spec["services"]["api"]["depends_on"] = ["store", "migrate"]
    # an app-wide parameter declared once (issue 15), the api takes it as its greeting
    spec["shared"] = {"greeting": spec["services"]["api"]["parameters"].pop("greeting")}
    spec["services"]["api"]["parameters"]["greeting"] = {"shared": "greeting"}
    return spec


def test_the_notes_app_runs_across_the_four_with_its_store_on_debian_11(mixed):
    put_spec(mixed, notes_with_job(), SPEC)
    began = time.monotonic()
    run = db(mixed, "apply", SPEC, "--json", check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    print(f"\napply on four userlands: {time.monotonic() - began:.1f} s")
    where = mixed.docker("s1", "service", "ps", "--filter", "desired-state=running",
                         "--format", "{{.Name}} {{.Node}}", "notes_api", "notes_store-1").stdout
    placed = dict(line.split() for line in where.splitlines())
    assert placed["notes_store-1.1"] == "s3", placed
    api = sorted(n for t, n in placed.items() if t.startswith("notes_api."))
    assert len(api) == len(set(api)) >= 2, placed     # spread: each on another server
    url = f"http://{mixed.lab.ip('s1')}:8080/api/notes"
    note = {"text": "written through a dpkg-less portal, kept on Debian 11"}
    request = urllib.request.Request(url, data=json.dumps(note).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the lab only
    with opener.open(request, timeout=10) as answer:
        assert answer.status == 201
    status, body = get(url)
    assert status == 200 and [n["text"] for n in body["notes"]] == [note["text"]], body
    # the job ran once, on a real Swarm, before the api: its log and its work are there
    log = db(mixed, "logs", "migrate", check=False)
    assert "migrated to v1" in log.stdout + log.stderr, log
    assert mixed.docker("s3", "exec", container_of(mixed, "s3", "notes_store-1"),
                        "redis-cli", "GET", "schema").stdout.strip() == "v1"


def container_of(cluster, server: str, service: str) -> str:
    return cluster.docker(server, "ps", "-q", "--filter",
                          f"label=com.docker.swarm.service.name={service}").stdout.split()[0]


def test_a_job_runs_again_only_when_changed_and_a_failing_one_stops_the_apply(mixed):
    """Unchanged: skipped. A failing command: the apply stops, exit 1, its output shown,
    nothing after it restarted; the command fixed: it runs again."""
    again = db(mixed, "apply", SPEC, check=False)
    assert again.returncode == 0 and "skip" in again.stdout, again.stdout + again.stderr
    put_spec(mixed, notes_with_job(["sh", "-c", "echo schema is broken >&2; exit 3"]), SPEC)
    failed = db(mixed, "apply", SPEC, check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "migrate" in failed.stderr + failed.stdout
    assert "schema is broken" in failed.stderr + failed.stdout, failed.stdout + failed.stderr
    put_spec(mixed, notes_with_job(), SPEC)
    fixed = db(mixed, "apply", SPEC, "--json", check=False)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    status, _ = get(f"http://{mixed.lab.ip('s1')}:8080/api/notes")
    assert status == 200


def test_an_app_release_ships_to_the_running_cluster_with_one_command(mixed, release_bin,
                                                                    tmp_path):
    """Issue 15: `build.py app --since THE.bin` (its own name and version, only its images
    and spec, what the cluster has left out), then on the portal as root `dragonball release
    add FILE --apply` (no credential typed). A .bin or a damaged .app: refused, nothing sent."""
    bin_path, _ = release_bin
    spec = notes_with_job()
    for name in ("web", "api", "store"):
        spec["services"][name]["image"] = f"notes/{name}:0.1.1"
    spec["jobs"]["migrate"]["image"] = "notes/store:0.1.1"
    spec["shared"]["greeting"]["default"] = "Hello from release 0.1.1"
    (tmp_path / "notes.app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    modules = "".join(f"  - {{name: {n}, path: {ROOT / 'examples' / n}}}\n"
                      for n in ("web", "api", "store"))
    (tmp_path / "r.yaml").write_text(f"name: notes\nversion: 0.1.1\napp: notes.app.yaml\n"
                                     f"modules:\n{modules}")
    subprocess.run([sys.executable, str(ROOT / "build.py"), "app", "--release",
                    str(tmp_path / "r.yaml"), "--dist", str(tmp_path), "--since",
                    str(bin_path)], check=True, cwd=ROOT)
    app = tmp_path / "notes-0.1.1.app"
    print(f"\nnotes-0.1.1.app: {app.stat().st_size / 1e3:.0f} kB (the whole .bin: "
          f"{bin_path.stat().st_size / 1e6:.0f} MB)")
    assert app.stat().st_size < 2e6      # every layer is the cluster's already
    shipped = mixed.lab.copy_in("s1", str(app), "/root")
    refused = db(mixed, "release", "add", mixed.bin, check=False)
    assert refused.returncode == 2 and "not an app" in refused.stdout + refused.stderr, refused
    damaged = tmp_path / "damaged.app"
    data = bytearray(app.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = b"\xff" * 64     # inside a member
    damaged.write_bytes(bytes(data))
    refused = db(mixed, "release", "add", mixed.lab.copy_in("s1", str(damaged), "/root"),
                 check=False)
    assert refused.returncode == 2, refused
    added = db(mixed, "release", "add", shipped, "--apply", check=False, timeout=600)
    assert added.returncode == 0, added.stdout + added.stderr
    assert "/var/lib/dragonball/releases/notes/0.1.1/app.yaml" in added.stdout
    status, info = get(f"http://{mixed.lab.ip('s1')}:8080/api/info")
    assert status == 200 and info["greeting"] == "Hello from release 0.1.1", info


def test_a_shared_value_is_set_once_and_a_refused_one_is_restored_everywhere(mixed):
    """Issue 15: `params set @shared` reaches every task that takes it; a value a task
    refuses (the api takes a greeting of at most 200 characters) is rolled back: exit 1,
    `restored`, the old value still in force."""
    url = f"http://{mixed.lab.ip('s1')}:8080/api/info"
    done = db(mixed, "params", "set", "@shared", "greeting=Set once for the whole app",
              check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert get(url)[1]["greeting"] == "Set once for the whole app"
    refused = db(mixed, "params", "set", "@shared", "greeting=" + "x" * 300, check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "the values before are back on every server" in refused.stdout, refused.stdout
    assert get(url)[1]["greeting"] == "Set once for the whole app"
    shown = db(mixed, "params", "get", "@shared", "--json", check=False)
    assert shown.returncode == 0 and "api" in shown.stdout, shown.stdout + shown.stderr


def test_status_on_the_portal_as_root_needs_no_login(mixed):
    """Issue 15: `dragonball status` on the portal as root said "not logged in"; it now
    makes a token of its own there (commands/remote.py, `local_client`)."""
    out = mixed.dragonball("status", "--json", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    status = json.loads(out.stdout)
    assert status["devices"]["total"] == 4, status["devices"]
    assert status["devices"]["by_state"].get("joined", 0) >= 2, status["devices"]


def test_remove_takes_the_app_away_from_every_server(mixed):
    """Issue 15: `dragonball remove APP --purge-data APP` (here after the notes app ran across
    the four): no service, network, parameter folder or volume of it is left, and the portal
    no longer lists it. (Without --purge-data the volumes stay: unit tests.)"""
    out = mixed.dragonball("remove", "notes", "--purge-data", "notes", "--json", check=False,
                           timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    done = json.loads(out.stdout)
    assert done["problems"] == [] and done["network"], done
    assert "notes_api" in done["services"] and done["volumes"], done
    left = mixed.docker("s1", "service", "ls", "--filter", "label=io.dragonball.app=notes",
                        "--format", "{{.Name}}").stdout
    assert left.strip() == "", left
    for server in EXPECTED:     # its copy on each server too, not only the Swarm's
        networks = mixed.docker(server, "network", "ls", "--format", "{{.Name}}").stdout
        assert "notes_net" not in networks.split(), (server, networks)
        folders = mixed.lab.exec(server, ["sh", "-c", "ls /var/lib/dragonball/params/ "
                                          "2>/dev/null"]).stdout.split()
        assert "notes" not in folders, (server, folders)
        volumes = mixed.docker(server, "volume", "ls", "--format", "{{.Name}}").stdout
        assert not [v for v in volumes.split() if v.startswith("notes_")], (server, volumes)
    listed = json.loads(mixed.dragonball("status", "--json").stdout)
    assert "notes" not in listed["apps"], listed

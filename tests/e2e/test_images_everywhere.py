"""Images everywhere (issue 12, point 1): no task start depends on the portal's server.

On the shared installed cluster with the notes app applied (after test_app_*, before
test_server_lost, which breaks a server): every server loaded the release's images from its
own .bin, so the app's tasks, pinned by image ID, start on any server with the portal's
registry stopped; a later image pushed to the registry reaches every ready server at apply,
before its tasks need it; `dragonball images where` says which server holds what. The
registry is only stopped (never s1 killed) and started again; the app is applied back as it
was. Traffic stays in the lab."""

from __future__ import annotations

import base64
import json
import time

from support import wait_for
from tests.e2e.apps import SPEC, db, lab_spec, put_spec

REGISTRY_CONTAINER = "dragonball-registry"
SERVERS = ("s1", "s2", "s3")
LATER = "notes/api:0.1.1-images"
LATER_SPEC = "/root/notes-later.app.yaml"


def service_image(cluster, service: str) -> str:
    return cluster.docker("s1", "service", "inspect", "--format",
                          "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                          f"notes_{service}").stdout.strip()


def holdings(cluster) -> dict:
    rows = json.loads(db(cluster, "images", "where", "--json").stdout)["servers"]
    return {r["server"]: r for r in rows}


def running_tasks(cluster, service: str) -> list[tuple]:
    """(server, task id, state, error) of each task Swarm wants running."""
    out = cluster.docker("s1", "service", "ps", f"notes_{service}", "--no-trunc", "--filter",
                         "desired-state=running", "--format",
                         "{{.Node}}|{{.ID}}|{{.CurrentState}}|{{.Error}}").stdout
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def all_errors(cluster, service: str) -> list[str]:
    out = cluster.docker("s1", "service", "ps", f"notes_{service}", "--no-trunc", "--format",
                         "{{.Node}} {{.Error}}").stdout
    return [line for line in out.splitlines() if "No such image" in line]


def test_tasks_are_pinned_by_image_id_and_every_server_holds_them(installed_cluster, applied):
    cluster = installed_cluster
    ids = {s: service_image(cluster, s) for s in ("web", "api", "store-1")}
    assert all(i.startswith("sha256:") for i in ids.values()), ids
    for server in SERVERS:   # from its own .bin at install: no pull, no registry
        for image_id in ids.values():
            assert cluster.docker(server, "image", "inspect", image_id, check=False).ok, \
                (server, image_id)
        step = cluster.journal(server)["steps"]["images.load"]
        assert step["state"] == "done", step
        print(f"\n{server}: images.load took {step['finished'] - step['started']:.1f} s")
    rows = holdings(cluster)
    assert set(rows) == set(SERVERS)
    for server, row in rows.items():
        assert row["error"] == "" and row["missing"] == [], row
        assert sorted(row["held"]) == ["notes/api:0.1.0", "notes/store:0.1.0",
                                       "notes/web:0.1.0"], row


def test_a_later_image_reaches_every_server_at_apply(installed_cluster, applied):
    """An image only the portal's registry holds (pushed there, as `dragonball images push`
    does for a later release) is pulled by every ready server's agent before apply
    launches it, and the listing says so; the app is then applied back."""
    cluster = installed_cluster
    registry = f"{cluster.lab.ip('s1')}:5000"   # the portal's registry (its address)
    # a new image ID from the release's api (a label more: nothing fetched), on s1 only
    build = cluster.lab.exec("s1", ["sh", "-c",
                                    "mkdir -p /root/later && printf 'FROM notes/api:0.1.0\\n"
                                    "LABEL io.dragonball.test=later\\n' > /root/later/Dockerfile"
                                    f" && docker build -q -t {registry}/{LATER} /root/later && "
                                    f"docker push {registry}/{LATER}"], timeout=300)
    assert build.ok, build.stdout + build.stderr
    later_id = cluster.docker("s1", "image", "inspect", "--format", "{{.Id}}",
                              f"{registry}/{LATER}").stdout.strip()
    for server in ("s2", "s3"):
        assert not cluster.docker(server, "image", "inspect", later_id, check=False).ok
    spec = lab_spec()
    spec["services"]["api"]["image"] = LATER
    put_spec(cluster, spec, LATER_SPEC)
    try:
        run = db(cluster, "apply", LATER_SPEC, "--json", check=False)
        assert run.returncode == 0, run.stdout + run.stderr
        events = json.loads(run.stdout).get("events", [])
        pulled = {e["detail"] for e in events if e.get("state") == "pulled"}
        assert {d.split()[1] for d in pulled} >= {"s2", "s3"}, events
        assert service_image(cluster, "api") == later_id
        for server in SERVERS:
            assert cluster.docker(server, "image", "inspect", later_id, check=False).ok
        rows = holdings(cluster)
        assert all(LATER in r["held"] and not r["missing"] for r in rows.values()), rows
        assert not all_errors(cluster, "api")
    finally:
        back = db(cluster, "apply", SPEC, "--json", check=False)
        assert back.returncode == 0, back.stdout + back.stderr


def test_with_the_registry_stopped_rescheduled_tasks_start_on_every_server(installed_cluster,
                                                                           applied):
    cluster = installed_cluster
    before = {task for _, task, _, _ in running_tasks(cluster, "api")}
    cluster.docker("s1", "stop", REGISTRY_CONTAINER)
    try:
        assert not cluster.docker("s1", "ps", "-q", "--filter",
                                  f"name={REGISTRY_CONTAINER}").stdout.strip()
        began = time.monotonic()
        cluster.docker("s1", "service", "update", "--detach", "--force", "notes_api")

        def replaced():
            tasks = running_tasks(cluster, "api")
            return (len(tasks) == 3 and not before & {t for _, t, _, _ in tasks}
                    and all(state.startswith("Running") for _, _, state, _ in tasks))
        assert wait_for(replaced, timeout=300, interval=2), running_tasks(cluster, "api")
        servers = sorted(server for server, _, _, _ in running_tasks(cluster, "api"))
        print(f"\nregistry stopped: 3 new api tasks running on {servers} "
              f"{time.monotonic() - began:.0f} s after the forced update")
        assert set(servers) - {"s1"}, servers      # started away from the registry's server
        assert not all_errors(cluster, "api")
        rows = holdings(cluster)      # read from Swarm and the agents: no registry needed
        assert all(not r["missing"] and not r["error"] for r in rows.values()), rows
    finally:
        cluster.docker("s1", "start", REGISTRY_CONTAINER)


def test_a_device_can_pull_but_not_push_or_overwrite(installed_cluster, applied):
    """Issue 13's attack: a device's root, with the registry login every device has, tries to
    plant code by moving a release's tag (notes/api:0.1.0) onto an image of its own and by
    pushing a new repository; both are refused, and another server pulling that tag still
    gets the release's image."""
    cluster = installed_cluster
    registry = f"{cluster.lab.ip('s1')}:5000"
    release = f"{registry}/notes/api:0.1.0"

    def answering():  # the test before started the registry again: up, nginx and all
        code = cluster.lab.exec("s2", ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                                       f"https://{registry}/v2/"], timeout=30).stdout
        return code.strip() == "401"
    wait_for(answering, 120, interval=1,
             describe=lambda: cluster.docker("s1", "logs", "--tail", "20", REGISTRY_CONTAINER,
                                             check=False).stdout)
    config = json.loads(cluster.lab.exec("s2", ["cat", "/root/.docker/config.json"]).stdout)
    login = base64.b64decode(config["auths"][registry]["auth"]).decode().split(":", 1)[0]
    assert login == "pull"                                  # not the portal's own account
    had = cluster.docker("s2", "image", "inspect", "--format", "{{.Id}}", release, check=False)
    dockerfile = "FROM notes/api:0.1.0\\nLABEL io.dragonball.test=planted\\n"
    planted = cluster.lab.exec("s2", ["sh", "-c",
                                      f"mkdir -p /root/plant && printf '{dockerfile}' > "
                                      f"/root/plant/Dockerfile && docker build -q -t {release} "
                                      f"-t {registry}/planted/x:1 /root/plant"], timeout=300)
    assert planted.ok, planted.stdout + planted.stderr
    try:
        for ref in (release, f"{registry}/planted/x:1"):
            push = cluster.lab.exec("s2", ["docker", "push", ref], timeout=300)
            said = (push.stdout + push.stderr).lower()
            assert not push.ok, ref
            assert "unauthorized" in said or "denied" in said, said
        # s3 pulls the tag from the registry: the release's image, as loaded from its .bin
        pulled = cluster.docker("s3", "pull", "-q", release, timeout=300)
        assert pulled.ok, pulled.stdout + pulled.stderr
        ids = {cluster.docker("s3", "image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
               for ref in (release, "notes/api:0.1.0")}
        assert len(ids) == 1, ids
        assert not cluster.docker("s3", "pull", f"{registry}/planted/x:1", check=False).ok
    finally:  # s2's tags as they were
        cluster.lab.exec("s2", ["docker", "rmi", f"{registry}/planted/x:1", release], timeout=60)
        if had.ok:
            cluster.docker("s2", "tag", had.stdout.strip(), release)

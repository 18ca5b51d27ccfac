"""Upgrades in place (issue 18) on the session's installed lab cluster with the notes app
applied (`applied`: web on s1, store on s2, api x3), from variant releases of the default
one built here (tests/releases.py): 0.2.0 (api changed, a new parameter `motd`), 0.3.0 (an
api that cannot start), 0.4.0 (api changed again), `other` 0.5.0 (another product).

In order, on the one cluster (each test starts where the one before left it):
- refused before any change: a truncated .bin (its stub, exit 81), another product's .bin
  (exit 2), no --yes and no terminal (exit 2); `--dry-run` lists api's image and `motd` and
  changes nothing;
- 0.1.0 -> 0.2.0 under a bounded load through the Service: no failed request, no note lost,
  the new parameter and code in force, the placement kept; again: nothing to do;
- a downgrade to 0.1.0 refused (exit 2);
- 0.2.0 -> 0.3.0 fails in api, rolled back to 0.2.0 by itself (exit 1, the failing task's
  output), under load: no failed request, data kept;
- `dragonball rollback --yes`: back to 0.1.0, under load;
- 0.1.0 -> 0.4.0 (two versions skipped), killed with -9 in the middle of the app phase (a
  second upgrade meanwhile: exit 4), then run again: it resumes and ends at 0.4.0.

It leaves the app healthy at 0.4.0 (test_server_lost runs after it). Times are printed, not
asserted (targets are bench/upgrade.py's). Traffic stays on this machine and the lab.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time

import pytest

from support import wait_for
from tests import releases
from tests.e2e.apps import API_REPLICAS, db, get
from tests.ledger import Ledger
from tests.load import Http, Load, NotesWorkload
from tests.upgrade_lab import (api_info, app_state, json_of, kill_upgrade, put_bin,
                               release_show, running_tasks, service_image, upgrade,
                               upgrade_processes, upgrade_state)

pytestmark = pytest.mark.e2e
HEALTHY_S = 300          # generous: a loaded 2-core machine


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """`variants(key)` -> (local .bin, manifest) of tests/releases.py's variant `key`, built
    once (under the build lock) when first asked for."""
    parent, built = tmp_path_factory.mktemp("releases"), {}

    def variant(key: str):
        if key not in built:
            began = time.monotonic()
            built[key] = releases.build_variant(parent, key)
            print(f"\nbuilt {built[key][0].name} ({key}) in {time.monotonic() - began:.0f} s")
        return built[key]
    return variant


@pytest.fixture(scope="module")
def on_portal(installed_cluster, applied, variants):
    """`on_portal(key)` -> the path on the portal of the variant's .bin (copied once)."""
    copied = {}

    def put(key: str) -> str:
        if key not in copied:
            copied[key] = put_bin(installed_cluster, variants(key)[0])
        return copied[key]
    return put


@contextlib.contextmanager
def loaded(cluster, seconds: float = 1800):
    """A bounded load through the web Service for the block; after it: no failed request,
    no acknowledged note lost, the notes written before still counted."""
    url = f"http://{cluster.lab.ip(cluster.portal)}:8080"
    load = Load(url, NotesWorkload(), Ledger(), threads=2, rate=4, seconds=seconds,
                budget=20_000, allowed=[cluster.lab.subnet])
    http = Http(url, [cluster.lab.subnet], timeout=10)
    for n in range(5):                  # notes before: counted in the app's total after
        status, body = http.call("POST", "/api/notes", {"text": f"written before {n}"})
        assert status == 201, body
    total_before = load.total()
    assert total_before and total_before >= 5, "the notes app does not count its notes"
    load.start()
    try:
        yield load
    finally:
        time.sleep(2)
        load.stop()
    failed = load.ledger.failed
    print(f"\nunder load: {len(load.ledger.acknowledged)} writes acknowledged, "
          f"{len(failed)} failed requests, notes before {total_before}")
    assert failed == [], load.ledger.failures_by_reason()
    readback = load.read_back()
    assert readback is not None, "no good read after the load"
    loss = load.ledger.lost(readback, total_before)
    assert loss.lost == 0, loss


def assert_unchanged(cluster, before: dict, version: str) -> None:
    assert app_state(cluster) == before
    assert release_show(cluster)["current"]["version"] == version
    state = upgrade_state(cluster)
    assert state is None or state.get("state") != "running", state


def assert_app_at(cluster, version: str, api_version: str) -> None:
    """api runs `version`'s image and code (`api_version`), every service healthy and placed as
    applied. (web's and store's images are the same in every variant: whether their label
    follows the version is the upgrade's choice.)"""
    assert service_image(cluster, "notes_api").endswith(f"/api:{version}")
    wait_for(lambda: len(running_tasks(cluster, "notes_api")) == API_REPLICAS, HEALTHY_S,
             lambda: running_tasks(cluster, "notes_api"), interval=2)
    assert running_tasks(cluster, "notes_web") == ["s1"]
    assert running_tasks(cluster, "notes_store-1") == ["s2"]
    wait_for(lambda: (api_info(cluster) or {}).get("version") == api_version, HEALTHY_S,
             lambda: api_info(cluster), interval=2)


def api_params(cluster) -> str:
    run = db(cluster, "params", "get", "api", "--json", check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


# --- refused, nothing changed -----------------------------------------------------------------

def test_the_variants_carry_their_app_and_a_changed_api_image(release_bin, variants):
    _, first = release_bin
    _, second = variants("0.2.0")
    old, new = releases.image_ids(first), releases.image_ids(second)
    assert new["api"] != old["api"] and new["store"] == old["store"], (old, new)
    assert "notes/api:0.2.0" in second["app"]["text"] and "motd" in second["app"]["text"]


def test_a_truncated_bin_is_refused_by_its_stub(installed_cluster, applied, variants,
                                                tmp_path):
    cluster = installed_cluster
    before = app_state(cluster)
    cut = releases.truncated_copy(variants("0.2.0")[0], tmp_path / "DragonBall-0.2.0.bin")
    on_portal = put_bin(cluster, cut, "DragonBall-0.2.0-truncated.bin")
    run = upgrade(cluster, on_portal, "--yes")
    assert run.returncode == 81, run.stdout + run.stderr
    assert "truncated" in run.stdout + run.stderr
    assert_unchanged(cluster, before, "0.1.0")


def test_another_product_s_bin_is_refused(installed_cluster, on_portal):
    cluster = installed_cluster
    before = app_state(cluster)
    run = upgrade(cluster, on_portal("other-0.5.0"), "--yes")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "other" in run.stdout + run.stderr
    assert_unchanged(cluster, before, "0.1.0")


def test_without_yes_and_no_terminal_it_asks_for_yes(installed_cluster, on_portal):
    cluster = installed_cluster
    before = app_state(cluster)
    run = upgrade(cluster, on_portal("0.2.0"))
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--yes" in run.stdout + run.stderr
    assert_unchanged(cluster, before, "0.1.0")


def test_a_dry_run_lists_api_s_image_and_the_new_parameter_and_changes_nothing(
        installed_cluster, on_portal):
    cluster = installed_cluster
    before = app_state(cluster)
    run = upgrade(cluster, on_portal("0.2.0"), "--dry-run", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    plan = json_of(run)["plan"]
    api = [row for row in plan if row["part"] == "app" and row["name"] == "api"]
    assert api and "notes/api:0.2.0" in api[0]["after"], plan
    assert "motd" in api[0]["detail"], api
    assert_unchanged(cluster, before, "0.1.0")
    text = upgrade(cluster, on_portal("0.2.0"), "--dry-run")     # the same plan, for a person
    assert text.returncode == 0 and "notes/api:0.2.0" in text.stdout, text.stdout + text.stderr
    assert app_state(cluster) == before


# --- 0.1.0 -> 0.2.0 ----------------------------------------------------------------------------

def test_an_upgrade_under_load_fails_no_request_and_keeps_the_data(installed_cluster,
                                                                   on_portal):
    cluster = installed_cluster
    path = on_portal("0.2.0")
    with loaded(cluster):
        began = time.monotonic()
        run = upgrade(cluster, path, "--yes", "--json")
        print(f"\nupgrade 0.1.0 -> 0.2.0 on 3 servers: {time.monotonic() - began:.1f} s")
        assert run.returncode == 0, run.stdout + run.stderr
        assert_app_at(cluster, "0.2.0", "2.0.0")
    assert json_of(run)["state"] == "done"
    show = release_show(cluster)
    assert show["current"]["version"] == "0.2.0" and show["previous"]["version"] == "0.1.0"
    assert show["upgrade"]["state"] == "done", show
    assert releases.MOTD in api_params(cluster)
    assert api_info(cluster)["motd"] == releases.MOTD
    assert_store_snapshot(cluster, show["upgrade"])


def assert_store_snapshot(cluster, upgrade_summary: dict) -> None:
    """The backup holds a snapshot of the store slot's volume (taken with the store paused,
    under the load above: no failed request), as its index says, 0600, whole."""
    backup = upgrade_summary["backup"]
    index = json.loads(cluster.lab.exec(cluster.portal, ["cat", f"{backup}/volumes.json"],
                                        check=True).stdout)
    stores = [v for v in index["volumes"] if v["service"] == "store"]
    assert stores and upgrade_summary["snapshots"] == len(index["volumes"]), index
    for volume in stores:
        path = f"{backup}/{volume['file']}"
        found = cluster.lab.exec(cluster.portal, ["sh", "-c", f"stat -c %a {path}; "
                                                  f"sha256sum {path}"], check=True).stdout
        mode, digest = found.split()[0], found.split()[1]
        assert (mode, digest) == ("600", volume["sha256"]), (found, volume)
        assert volume["size"] > 0 and volume["paused"], volume


def test_every_server_runs_the_new_runtime_and_says_which_release(installed_cluster,
                                                                  variants):
    """Nobody visits the devices: each server's runtime is the new release's (the agents'
    image carried it there when the runtime changed; the same one otherwise), and each
    server's release is the new one in `devices --json`."""
    cluster = installed_cluster
    want = variants("0.2.0")[1]["sections"]["runtime"]["sha256"]

    def stamps() -> dict:
        return {s: cluster.lab.exec(s, ["cat", "/opt/dragonball/runtime/.sha256"]).stdout.strip()
                for s in cluster.lab.servers}
    wait_for(lambda: set(stamps().values()) == {want}, 180,
             lambda: f"runtimes {stamps()}, wanted {want[:12]} everywhere")
    devices = json.loads(cluster.dragonball("devices", "--json").stdout)["devices"]
    assert {(d.get("release") or {}).get("version") for d in devices} == {"0.2.0"}, devices
    assert all(d.get("version") for d in devices), devices


def test_the_same_release_again_is_nothing_to_do(installed_cluster, on_portal):
    cluster = installed_cluster
    before = app_state(cluster)
    run = upgrade(cluster, on_portal("0.2.0"), "--yes", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    assert json_of(run)["state"] == "nothing to do"
    assert app_state(cluster) == before


def test_a_downgrade_is_refused(installed_cluster):
    cluster = installed_cluster
    before = app_state(cluster)
    run = upgrade(cluster, cluster.bin, "--yes")                 # the installed 0.1.0 .bin
    assert run.returncode == 2, run.stdout + run.stderr
    assert "0.1.0" in run.stdout + run.stderr
    assert_unchanged(cluster, before, "0.2.0")


# --- a failed upgrade, a rollback ---------------------------------------------------------------

def test_an_api_that_cannot_start_is_rolled_back_by_itself(installed_cluster, on_portal):
    cluster = installed_cluster
    path = on_portal("0.3.0")
    with loaded(cluster):
        began = time.monotonic()
        run = upgrade(cluster, path, "--yes")
        print(f"\nfailed upgrade to 0.3.0 and its rollback: {time.monotonic() - began:.1f} s")
        assert run.returncode == 1, run.stdout + run.stderr
        assert_app_at(cluster, "0.2.0", "2.0.0")
    assert "api" in run.stderr and "phase app" in run.stderr, run.stderr
    assert releases.FAILED_START in run.stderr, run.stderr     # the failing task's output
    show = release_show(cluster)
    assert show["current"]["version"] == "0.2.0" and show["previous"]["version"] == "0.1.0"
    assert show["upgrade"]["state"] == "rolled-back" and show["upgrade"]["to"]["version"] == \
        "0.3.0", show
    assert releases.MOTD in api_params(cluster)


def test_rollback_goes_back_to_the_previous_release(installed_cluster):
    cluster = installed_cluster
    with loaded(cluster):
        began = time.monotonic()
        run = db(cluster, "rollback", "--yes", check=False, timeout=1800)
        print(f"\nrollback 0.2.0 -> 0.1.0 on 3 servers: {time.monotonic() - began:.1f} s")
        assert run.returncode == 0, run.stdout + run.stderr
        assert_app_at(cluster, "0.1.0", "1.0.0")
    assert release_show(cluster)["current"]["version"] == "0.1.0"
    assert "motd" not in api_params(cluster)


# --- kill -9, then the same command again --------------------------------------------------------

def test_a_killed_skip_version_upgrade_resumes_when_run_again(installed_cluster, on_portal):
    """0.1.0 -> 0.4.0: killed with -9 (the command and all it started) once the app phase
    has begun changing the services; a second upgrade meanwhile is refused with 4."""
    cluster = installed_cluster
    path = on_portal("0.4.0")
    before = app_state(cluster)
    first: dict = {}
    runner = threading.Thread(target=lambda: first.update(run=upgrade(cluster, path, "--yes")),
                              daemon=True)
    runner.start()
    wait_for(lambda: (upgrade_state(cluster) or {}).get("state") == "running", 300,
             lambda: upgrade_state(cluster), interval=0.5)
    second = upgrade(cluster, path, "--yes")
    assert second.returncode == 4, second.stdout + second.stderr
    wait_for(lambda: not runner.is_alive() or (
        (upgrade_state(cluster) or {}).get("phase") == "app" and app_state(cluster) != before),
        1200, lambda: upgrade_state(cluster), interval=0.5)
    assert runner.is_alive(), f"the upgrade ended before the app phase: {first.get('run')}"
    killed = kill_upgrade(cluster, path)
    runner.join(60)
    assert killed and not upgrade_processes(cluster, path)
    state = upgrade_state(cluster)
    print(f"\nkilled {len(killed)} processes in phase {state.get('phase')}; done "
          f"{state.get('done')}")
    assert state["state"] == "running", state
    with loaded(cluster):
        again = upgrade(cluster, path, "--yes", "--json")
        assert again.returncode == 0, again.stdout + again.stderr
        assert_app_at(cluster, "0.4.0", "4.0.0")
    show = release_show(cluster)
    assert show["current"]["version"] == "0.4.0" and show["upgrade"]["state"] == "done", show
    assert releases.MOTD in api_params(cluster)
    status, _ = get(f"http://{cluster.lab.ip(cluster.portal)}:8080/api/notes")
    assert status == 200
    print(json.dumps(show))

"""A cluster installed from the real .bin on an internal lab (docs/install-cluster.md).

One lab of five bare servers, cut off from the world, shared by the module:

    s1  the portal, from an answers file
    s2  a device, from an answers file
    s3  a device, from an answers file, its installer killed (-9) during the Swarm join,
        then run again
    s4  a fourth server added later, through the wizard on a pseudo-terminal; then reset
    s5  never installed: bad answers and a corrupt .bin, each must change nothing; and
        the non-member the firewall keeps off the cluster ports

Tests run in file order and build on each other (the cluster grows); each asserts
one thing a person would check. Nothing leaves the lab: its network is internal and
the leak counter stays at 0.
"""

from __future__ import annotations

import json
import re
import threading
import time

import pexpect
import pytest
import requests

from support import wait_for
from tests.lab.install import ADMIN_PASSWORD, TARGET, LabCluster

CODE_PATTERN = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")
KILL_AT = "join.swarm"  # the step during which s3's installer is killed


@pytest.fixture(scope="module")
def lab(make_lab):
    return make_lab(servers=5, internal=True)


@pytest.fixture(scope="module")
def release(release_bin):
    return release_bin


@pytest.fixture(scope="module")
def cluster(lab, release):
    """s1 installed as the portal; s2 and s3 joined (s3 killed once, then re-run)."""
    path, manifest = release
    cluster = LabCluster(lab, path)
    cluster.copy_bin()
    cluster.runs = {"s1": cluster.install("s1", cluster.portal_answers("s1"))}
    assert cluster.runs["s1"].ok, cluster.runs["s1"].output
    cluster.codes = {name: cluster.enroll() for name in ("s2", "s3", "s4", "unused")}
    cluster.codes["expiring"] = cluster.enroll(ttl="1m")
    cluster.expiring_since = time.time()
    killer = threading.Thread(target=kill_installer_at, args=(lab, "s3", KILL_AT))
    killer.start()
    runs = cluster.install_many({s: cluster.device_answers(s, cluster.codes[s])
                                 for s in ("s2", "s3")})
    killer.join()
    cluster.runs.update(runs)
    cluster.killed_journal = cluster.journal("s3")
    cluster.runs["s3-again"] = cluster.install("s3")  # the same answers file
    cluster.manifest = manifest
    return cluster


def kill_installer_at(lab, server: str, step: str, timeout: float = 600) -> None:
    """From inside `server`: once the journal has `step`, kill -9 every process of the
    installer (the .bin's sh and the runtime it started), as a power cut of the process."""
    script = rf"""
        deadline=$(( $(date +%s) + {int(timeout)} ))
        until grep -q '"{step}"' /var/lib/dragonball/install-journal.json 2>/dev/null; do
            [ "$(date +%s)" -lt "$deadline" ] || exit 3
            sleep 0.05
        done
        for dir in /proc/[0-9]*; do
            pid=${{dir#/proc/}}
            [ "$pid" = $$ ] && continue
            line=$(tr '\0' ' ' <"$dir/cmdline" 2>/dev/null) || continue
            case $line in
                *.bin\ --target*install*|*/dragonball/dragonball\ install*)
                    kill -9 "$pid" && echo "killed $pid: $line" ;;
            esac
        done
    """
    outcome = lab.exec(server, ["bash", "-c", script], timeout=timeout + 10)
    assert outcome.ok and "killed" in outcome.stdout, outcome


# --- the portal and two devices --------------------------------------------------------------

def test_the_portal_prints_its_fingerprint_and_a_code(cluster):
    output = cluster.runs["s1"].output
    assert cluster.codes["s2"]["ca_fingerprint"] in output
    assert CODE_PATTERN.search(output), output[-2000:]
    assert ADMIN_PASSWORD not in output


def test_three_servers_are_ready_and_all_three_are_managers(cluster):
    assert cluster.runs["s2"].ok, cluster.runs["s2"].output

    def nodes():
        listing = cluster.docker("s1", "node", "ls", "--format",
                                 "{{.Hostname}} {{.Status}} {{.ManagerStatus}}").stdout
        rows = [line.split() for line in listing.splitlines()]
        ready = sorted(r[0] for r in rows if r[1] == "Ready")
        managers = sorted(r[0] for r in rows if len(r) > 2 and r[2] in ("Leader", "Reachable"))
        return (ready, managers) if ready == managers == ["s1", "s2", "s3"] else None

    wait_for(nodes, 60, describe=lambda: cluster.docker("s1", "node", "ls").stdout)


def test_a_killed_install_resumes_and_completes(cluster):
    first, again = cluster.runs["s3"], cluster.runs["s3-again"]
    assert first.outcome.returncode in (-9, 137), first.output  # killed, not finished
    killed = cluster.killed_journal
    assert killed["finished"] is None and killed["steps"][KILL_AT]["state"] == "running"
    assert again.ok, again.output
    assert "resuming" in again.output
    journal = cluster.journal("s3")
    assert journal["finished"] and journal["steps"][KILL_AT]["state"] == "done"
    assert journal["steps"]["join.report"]["state"] == "done"


def test_a_device_holds_the_release_images_from_its_own_bin_with_the_archives_ids(cluster):
    image = next(i for i in cluster.manifest["images"] if i["ref"].startswith("notes/api"))
    registry = cluster.codes["s2"]["portal"].split(":")[0] + ":5000"
    ref = f"{registry}/{image['ref']}"
    # The device loaded the release's images from its own copy of the .bin when it joined
    # (issue 12: no task start depends on the portal's registry), with the archive's IDs.
    held = cluster.docker("s3", "image", "ls", "--no-trunc", "--format",
                          "{{.Repository}} {{.ID}}").stdout
    assert image["image_id"] in held, held
    # and a pull of the same image from the portal's registry gives that very image
    cluster.docker("s3", "pull", ref, timeout=300)
    assert cluster.docker("s3", "image", "inspect", "--format", "{{.Id}}", ref).stdout.strip() \
        == image["image_id"]


def test_the_device_keeps_its_enrollment_private(cluster):
    modes = cluster.lab.exec("s2", ["stat", "-c", "%a %n", "/etc/dragonball/enrollment.json",
                                    "/etc/dragonball/ca.crt"], check=True).stdout.split("\n")
    assert modes[:2] == ["600 /etc/dragonball/enrollment.json", "644 /etc/dragonball/ca.crt"]


def test_no_secret_of_the_join_reaches_the_log_or_the_screen(cluster):
    kept = json.loads(cluster.lab.exec("s2", ["cat", "/etc/dragonball/enrollment.json"],
                                       check=True).stdout)
    secrets = [kept["registry"]["password"], kept["swarm"]["join_token"], kept["device_token"]]
    log = cluster.lab.exec("s2", ["cat", "/var/log/dragonball/install.log"], check=True).stdout
    assert "join.swarm" in log or "Swarm" in log  # the log is the one of that install
    for secret in secrets + [cluster.codes["s2"]["code"]]:
        assert secret not in log
    for secret in secrets:
        assert secret not in cluster.runs["s2"].output


def test_install_again_on_a_joined_device_changes_nothing(cluster):
    before = cluster.settled_snapshot("s2")
    run = cluster.install("s2")
    assert run.ok and "already installed" in run.output, run.output
    after = cluster.snapshot("s2")
    changed = {k: (sorted(set(before[k]) - set(after[k])), sorted(set(after[k]) - set(before[k])))
               for k in before if before[k] != after[k]}
    assert not changed, (changed, standby_story(cluster))  # {what: (before only, after only)}


def standby_story(cluster) -> str:
    """What tells why a device's files changed: the managers, the standby's log."""
    return "\n".join([cluster.docker("s1", "node", "ls", check=False).stdout,
                      cluster.lab.exec("s2", ["tail", "-40", "/var/log/dragonball/portal.log"]
                                       ).stdout])


# --- a fourth server, months later, through the wizard ----------------------------------------

PS_LOG = "/tmp/every-command-line.log"


def watch_command_lines(lab, server: str) -> None:
    """Every process's command line on `server`, sampled every 50 ms into PS_LOG, until
    `stop_watching` (what any user of the server could read with ps)."""
    loop = (f"while [ ! -e {PS_LOG}.stop ]; do cat /proc/[0-9]*/cmdline 2>/dev/null; "
            "echo; sleep 0.05; done")
    lab.exec(server, ["sh", "-c", f"rm -f {PS_LOG}.stop; nohup sh -c '{loop}' "
                                  f">{PS_LOG} 2>/dev/null &"], check=True)


def seen_in_command_lines(lab, server: str, secrets: list[str]) -> list[str]:
    lab.exec(server, ["touch", f"{PS_LOG}.stop"], check=True)
    time.sleep(0.5)
    assert lab.exec(server, ["grep", "-c", "-a", "-F", "install", PS_LOG]).ok  # it sampled
    return [s[:6] + "..." for s in secrets
            if lab.exec(server, ["grep", "-q", "-a", "-F", s, PS_LOG]).returncode == 0]


def test_a_fourth_server_joins_through_the_wizard_on_a_terminal(cluster):
    code = cluster.codes["s4"]
    watch_command_lines(cluster.lab, "s4")
    argv = cluster.lab.exec_argv("s4", cluster.install_argv(), tty=True, env={
        "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"})
    child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=60,
                          dimensions=(40, 120))
    try:
        child.expect_exact("What will this server be?")
        child.send("\x1b[B\r")                           # a device
        child.expect_exact("This server's address")
        child.expect_exact(cluster.lab.ip("s4"))
        child.send("\r")                                 # its one address
        child.expect_exact("The portal's address")
        child.send(code["portal"] + "\r")
        child.expect_exact("fingerprint")
        child.send(code["ca_fingerprint"] + "\r")
        child.expect_exact("enrollment code")
        child.send(code["code"].lower().replace("-", " ") + "\r")  # typed loosely
        child.expect_exact("Where should DragonBall keep its data?")
        child.send("\r")
        child.expect_exact("Install DragonBall with these answers?")
        child.send("y")
        child.expect_exact("DragonBall is installed", timeout=600)
        child.expect(pexpect.EOF, timeout=60)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
    kept = json.loads(cluster.lab.exec("s4", ["cat", "/etc/dragonball/enrollment.json"],
                                       check=True).stdout)
    secrets = [code["code"], kept["swarm"]["join_token"], kept["registry"]["password"],
               kept["device_token"]]
    assert seen_in_command_lines(cluster.lab, "s4", secrets) == []   # no secret in ps

    def four_ready():
        listing = cluster.docker("s1", "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
        return sorted(listing.stdout.split()[::2]) == ["s1", "s2", "s3", "s4"] and \
            listing.stdout.count("Ready") == 4
    wait_for(four_ready, 60, describe=lambda: cluster.docker("s1", "node", "ls").stdout)


def portal_api(cluster, method: str, path: str) -> requests.Response:
    return requests.request(method, f"https://{cluster.lab.ip('s1')}:8443{path}",
                            auth=("admin", ADMIN_PASSWORD), verify=cluster.ca_file, timeout=60)


def test_a_stranger_with_a_leaked_token_gets_nothing_and_is_removed(cluster, tmp_path):
    """s4 leaves the Swarm and joins it again by hand with a worker token taken from a
    manager (a leak): a node no device is. It runs no task (not even the agent), the portal
    drains and lists it; s2's device token copied to it reports nothing without s2's key;
    removed, it is out of the Swarm, and neither that token nor the one s2 was given at
    enrollment joins anything any more."""
    manager = f"{cluster.lab.ip('s1')}:2377"
    cluster.ca_file = str(tmp_path / "ca.crt")
    (tmp_path / "ca.crt").write_text(cluster.lab.exec("s1", ["cat", "/etc/dragonball/ca.crt"],
                                                      check=True).stdout)
    leaked = cluster.docker("s1", "swarm", "join-token", "-q", "worker").stdout.strip()
    given = json.loads(cluster.lab.exec("s2", ["cat", "/etc/dragonball/enrollment.json"],
                                        check=True).stdout)["swarm"]["join_token"]
    cluster.docker("s4", "swarm", "leave", "--force")
    cluster.docker("s4", "swarm", "join", "--token", leaked, manager, timeout=120)
    node_id = cluster.docker("s4", "info", "-f", "{{.Swarm.NodeID}}").stdout.strip()

    def listed():
        answer = portal_api(cluster, "GET", "/api/v1/devices")
        assert answer.status_code == 200, answer.text
        return [n for n in answer.json()["strangers"]
                if n["node_id"] == node_id and n["availability"] == "drain"]
    wait_for(listed, 60, describe=lambda: portal_api(cluster, "GET", "/api/v1/devices").text)
    # s2's device token copied to the stranger reports nothing: the portal wants it signed
    # with s2's own key, which never left s2
    s2 = json.loads(cluster.lab.exec("s2", ["cat", "/etc/dragonball/enrollment.json"],
                                     check=True).stdout)
    posing = cluster.lab.exec("s4", [
        "curl", "-sS", "--cacert", "/etc/dragonball/ca.crt", "-X", "POST",
        "-H", "Content-Type: application/json", "-H", "@-", "-d",
        json.dumps({"node_id": node_id}),
        f"https://{cluster.lab.ip('s1')}:8443/api/v1/devices/{s2['device_id']}/joined"],
        stdin=f"Authorization: Bearer {s2['device_token']}\n")
    assert "must be signed" in posing.stdout, posing
    tasks = cluster.docker("s1", "node", "ps", node_id, "--format", "{{.Name}}").stdout
    assert tasks.strip() == "", tasks
    removed = portal_api(cluster, "POST", f"/api/v1/devices/{node_id}/remove")
    assert removed.status_code == 200 and removed.json()["tokens_rotated"], removed.text
    assert node_id not in cluster.docker("s1", "node", "ls", "-q").stdout
    cluster.docker("s4", "swarm", "leave", "--force", check=False)
    for token in (leaked, given):
        again = cluster.docker("s4", "swarm", "join", "--token", token, manager,
                               check=False, timeout=120)
        assert again.returncode != 0 and "token" in again.stderr.lower(), again


# --- the firewall: cluster ports for members only (docs/security.md, "The network") ------------

#: Swarm management, the agent (a published port: Docker forwards it), the registry
CLUSTER_PORTS = (2377, 9443, 5000)


def reaches(lab, source: str, address: str, port: int, seconds: int = 3) -> str:
    """"open", "refused" or "timeout": a TCP connect from `source` (bash's /dev/tcp)."""
    done = lab.exec(source, ["timeout", str(seconds), "bash", "-c",
                             f"exec 3<>/dev/tcp/{address}/{port}"])
    return {0: "open", 124: "timeout"}.get(done.returncode, "refused")


def test_a_server_that_is_no_member_reaches_no_cluster_port_and_a_device_does(cluster):
    """s5 (never installed, on the same network) connects to the portal's HTTPS port only;
    the portal's Swarm, agent and registry ports and a device's agent drop it, while s2 (a
    device) reaches them all; the DRAGONBALL chain is jumped to first on every server."""
    lab, s1, s2 = cluster.lab, cluster.lab.ip("s1"), cluster.lab.ip("s2")
    assert reaches(lab, "s5", s1, 8443) == "open"
    found = {(address, port): reaches(lab, "s5", address, port)
             for address, port in [*((s1, p) for p in CLUSTER_PORTS), (s2, 9443)]}
    assert set(found.values()) == {"timeout"}, found
    assert {p: reaches(lab, "s2", s1, p) for p in CLUSTER_PORTS} == dict.fromkeys(
        CLUSTER_PORTS, "open")
    for server in ("s1", "s2", "s3"):
        first = lab.exec(server, ["iptables", "-w", "-S", "INPUT"], check=True).stdout
        assert first.splitlines()[1] == "-A INPUT -j DRAGONBALL", (server, first)
    members = lab.exec("s2", ["cat", "/var/lib/dragonball/firewall/members"], check=True).stdout
    assert {lab.ip(s) for s in ("s1", "s2", "s3", "s4")} <= set(members.split()), members


def test_reset_takes_a_device_out_of_the_cluster_and_its_files_away(cluster):
    """s4 (a worker: s1..s3 are the managers) leaves; what the join wrote is gone."""
    outcome = cluster.lab.exec("s4", [cluster.bin, "--target", TARGET, "reset", "--yes"],
                               timeout=300)
    assert outcome.ok, outcome
    assert cluster.lab.exec("s4", ["test", "-e", "/etc/dragonball"]).returncode == 1
    assert cluster.lab.exec("s4", ["test", "-e", "/var/lib/dragonball/install-journal.json"]
                            ).returncode == 1
    docker_config = cluster.lab.exec("s4", ["cat", "/root/.docker/config.json"]).stdout
    assert ":5000" not in docker_config  # logged out of the portal's registry

    def s4_down():
        listing = cluster.docker("s1", "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
        return "s4 Down" in listing.stdout
    wait_for(s4_down, 60, describe=lambda: cluster.docker("s1", "node", "ls").stdout)
    assert "DRAGONBALL" not in cluster.lab.exec("s4", ["iptables", "-w", "-S"]).stdout


def test_a_removed_device_reaches_no_cluster_port_any_more(cluster, tmp_path):
    """s4, reset but still a device of the portal, reaches the portal's cluster ports;
    once `devices remove` forgot it, every server drops it at once."""
    lab, s1 = cluster.lab, cluster.lab.ip("s1")
    if not getattr(cluster, "ca_file", None):
        cluster.ca_file = str(tmp_path / "ca.crt")
        (tmp_path / "ca.crt").write_text(lab.exec("s1", ["cat", "/etc/dragonball/ca.crt"],
                                                  check=True).stdout)
    assert reaches(lab, "s4", s1, 2377) == "open"
    removed = portal_api(cluster, "POST", "/api/v1/devices/s4/remove")
    assert removed.status_code == 200, removed.text

    def dropped():
        return {p: reaches(lab, "s4", s1, p, seconds=2) for p in CLUSTER_PORTS} == \
            dict.fromkeys(CLUSTER_PORTS, "timeout")
    wait_for(dropped, 30, describe=lambda: lab.exec("s1", ["iptables", "-w", "-S",
                                                           "DRAGONBALL"]).stdout)
    assert lab.ip("s4") not in lab.exec("s1", ["cat", "/var/lib/dragonball/firewall/members"],
                                        check=True).stdout


def test_a_manager_is_removed_from_another_managers_portal(cluster, tmp_path):
    """s3 (a manager: raft, a portal, an etcd member) removed through s1's portal: demoted,
    its etcd member removed, out of the Swarm; s1 and s2 keep both quorums (the portal still
    writes: a new code), and s3 reaches no cluster port. The answer warns that s3's disk
    holds the CA keys."""
    lab, s1 = cluster.lab, cluster.lab.ip("s1")
    if not getattr(cluster, "ca_file", None):
        cluster.ca_file = str(tmp_path / "ca.crt")
        (tmp_path / "ca.crt").write_text(lab.exec("s1", ["cat", "/etc/dragonball/ca.crt"],
                                                  check=True).stdout)
    removed = portal_api(cluster, "POST", "/api/v1/devices/s3/remove")
    assert removed.status_code == 200, removed.text
    body = removed.json()
    assert body["demoted"] is True and body["etcd_member_removed"] is True, body
    assert "CA keys" in body["warning"], body
    listing = cluster.docker("s1", "node", "ls", "--format",
                             "{{.Hostname}} {{.ManagerStatus}}").stdout
    assert "s3" not in listing and listing.count("Leader") + listing.count("Reachable") == 2, \
        listing
    code = requests.post(f"https://{s1}:8443/api/v1/codes", json={"ttl": "1h"},
                         auth=("admin", ADMIN_PASSWORD), verify=cluster.ca_file, timeout=60)
    assert code.status_code == 200, code.text        # etcd: 2 of 2 members answer

    def dropped():
        return reaches(lab, "s3", s1, 2377, seconds=2) == "timeout"
    wait_for(dropped, 30, describe=lambda: lab.exec("s1", ["iptables", "-w", "-S",
                                                           "DRAGONBALL"]).stdout)


# --- bad answers and a corrupt .bin change nothing --------------------------------------------

def bad_answers(cluster, case: str) -> tuple[dict, str]:
    """(answers for s5, what the error must say)."""
    unused, lab = cluster.codes["unused"], cluster.lab
    good = cluster.device_answers("s5", unused)
    subnet = lab.ip("s1").rsplit(".", 1)[0]
    if case == "unreachable portal":
        return {**good, "portal": f"{subnet}.99"}, f"cannot reach the portal at {subnet}.99:8443"
    if case == "wrong code":
        from dragonball.shared import codes
        return {**good, "enrollment_code": codes.new_code()}, "refused the enrollment code"
    if case == "used code":
        return cluster.device_answers("s5", cluster.codes["s2"]), "refused the enrollment code"
    if case == "expired code":
        wait_for(lambda: time.time() > cluster.expiring_since + 62, 70)  # last: seldom waits
        return cluster.device_answers("s5", cluster.codes["expiring"]), "expired"
    if case == "wrong fingerprint":
        return {**good, "ca_fingerprint": "SHA256:" + "0" * 64}, "refusing to send it the"
    if case == "invalid address":
        return {**good, "address": "10.255.255.1"}, "not an address of this server"
    raise KeyError(case)


@pytest.mark.parametrize("case", ["unreachable portal", "wrong code", "used code",
                                  "wrong fingerprint", "invalid address", "expired code"])
def test_bad_answers_are_refused_clearly_and_change_nothing(cluster, case):
    answers, expected = bad_answers(cluster, case)
    cluster.write_answers("s5", answers)
    before = cluster.snapshot("s5")
    run = cluster.install("s5")
    assert run.outcome.returncode == 2, run.output
    assert expected in " ".join(run.output.split()), run.output
    assert cluster.snapshot("s5") == before
    assert before["present"] == []  # no journal, no engine, no /etc/dragonball


def test_a_hostname_the_cluster_has_already_is_refused_and_changes_nothing(cluster):
    """s5 named s2 for a moment (its kernel hostname; /etc untouched): the portal says 409."""
    cluster.write_answers("s5", cluster.device_answers("s5", cluster.codes["unused"]))
    before = cluster.snapshot("s5")
    cluster.lab.exec("s5", ["hostname", "s2"], check=True)
    try:
        run = cluster.install("s5")
    finally:
        cluster.lab.exec("s5", ["hostname", "s5"], check=True)
    assert run.outcome.returncode == 2, run.output
    said = " ".join(run.output.split())
    assert "the portal refused the name 's2'" in said and "already" in said, run.output
    assert cluster.snapshot("s5") == before


def test_a_corrupt_bin_changes_nothing(cluster):
    corrupt = f"{TARGET}/corrupt.bin"
    cluster.lab.exec("s5", ["sh", "-c", f"cp {cluster.bin} {corrupt} && printf X | dd "
                                        f"of={corrupt} bs=1 seek=50000000 conv=notrunc "
                                        "2>/dev/null"], check=True)
    cluster.write_answers("s5", cluster.device_answers("s5", cluster.codes["unused"]))
    before = cluster.snapshot("s5")
    outcome = cluster.lab.exec("s5", [corrupt, "--target", TARGET, "install", "--answers",
                                      f"{TARGET}/a.yaml", "--yes"], timeout=300)
    assert outcome.returncode == 81, outcome  # the stub's E_CORRUPT
    assert "corrupt or was altered" in outcome.stderr and "Nothing was changed" in outcome.stderr
    assert cluster.snapshot("s5") == before
    cluster.lab.exec("s5", ["rm", "-f", corrupt], check=True)


# --- nothing left the lab ---------------------------------------------------------------------

def test_the_lab_is_internal_and_not_one_packet_left_it(cluster, docker_cli):
    assert docker_cli.inspect("network", cluster.lab.spec.network)["Internal"] is True
    assert cluster.lab.leak_packets() == 0

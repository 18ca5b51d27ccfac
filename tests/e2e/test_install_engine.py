"""The real .bin prepares a bare server and installs its bundled engine, offline.

One bare Debian 12 server of the lab (systemd as PID 1, no docker, no python3) on an
internal network: `DragonBall-<version>.bin --target /root install --answers a.yaml
--yes --base-only` as a portal: the install limited to OS preparation and the engine (the
portal's own steps have their tests in test_install_cluster.py). Then: a re-run changes
nothing; reset restores /etc as it was; a `kill -9` of the whole install in the middle of
its files, then a re-run, completes. No package manager runs: the engine is a tree of files.
And once on a server whose PID 1 is not systemd: the engine runs as a dockerd of its own.
"""

from __future__ import annotations

import json
import posixpath
import re
import time

import pytest

from support import LABELS, RUN_ID
from tests.lab.plan import CAPABILITY_OPTIONS

ANSWERS = "/root/a.yaml"
PASSWORD = "Engine test passphrase 42"
JOURNAL = "/var/lib/dragonball/install-journal.json"
#: OS preparation and the engine only (installer/roles.py, BASE_ONLY)
BASE_ONLY = "--base-only"
OUR_STEPS = ["os.kernel", "os.limits", "engine.files", "engine.units", "engine.config",
             "engine.start", "os.firewall", "os.firewall_chain"]
ENGINE_DIR = "/opt/dragonball/engine"
#: Every file under /etc with its mode and content: what install changes and reset restores.
#: Not /etc/group- and /etc/gshadow-: the backups groupadd and groupdel rewrite.
ETC = ("find /etc -xdev -printf '%p %y %m\\n' | sort; "
       "find /etc -xdev -type f ! -name group- ! -name gshadow- -exec sha256sum {} + | sort -k 2")


class Server:
    def __init__(self, lab, binary: str) -> None:
        self.lab, self.binary = lab, binary

    def sh(self, script: str, **kwargs):
        return self.lab.exec("s1", ["bash", "-c", script], **kwargs)

    def install(self, timeout: float = 600):
        began = time.monotonic()
        outcome = self.lab.exec("s1", [self.binary, "--target", "/root", "install", "--answers",
                                       ANSWERS, "--yes", BASE_ONLY], timeout=timeout)
        return outcome, time.monotonic() - began

    def reset(self):
        return self.lab.exec("s1", [self.binary, "--target", "/root", "reset", "--yes"],
                             timeout=300)

    def journal(self) -> dict | None:
        outcome = self.sh(f"cat {JOURNAL}")
        return json.loads(outcome.stdout) if outcome.ok else None

    def etc(self) -> str:
        return self.sh(ETC, check=True).stdout


def step_seconds(journal: dict, prefix: str) -> float:
    return sum(r["finished"] - r["started"] for k, r in journal["steps"].items()
               if k.startswith(prefix) and r["finished"])


@pytest.fixture(scope="module")
def server(make_lab, release_bin):
    lab = make_lab(servers=1, internal=True)
    path, _ = release_bin
    binary = lab.copy_in("s1", path)
    lab.exec("s1", ["sh", "-c", f"umask 077; cat >{ANSWERS}"], check=True,
             stdin=f"role: portal\nadmin_password: {PASSWORD}\n")
    return Server(lab, binary)


@pytest.fixture(scope="module")
def pristine_etc(server) -> str:
    return server.etc()


@pytest.fixture(scope="module")
def installed(server, pristine_etc):
    outcome, seconds = server.install()
    assert outcome.ok, outcome.stdout + outcome.stderr
    journal = server.journal()
    print(f"\ninstall (OS preparation + engine) through the .bin: {seconds:.1f} s wall; "
          f"engine steps {step_seconds(journal, 'engine.'):.1f} s "
          f"(files {step_seconds(journal, 'engine.files'):.2f} s, units "
          f"{step_seconds(journal, 'engine.units'):.2f} s, start "
          f"{step_seconds(journal, 'engine.start'):.1f} s); OS steps "
          f"{step_seconds(journal, 'os.'):.1f} s")
    return outcome, journal


def test_the_bundled_engine_runs_and_starts_with_systemd(server, installed):
    info = server.sh("docker info --format '{{.ServerVersion}} {{.Driver}} {{.LoggingDriver}}'",
                     check=True).stdout.split()
    assert info[0].startswith("20.10.") and info[1:] == ["overlay2", "json-file"]
    state = server.sh("systemctl is-active docker containerd; systemctl is-enabled docker "
                      "containerd").stdout.split()
    assert state == ["active", "active", "enabled", "enabled"]
    assert server.sh("readlink /usr/local/bin/docker").stdout.strip() == f"{ENGINE_DIR}/bin/docker"
    # no package manager was used: dpkg knows no engine package
    assert server.sh("dpkg -l docker.io containerd runc 2>/dev/null | grep -c '^ii'"
                     ).stdout.strip() == "0"


def test_a_container_runs_on_the_private_tree(server, installed):
    """runc re-executes itself (runc init) and the shim, containerd and dockerd find each
    other through the unit's PATH: a container from a one-file image (the static docker-init)
    starts, runs and returns its output."""
    outcome = server.sh(f"tar -C {ENGINE_DIR}/bin -c docker-init | docker import - tree:check "
                        "&& docker run --rm --init tree:check /docker-init --version && "
                        "docker image rm tree:check", timeout=120)
    assert outcome.ok and "tini version" in outcome.stdout, outcome.stdout + outcome.stderr


def test_every_program_of_the_tree_needs_nothing_of_the_servers_libraries(server, installed):
    """Each dynamic program names the tree's loader; ldd through that loader finds every
    library in the tree (none from /lib or /usr/lib)."""
    listing = server.sh(f"for f in {ENGINE_DIR}/bin/*; do echo \"== $f\"; "
                        f"{ENGINE_DIR}/lib/ld-linux-x86-64.so.2 --list $f 2>&1; done",
                        check=True).stdout
    found = [posixpath.normpath(p) for p in re.findall(r"=> (\S+)", listing)]
    assert found and all(p.startswith(f"{ENGINE_DIR}/lib/") for p in found), listing


def test_nothing_tried_to_leave_the_lab(server, installed):
    assert server.lab.leak_packets() == 0


def test_the_journal_lists_every_step_done(installed):
    _, journal = installed
    assert list(journal["steps"]) == OUR_STEPS
    assert all(r["state"] == "done" for r in journal["steps"].values())
    assert journal["finished"]


def test_daemon_json_rotates_container_logs(server, installed):
    config = json.loads(server.sh("cat /etc/docker/daemon.json", check=True).stdout)
    assert config["log-driver"] == "json-file"
    assert config["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert config["default-ulimits"]["nofile"]["Soft"] > 1024


def test_kernel_values_are_applied_and_ports_opened(server, installed):
    values = server.sh("sysctl -n net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables "
                       "fs.inotify.max_user_instances fs.inotify.max_user_watches",
                       check=True).stdout.split()
    assert values[:2] == ["1", "1"] and int(values[2]) >= 8192 and int(values[3]) >= 524288
    assert "net.ipv4.ip_forward = 1" in server.sh("cat /etc/sysctl.d/90-dragonball.conf").stdout
    # no rule per port: the DRAGONBALL chain, jumped to first, accepts this server (the only
    # member of a lone server) on the cluster ports and drops the others; 8443 from anywhere
    assert server.sh("iptables -S INPUT", check=True).stdout.splitlines()[1] == \
        "-A INPUT -j DRAGONBALL"
    rules = server.sh("iptables -S DRAGONBALL", check=True).stdout
    assert "-A DRAGONBALL -p tcp -m tcp --dport 8443 -j ACCEPT" in rules, rules
    members = re.findall(r"-s (\S+) -p tcp -m multiport --dports (\S+) -j ACCEPT", rules)
    # Swarm, the agent, etcd (any server may become a manager), the registry
    assert {ports for _, ports in members} == {"2377,2379,2380,5000,7946,9443"}, rules
    assert "127.0.0.0/8" in {source for source, _ in members}, rules
    assert "-A DRAGONBALL -p udp -m multiport --dports 4789,7946 -j DROP" in rules, rules
    assert server.sh("systemctl is-enabled dragonball-firewall.path").stdout.strip() == "enabled"


def test_the_log_holds_no_password(server, installed):
    outcome, _ = installed
    assert PASSWORD not in outcome.stdout + outcome.stderr
    log = server.sh("stat -c %a /var/log/dragonball/install.log; "
                    "cat /var/log/dragonball/install.log", check=True).stdout
    assert log.startswith("600\n") and "engine.files" in log and PASSWORD not in log


def test_a_re_run_says_finished_and_changes_nothing(server, installed):
    before = server.sh(f"{ETC}; sha256sum {JOURNAL}; iptables -S; "
                       "systemctl show -p ActiveEnterTimestamp docker", check=True).stdout
    outcome, seconds = server.install()
    assert outcome.ok and "already installed" in outcome.stdout, outcome.stdout
    after = server.sh(f"{ETC}; sha256sum {JOURNAL}; iptables -S; "
                      "systemctl show -p ActiveEnterTimestamp docker", check=True).stdout
    assert after == before
    print(f"\na finished install run again: {seconds:.1f} s")


@pytest.fixture(scope="module")
def after_reset(server, installed, pristine_etc):
    began = time.monotonic()
    outcome = server.reset()
    assert outcome.ok, outcome.stdout + outcome.stderr
    print(f"\nreset (engine stopped and removed, files and values back): "
          f"{time.monotonic() - began:.1f} s")
    return outcome


def test_reset_restores_etc_and_takes_the_engine_away(server, after_reset, pristine_etc):
    assert "reset done" in after_reset.stdout
    assert server.sh("test -e /etc/sysctl.d/90-dragonball.conf").returncode == 1
    assert server.sh("test -e /etc/docker/daemon.json").returncode == 1
    assert server.sh("command -v docker dockerd containerd").stdout == ""
    assert server.sh(f"test -e {ENGINE_DIR} || test -e /etc/systemd/system/docker.service || "
                     "test -e /etc/systemd/system/containerd.service || "
                     "test -L /usr/local/bin/docker").returncode == 1
    assert server.sh("systemctl cat docker.service").returncode != 0  # systemd forgot it
    assert server.sh(f"test -e {JOURNAL} || test -e /var/lib/dragonball").returncode == 1
    assert "dragonball" not in server.sh("iptables -S INPUT", check=True).stdout
    assert "DRAGONBALL" not in server.sh("iptables -S; ip6tables -S", check=True).stdout
    assert server.sh("test -e /usr/local/libexec/dragonball-firewall").returncode == 1
    assert server.etc() == pristine_etc


def test_kill_9_during_the_engine_then_a_re_run_completes(server, after_reset, pristine_etc):
    # The whole install (stub and runtime) killed at once while the engine's files are being
    # written: a watcher on the server kills the group as soon as a half-written file exists.
    server.lab.exec("s1", ["sh", "-c", "setsid sh -c 'echo $$ >/root/install.pgid; exec "
                           f"{server.binary} --target /root install --answers {ANSWERS} --yes "
                           f"{BASE_ONLY}' </dev/null >/root/killed.log 2>&1 &"], check=True)
    watcher = server.sh(
        "end=$(($(date +%s) + 120)); while [ $(date +%s) -lt $end ]; do "
        f"if ls {ENGINE_DIR}/*/*.part >/dev/null 2>&1; then "
        "/bin/kill -KILL -- -$(cat /root/install.pgid); echo killed; exit 0; fi; done; "
        "exit 1", timeout=150)
    assert watcher.ok, server.sh("cat /root/killed.log").stdout
    time.sleep(0.5)
    journal = server.journal()
    assert journal["steps"]["engine.files"]["state"] == "running" and not journal["finished"]
    assert server.sh(f"ls {ENGINE_DIR}/*/*.part").ok  # left half-written

    outcome, seconds = server.install()
    assert outcome.ok, outcome.stdout + outcome.stderr
    assert "resuming" in outcome.stdout
    journal = server.journal()
    print(f"\nthe install resumed after kill -9 in the engine's files: {seconds:.1f} s "
          f"(files {step_seconds(journal, 'engine.files'):.2f} s, start "
          f"{step_seconds(journal, 'engine.start'):.1f} s)")
    assert server.sh("docker info --format '{{.ServerVersion}}'").stdout.startswith("20.10.")
    assert not server.sh(f"ls {ENGINE_DIR}/*/*.part").ok
    journal = server.journal()
    assert journal["finished"] and all(r["state"] == "done" for r in journal["steps"].values())
    # What the killed run found is what reset restores: the engine was not there.
    assert journal["steps"]["engine.files"]["changes"]["tree"]["path"] == ENGINE_DIR

    assert server.reset().ok
    assert server.etc() == pristine_etc


# --- a server without systemd: the documented fallback -------------------------------------

@pytest.fixture
def server_without_systemd(docker_cli, bare_image, release_bin):
    """A bare server whose PID 1 is not systemd (a plain container's `sleep`), on an
    internal network of its own, with the lab's capability set and a /var/lib/docker volume."""
    name = f"dbt{RUN_ID}-nosystemd"
    labels = [arg for k, v in LABELS.items() for arg in ("--label", f"{k}={v}")]
    docker_cli("network", "create", "--internal", *labels, name)
    docker_cli("volume", "create", *labels, name)
    try:
        docker_cli("run", "-d", "--name", name, "--hostname", "nosystemd", *labels,
                   "--network", name, *CAPABILITY_OPTIONS, "--tmpfs", "/run",
                   "--tmpfs", "/tmp:exec,mode=1777", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                   "-v", f"{name}:/var/lib/docker", "--entrypoint", "sh", bare_image,
                   "-c", "mount -o remount,rw /sys; exec sleep infinity")
        path, _ = release_bin
        docker_cli("cp", str(path), f"{name}:/root/", timeout=600)
        docker_cli("exec", "-i", name, "sh", "-c", f"umask 077; cat >{ANSWERS}",
                   stdin=f"role: portal\nadmin_password: {PASSWORD}\n")
        yield name, f"/root/{path.name}"
    finally:
        docker_cli("rm", "-f", "-v", name, check=False)
        docker_cli("network", "rm", name, check=False)
        docker_cli("volume", "rm", "-f", name, check=False)


def test_without_systemd_dockerd_runs_on_its_own_and_reset_stops_it(docker_cli,
                                                                    server_without_systemd):
    name, binary = server_without_systemd

    def sh(script: str, **kwargs):
        return docker_cli("exec", name, "sh", "-c", script, check=False, timeout=600, **kwargs)

    assert sh("cat /proc/1/comm").stdout.strip() == "sleep"
    outcome = sh(f"{binary} --target /root install --answers {ANSWERS} --yes {BASE_ONLY}")
    assert outcome.ok, outcome.stdout + outcome.stderr
    pid = sh("cat /run/dragonball/dockerd.pid").stdout.strip()
    assert sh(f"ps -o sid= -p {pid}").stdout.strip() == pid  # a session of its own
    assert sh("docker info --format '{{.ServerVersion}}'").stdout.startswith("20.10.")
    assert "dockerd" in sh("cat /var/lib/dragonball/install-journal.json").stdout

    outcome = sh(f"{binary} --target /root reset --yes")
    assert outcome.ok, outcome.stdout + outcome.stderr
    # Stopped (a zombie at most: this PID 1 reaps nobody), its folder and the engine gone.
    assert sh(f"ps -o stat= -p {pid}").stdout.strip() in ("", "Z", "Zs")
    assert sh("test -e /run/dragonball || test -e /etc/docker || test -e /usr/bin/docker || "
              f"test -e {ENGINE_DIR}").returncode == 1

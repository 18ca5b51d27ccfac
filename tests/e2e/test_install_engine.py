"""The real .bin prepares a bare server and installs its bundled engine, offline.

One bare Debian 12 server of the lab (systemd as PID 1, no docker, no python3) on an
internal network: `DragonBall-<version>.bin --target /root install --answers a.yaml
--yes --base-only` as a portal: the install limited to OS preparation and the engine (the
portal's own steps have their tests in test_install_cluster.py). Then: a re-run changes
nothing; reset restores /etc as it was; a `kill -9` of the whole install in the middle of
dpkg, then a re-run, completes.
And once on a server whose PID 1 is not systemd: the engine runs as a dockerd of its own.
"""

from __future__ import annotations

import json
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
OUR_STEPS = ["os.kernel", "os.limits", "engine.unpack", "engine.packages", "engine.config",
             "engine.start", "os.firewall", "os.firewall_chain"]
#: Every file under /etc with its mode and content: what install changes and reset restores.
#: Not /etc/group- and /etc/gshadow-: the backups groupadd and groupdel rewrite (docker.io's
#: postinst adds the docker group, reset deletes it).
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
          f"(packages {step_seconds(journal, 'engine.packages'):.1f} s, start "
          f"{step_seconds(journal, 'engine.start'):.1f} s); OS steps "
          f"{step_seconds(journal, 'os.'):.1f} s")
    return outcome, journal


def test_the_bundled_engine_runs_and_starts_with_systemd(server, installed):
    info = server.sh("docker info --format '{{.ServerVersion}} {{.Driver}} {{.LoggingDriver}}'",
                     check=True).stdout.split()
    assert info[0].startswith("20.10.") and info[1:] == ["overlay2", "json-file"]
    state = server.sh("systemctl is-active docker; systemctl is-enabled docker").stdout.split()
    assert state == ["active", "enabled"]
    assert server.sh("test -e /usr/sbin/policy-rc.d").returncode == 1


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
    assert log.startswith("600\n") and "engine.packages" in log and PASSWORD not in log


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
    print(f"\nreset (engine stopped and purged, files and values back): "
          f"{time.monotonic() - began:.1f} s")
    return outcome


def test_reset_restores_etc_and_takes_the_engine_away(server, after_reset, pristine_etc):
    assert "reset done" in after_reset.stdout
    assert server.sh("test -e /etc/sysctl.d/90-dragonball.conf").returncode == 1
    assert server.sh("test -e /etc/docker/daemon.json").returncode == 1
    assert server.sh("command -v docker dockerd containerd").stdout == ""
    assert server.sh(f"test -e {JOURNAL} || test -e /var/lib/dragonball").returncode == 1
    assert "dragonball" not in server.sh("iptables -S INPUT", check=True).stdout
    assert "DRAGONBALL" not in server.sh("iptables -S; ip6tables -S", check=True).stdout
    assert server.sh("test -e /usr/local/libexec/dragonball-firewall").returncode == 1
    assert server.etc() == pristine_etc


def test_kill_9_during_the_engine_then_a_re_run_completes(server, after_reset, pristine_etc):
    # The whole install (stub, runtime, dpkg and its children) killed at once, mid-dpkg.
    server.lab.exec("s1", ["sh", "-c", "setsid sh -c 'echo $$ >/root/install.pgid; exec "
                           f"{server.binary} --target /root install --answers {ANSWERS} --yes "
                           f"{BASE_ONLY}' </dev/null >/root/killed.log 2>&1 &"], check=True)
    deadline = time.monotonic() + 120
    while server.sh("pgrep -x dpkg").returncode != 0:
        assert time.monotonic() < deadline, server.sh("cat /root/killed.log").stdout
        time.sleep(0.1)
    time.sleep(1)
    server.sh("/bin/kill -KILL -- -$(cat /root/install.pgid)", check=True)
    time.sleep(0.5)
    assert server.sh("pgrep -x dpkg").returncode == 1
    journal = server.journal()
    assert journal["steps"]["engine.packages"]["state"] == "running" and not journal["finished"]
    assert server.sh("dpkg --audit").stdout.strip(), "dpkg was not left half-way"

    outcome, seconds = server.install()
    assert outcome.ok, outcome.stdout + outcome.stderr
    assert "resuming" in outcome.stdout
    journal = server.journal()
    print(f"\nthe install resumed after kill -9 in dpkg: {seconds:.1f} s (packages "
          f"{step_seconds(journal, 'engine.packages'):.1f} s, start "
          f"{step_seconds(journal, 'engine.start'):.1f} s)")
    assert server.sh("docker info --format '{{.ServerVersion}}'").stdout.startswith("20.10.")
    assert server.sh("dpkg --audit").stdout.strip() == ""
    assert server.sh("test -e /usr/sbin/policy-rc.d").returncode == 1
    journal = server.journal()
    assert journal["finished"] and all(r["state"] == "done" for r in journal["steps"].values())
    # What the killed run found is what reset restores: the engine was not there.
    assert "docker.io" in journal["steps"]["engine.packages"]["changes"]["packages"]["installed"]

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
    assert sh("test -e /run/dragonball || test -e /etc/docker || test -e /usr/bin/docker"
              ).returncode == 1

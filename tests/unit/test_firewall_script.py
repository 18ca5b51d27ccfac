"""installer/firewall.sh, the DRAGONBALL chain's script, run by sh with fake iptables tools on
PATH that record their argv and stdin: hostile lines in the members file are data, the
chain is replaced in one restore, the jumps are inserted first when missing (never moved),
remove takes everything away.

The fakes shadow all four tools (iptables, ip6tables and their -restore): the script
must never reach this machine's own firewall."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

import pytest

from dragonball.installer import firewall as installer_firewall
from dragonball.shared import firewall as fw

SCRIPT = installer_firewall.SCRIPT_SOURCE
TOOLS = ("iptables", "ip6tables", "iptables-restore", "ip6tables-restore")
FAKE = """#!/bin/sh
name=$(basename "$0")
echo "$name $*" >> "$LOG/argv"
case "$name" in
  *-restore) cat >> "$LOG/$name.in"
             if [ -n "${FAKE_CHANGE:-}" ] && [ ! -e "$LOG/changed" ]; then   # the agent, meanwhile
                 : > "$LOG/changed"
                 printf '%s\n' "$FAKE_CHANGE" > "$DRAGONBALL_FIREWALL_DIR/members"
             fi
             exit "${FAKE_RESTORE_EXIT:-0}" ;;
esac
case "$*" in
  *"-S DOCKER-USER"*) [ -n "${FAKE_DOCKER_USER:-}" ] || exit 1
                      printf -- '-N DOCKER-USER\\n%s\\n' "$FAKE_DOCKER_USER" ;;
  *" -D "*) exit 1 ;;
  *" -C "*"-j DRAGONBALL"*) [ -n "${FAKE_JUMPS:-}" ] || exit 1 ;;
esac
exit 0
"""


class Run:
    def __init__(self, tmp: pathlib.Path, outcome: subprocess.CompletedProcess) -> None:
        self.tmp, self.outcome = tmp, outcome

    @property
    def argv(self) -> list[str]:
        path = self.tmp / "log" / "argv"
        return path.read_text().splitlines() if path.exists() else []

    def restored(self, family: int = 4) -> str:
        path = self.tmp / "log" / f"{'ip6' if family == 6 else 'ip'}tables-restore.in"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def run(tmp_path):
    bin_dir, data, log = tmp_path / "bin", tmp_path / "data", tmp_path / "log"
    for folder in (bin_dir, data, log):
        folder.mkdir()
    for name in TOOLS:
        (bin_dir / name).write_text(FAKE)
        (bin_dir / name).chmod(0o755)
    path = f"{bin_dir}:/usr/bin:/bin"
    assert all(shutil.which(t, path=path) == str(bin_dir / t) for t in TOOLS)

    def go(*args: str, members: str | None = "10.0.0.1\n", allow: str | None = None,
           **env: str) -> Run:
        for name, text in (("members", members), ("allow", allow)):
            if text is not None:
                (data / name).write_text(text)
        outcome = subprocess.run(
            ["sh", str(SCRIPT), *args], capture_output=True, text=True, timeout=30, cwd=tmp_path,
            env={"PATH": path, "LOG": str(log), "DRAGONBALL_FIREWALL_DIR": str(data), **env})
        return Run(tmp_path, outcome)
    return go


def accepted(text: str) -> list[str]:
    return re.findall(r"-A DRAGONBALL -s (\S+) -p tcp .* -j ACCEPT", text)


def test_the_chain_is_replaced_in_one_restore_members_and_allow_accepted(run):
    done = run(members="# the cluster\n10.0.0.1\n  10.0.0.2  \n10.0.0.1\n\nfd00::7\n",
               allow="192.168.7.0/24\n")
    assert done.outcome.returncode == 0, done.outcome.stderr
    text = done.restored()
    assert text.startswith("*filter\n:DRAGONBALL - [0:0]\n:DRAGONBALL-FORWARD - [0:0]\n")
    assert "\n-A DRAGONBALL -i lo -j RETURN\n" in text
    assert "-m conntrack --ctstate ESTABLISHED,RELATED -j RETURN" in text
    assert "-A DRAGONBALL -p tcp --dport 8443 -j ACCEPT" in text  # the portal, from anywhere
    assert accepted(text) == ["10.0.0.1", "10.0.0.2", "192.168.7.0/24"]
    assert text.rstrip().endswith("-p udp -m multiport --dports 4789,7946 -j DROP\nCOMMIT")
    assert accepted(done.restored(6)) == ["fd00::7"]
    assert "iptables-restore -w --noflush" in done.argv


@pytest.mark.parametrize("line", [
    "1.2.3.4; rm -rf /", "$(touch PWNED)", "`touch PWNED`", "10.0.0.1 && touch PWNED",
    "10.0.0.1\ttouch", "999.1.1.1", "10.0.0.0/33", "10.0.0.1/", "1.2.3", "fd00:::1",
    "1:2:3:4:5:6:7:8:9", "-j ACCEPT", "10.0.0.1 -j ACCEPT", "a" * 300, "::ffff:1.2.3.4",
    "\x1b[31m10.0.0.9", "0x0a.0.0.1", "010.0.0.1", "10.0.0.0/08", "1::2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7", ":1::2", "1::2:"])
def test_a_hostile_or_bad_line_is_skipped_with_a_message_and_never_run(run, tmp_path, line):
    done = run(members=f"10.0.0.1\n{line}\n10.0.0.2\n")
    assert done.outcome.returncode == 0, done.outcome.stderr
    assert accepted(done.restored()) == ["10.0.0.1", "10.0.0.2"]
    assert accepted(done.restored(6)) == []
    assert "line 2 skipped" in done.outcome.stderr
    assert done.outcome.stderr.count("skipped") == 1  # told once, not per family
    assert "\x1b" not in done.outcome.stderr
    assert not (tmp_path / "PWNED").exists()
    assert set(re.findall(r"-s (\S+)", done.restored())) == {"10.0.0.1", "10.0.0.2"}
    # the head, DRAGONBALL-FORWARD's 8, 2 members' 4, the drops and COMMIT
    assert len(done.restored().splitlines()) == 6 + 8 + 4 + 3


@pytest.mark.parametrize("line", ["::", "::1", "1::", "fd00::/64", "1:2:3:4:5:6:7::",
                                  "::2:3:4:5:6:7:8", "FD00:0:0:0:0:0:0:1/128"])
def test_every_ipv6_form_goes_to_ip6tables_only(run, line):
    done = run(members=f"{line}\n")
    assert accepted(done.restored(6)) == [line] and accepted(done.restored()) == []
    assert "skipped" not in done.outcome.stderr


def test_what_was_applied_is_copied_to_applied_and_only_then(run, tmp_path):
    done = run(members="10.0.0.1\n")
    assert (tmp_path / "data" / "applied").read_text() == "10.0.0.1\n"
    assert not (tmp_path / "data" / ".applying").exists()
    failed = run(members="10.0.0.2\n", FAKE_RESTORE_EXIT="1")
    assert failed.outcome.returncode == 1
    assert (tmp_path / "data" / "applied").read_text() == "10.0.0.1\n"   # still the old one
    assert done.outcome.returncode == 0


def test_a_members_file_replaced_during_a_pass_gets_a_pass_of_its_own(run, tmp_path):
    done = run(members="10.0.0.1\n", FAKE_CHANGE="10.0.0.7")
    assert done.outcome.returncode == 0, done.outcome.stderr
    assert [accepted(t) for t in done.restored().split("COMMIT")[:-1]] == [
        ["10.0.0.1"], ["10.0.0.7"]]
    assert (tmp_path / "data" / "applied").read_text() == "10.0.0.7\n"


def test_an_empty_file_leaves_only_loopback_and_the_drops(run):
    done = run(members="")
    assert done.outcome.returncode == 0 and accepted(done.restored()) == []
    assert "-j DROP" in done.restored()


def test_too_many_lines_are_cut_at_the_limit(run):
    lines = "".join(f"10.{i // 250}.{i % 250}.1\n" for i in range(2100))
    done = run(members=lines)
    assert len(accepted(done.restored())) == 2000
    assert "more than 2000 lines" in done.outcome.stderr


def test_the_jump_is_inserted_first_when_missing_and_never_moved(run, tmp_path):
    done = run()
    assert "iptables -w -I INPUT 1 -j DRAGONBALL" in done.argv
    (tmp_path / "log" / "argv").unlink()
    again = run(FAKE_JUMPS="1")   # there already, wherever the administrator's rules put it
    assert "iptables -w -C INPUT -j DRAGONBALL" in again.argv
    assert not any(" -I " in a or " -D " in a for a in again.argv)


def test_docker_user_gets_the_jump_for_forwarded_connections_only_when_it_exists(run):
    without = run()
    assert not any("-I DOCKER-USER" in a for a in without.argv)
    done = run(FAKE_DOCKER_USER="-A DOCKER-USER -j RETURN")
    assert "iptables -w -I DOCKER-USER 1 -j DRAGONBALL-FORWARD" in done.argv
    # on to DRAGONBALL: connections DNATed from a cluster port, by their original port
    forwarded = re.findall(r"-A DRAGONBALL-FORWARD -p (\w+) -m conntrack --ctstate DNAT "
                           r"--ctorigdstport (\d+) -j DRAGONBALL\n", done.restored())
    assert set(forwarded) == {(p.protocol, str(p.number)) for p in fw.cluster_ports()}


def test_no_members_file_changes_nothing(run):
    done = run(members=None)
    assert done.outcome.returncode == 2 and "members is missing" in done.outcome.stderr
    assert done.argv == []


def test_a_failed_restore_keeps_the_chain_as_it_was_and_says_so(run):
    done = run(FAKE_RESTORE_EXIT="1")
    assert done.outcome.returncode == 1 and "as it was" in done.outcome.stderr
    assert not any(" -I " in a for a in done.argv)


def test_remove_takes_the_jumps_and_the_chain_away_for_both_families(run):
    done = run("remove")
    assert done.outcome.returncode == 0
    for tool in ("iptables", "ip6tables"):
        assert f"{tool} -w -D INPUT -j DRAGONBALL" in done.argv
        assert f"{tool} -w -D DOCKER-USER -j DRAGONBALL-FORWARD" in done.argv
        for chain in ("DRAGONBALL-FORWARD", "DRAGONBALL"):
            assert f"{tool} -w -F {chain}" in done.argv and f"{tool} -w -X {chain}" in done.argv
    assert [" ".join(a) for a in installer_firewall.remove_argvs("iptables")] == [
        a for a in done.argv if a.startswith("iptables ")]


def test_a_wrong_argument_is_a_usage_error(run):
    assert run("flush").outcome.returncode == 2


def test_the_script_ports_are_the_cluster_ports_of_shared_ports():
    text = SCRIPT.read_text()
    tcp = re.search(r"^TCP_PORTS=(\S+)$", text, re.M).group(1)
    udp = re.search(r"^UDP_PORTS=(\S+)$", text, re.M).group(1)
    ports = fw.cluster_ports()
    assert tcp == ",".join(str(p.number) for p in ports if p.protocol == "tcp")
    assert udp == ",".join(str(p.number) for p in ports if p.protocol == "udp")
    assert "8443" not in tcp and re.search(r"^PORTAL_PORT=8443$", text, re.M)


def test_the_script_is_posix_sh():
    """dash parses it (`sh -n`); checkbashisms, where installed, finds nothing."""
    assert subprocess.run(["sh", "-n", str(SCRIPT)], timeout=10).returncode == 0
    if shutil.which("checkbashisms"):
        assert subprocess.run(["checkbashisms", str(SCRIPT)], timeout=10).returncode == 0
    assert os.access(SCRIPT, os.R_OK)

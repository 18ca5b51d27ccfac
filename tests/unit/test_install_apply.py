"""The OS preparation appliers on a server tree in a temporary folder (install_fakes), and
reset undoing them."""

from __future__ import annotations

import os

import pytest

from dragonball.installer import osprep, plan
from dragonball.installer.journal import Journal
from dragonball.installer.steps import StepFailed, run_steps
from dragonball.installer.undo import undo_all
from install_fakes import FakeServer, context, os_steps, server, snapshot  # noqa: F401 (fixture)
from test_install_osprep import ed25519_key


# --- applying ---------------------------------------------------------------------------------

def test_os_preparation_of_a_bare_server_then_reset_restores_every_byte(server, tmp_path):
    ctx = context(server, tmp_path)
    before = snapshot(server.root)
    run_steps(os_steps(ctx), ctx.journal)

    conf = server.read("etc/sysctl.d/90-dragonball.conf")
    assert "net.ipv4.ip_forward = 1" in conf and "fs.file-max" not in conf
    assert server.sysctl("net.ipv4.ip_forward") == "1"
    assert server.sysctl("net.bridge.bridge-nf-call-iptables") == "1"  # modprobe, then -p
    assert server.sysctl("fs.inotify.max_user_instances") == "8192"
    assert server.sysctl("fs.file-max") == "9223372036854775807"
    assert "nofile 20000" in server.read("etc/security/limits.d/90-dragonball.conf")  # the lab's
    assert server.read("etc/modules-load.d/dragonball.conf").endswith("br_netfilter\n")
    # no firewalld, no ufw: no rule per port (the DRAGONBALL chain is os.firewall_chain's)
    assert server.iptables == []

    results = undo_all(Journal.load(str(tmp_path / "data")), server.host())
    assert {r.status for r in results} == {"undone"}
    assert server.iptables == []
    after = snapshot(server.root)
    # The module stays loaded (its kernel files appeared); everything else is as it was.
    new = {k: v for k, v in after.items() if k not in before}
    assert sorted(new) == ["proc/sys/net/bridge/bridge-nf-call-ip6tables",
                           "proc/sys/net/bridge/bridge-nf-call-iptables"]
    assert {k: after[k] for k in before} == before
    assert not (server.root / "etc/sysctl.d").exists()  # the folder we made, gone too


def test_applying_again_changes_nothing_and_notes_the_same(server, tmp_path):
    ctx = context(server, tmp_path)
    run_steps(os_steps(ctx), ctx.journal)
    notes = {k: r.changes for k, r in ctx.journal.steps.items()}
    files = snapshot(server.root)
    mtimes = {p: p.stat().st_mtime_ns for p in server.root.rglob("*") if p.is_file()}
    rules = list(server.iptables)

    again = context(server, tmp_path / "second")
    run_steps(os_steps(again), again.journal)

    assert snapshot(server.root) == files and server.iptables == rules
    unchanged = [p for p, t in mtimes.items() if not p.is_relative_to(server.root / "proc")]
    assert all(p.stat().st_mtime_ns == mtimes[p] for p in unchanged)
    # A second install run on the same server records what it found: our own values.
    assert set(again.journal.steps) == set(notes)


def test_a_step_killed_after_its_change_keeps_what_was_there_first(server, tmp_path):
    """The file is written and sysctl dies: the re-run must not take our file as the old one."""
    ctx = context(server, tmp_path)
    kernel = plan.prep_step(ctx, osprep.kernel_prep(ctx.facts))
    server.breaks["sysctl"] = KeyboardInterrupt()  # as good as a kill for the journal
    with pytest.raises(KeyboardInterrupt):
        run_steps([kernel], ctx.journal)
    assert server.read("etc/sysctl.d/90-dragonball.conf") is not None

    del server.breaks["sysctl"]
    resumed = Journal.load(str(tmp_path / "data"))
    assert resumed.interrupted() == ["os.kernel"]
    ctx.journal = resumed
    run_steps([plan.prep_step(ctx, osprep.kernel_prep(ctx.facts))], resumed)
    noted = resumed.steps["os.kernel"].changes
    assert noted["file:/etc/sysctl.d/90-dragonball.conf"]["before"] is None
    assert noted["sysctl"]["values"]["net.ipv4.ip_forward"] == {"before": "0", "set": "1"}

    undo_all(Journal.load(str(tmp_path / "data")), server.host())
    assert server.read("etc/sysctl.d/90-dragonball.conf") is None
    assert server.sysctl("net.ipv4.ip_forward") == "0"


def test_reset_leaves_a_value_someone_changed_since(server, tmp_path):
    ctx = context(server, tmp_path)
    run_steps(os_steps(ctx), ctx.journal)
    server.write("proc/sys/fs/inotify/max_user_instances", "20000\n")  # a lab raised it
    undo_all(ctx.journal, server.host())
    assert server.sysctl("fs.inotify.max_user_instances") == "20000"
    assert server.sysctl("fs.inotify.max_user_watches") == "8192"


def test_a_value_that_does_not_stick_fails_the_step_with_a_hint(server, tmp_path):
    ctx = context(server, tmp_path)
    server.on_call = lambda argv: None
    original = server._sysctl
    server._sysctl = lambda args, env: (0, "", "")  # sysctl that applies nothing
    with pytest.raises(StepFailed, match="ip_forward is 0") as err:
        run_steps([plan.prep_step(ctx, osprep.kernel_prep(ctx.facts))], ctx.journal)
    assert "run the same command again" in err.value.hint
    server._sysctl = original


def test_existing_files_come_back_with_their_content_and_mode(server, tmp_path):
    server.write("etc/security/limits.d/90-dragonball.conf", "* soft nofile 4096\n")
    (server.root / "etc/security/limits.d/90-dragonball.conf").chmod(0o600)
    ctx = context(server, tmp_path)
    run_steps([plan.prep_step(ctx, osprep.limits_prep(ctx.facts))], ctx.journal)
    assert "nofile 20000" in server.read("etc/security/limits.d/90-dragonball.conf")
    undo_all(ctx.journal, server.host())
    path = server.root / "etc/security/limits.d/90-dragonball.conf"
    assert path.read_text() == "* soft nofile 4096\n" and path.stat().st_mode & 0o777 == 0o600


def test_selinux_goes_permissive_and_back(server, tmp_path):
    server.write("sys/fs/selinux/enforce", "1")
    server.write("etc/selinux/config", "# comment\nSELINUX=enforcing\nSELINUXTYPE=targeted\n")
    ctx = context(server, tmp_path, case="rocky9-selinux-firewalld")
    run_steps([plan.prep_step(ctx, osprep.selinux_prep(ctx.facts, consent=True))],
              ctx.journal)
    assert ["setenforce", "0"] in [[os.path.basename(c[0]), *c[1:]] for c in server.calls]
    assert server.read("sys/fs/selinux/enforce") == "0"
    assert "SELINUX=permissive\n" in server.read("etc/selinux/config")
    undo_all(ctx.journal, server.host())
    assert server.read("sys/fs/selinux/enforce") == "1"
    assert server.read("etc/selinux/config") == \
        "# comment\nSELINUX=enforcing\nSELINUXTYPE=targeted\n"


def test_firewalld_ports_opened_runtime_and_permanent_and_only_ours_closed(server, tmp_path):
    server.firewalld = {("8443/tcp", False), ("8443/tcp", True)}  # the admin opened it before
    ctx = context(server, tmp_path, case="rocky9-selinux-firewalld")
    prep = osprep.firewall_prep(ctx.facts, "portal")
    run_steps([plan.prep_step(ctx, prep)], ctx.journal)
    assert len(server.firewalld) == 18
    assert ctx.journal.steps["os.firewall"].changes["ports.firewalld"]["opened"] == [
        "2377/tcp", "2379/tcp", "2380/tcp", "4789/udp", "5000/tcp", "7946/tcp", "7946/udp",
        "9443/tcp"]
    undo_all(ctx.journal, server.host())
    assert server.firewalld == {("8443/tcp", False), ("8443/tcp", True)}
    assert not any("disable" in a or "stop" in a for c in server.calls for a in c)


def test_a_missing_firewall_tool_is_a_warning_not_a_failure(tmp_path):
    server = FakeServer(tmp_path / "root", programs=("sysctl",))
    ctx = context(server, tmp_path)
    ctx.facts.firewall = {"ufw": True}  # active, said preflight; gone meanwhile
    warnings = []
    ctx.progress.warn = warnings.append
    run_steps([plan.prep_step(ctx, osprep.firewall_prep(ctx.facts, "device"))], ctx.journal)
    assert warnings and "ufw is not installed" in warnings[0]


def test_the_portal_key_is_added_once_and_only_it_is_removed(server, tmp_path):
    theirs = "ssh-ed25519 " + ed25519_key().split()[1][:-4] + "AAAA admin@laptop"
    server.write("root/.ssh/authorized_keys", theirs)  # no final newline
    ctx = context(server, tmp_path)
    key = ed25519_key("portal@dragonball")
    step = plan.authorized_key_step(ctx, lambda: key)
    run_steps([step], ctx.journal)
    assert server.read("root/.ssh/authorized_keys") == f"{theirs}\n{key}\n"
    plan.authorized_key_step(ctx, key).action()  # run again (after a kill): not twice
    assert server.read("root/.ssh/authorized_keys").count(key) == 1
    undo_all(Journal.load(str(tmp_path / "data")), server.host())
    assert server.read("root/.ssh/authorized_keys") == f"{theirs}\n"


def test_the_portal_key_in_a_fresh_root_folder_goes_with_the_folder(server, tmp_path):
    ctx = context(server, tmp_path)
    run_steps([plan.authorized_key_step(ctx, ed25519_key())], ctx.journal)
    ssh = server.root / "root/.ssh"
    assert (ssh.stat().st_mode & 0o777, (ssh / "authorized_keys").stat().st_mode & 0o777) == \
        (0o700, 0o600)
    undo_all(ctx.journal, server.host())
    assert not (server.root / "root").exists()

"""The OS preparation appliers on a server tree in a temporary folder, and reset undoing them.

`FakeServer` is a root folder (etc/, proc/sys/, sys/fs/selinux/) plus a runner that
plays the few programs the appliers run (sysctl, modprobe, setenforce, iptables,
firewall-cmd, dpkg, systemctl, docker) against that tree and records every argv.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from dragonball.errors import DragonBallError, InstallerError
from dragonball.installer import osprep, plan
from dragonball.installer.host import Completed, Host
from dragonball.installer.journal import Journal
from dragonball.installer.preflight.facts import Facts
from dragonball.installer.steps import StepFailed, run_steps
from dragonball.installer.undo import UndoLog, undo_all, undoer
from test_install_osprep import ed25519_key, load

PROGRAMS = ("sysctl", "modprobe", "setenforce", "iptables", "firewall-cmd", "dpkg",
            "dpkg-query", "systemctl", "docker", "dockerd", "groupdel")
SYSCTL_NOW = {"net/ipv4/ip_forward": "0", "fs/file-max": "9223372036854775807",
              "fs/inotify/max_user_instances": "128", "fs/inotify/max_user_watches": "8192"}


class FakeServer:
    """A server's tree under `root` and the programs the installer runs, played."""

    def __init__(self, root: pathlib.Path, programs=PROGRAMS, bridge: bool = False) -> None:
        self.root = root
        self.calls: list[list[str]] = []
        self.iptables: list[list[str]] = []
        self.firewalld: set[tuple[str, bool]] = set()
        self.dpkg: dict[str, tuple[str, str]] = {}
        self.units: dict[str, dict] = {}
        self.engine_up = False
        self.breaks: dict[str, Exception] = {}  # program -> raised when it runs
        self.on_call = lambda argv: None
        for folder in ("usr/sbin", "usr/bin"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for name in programs:
            path = root / "usr/sbin" / name
            path.write_text("#!/bin/sh\n")
            path.chmod(0o755)
        for key, value in SYSCTL_NOW.items():
            self.write(f"proc/sys/{key}", value + "\n")
        if bridge:
            self.load_bridge()
        (root / "etc").mkdir(exist_ok=True)

    def host(self) -> Host:
        return Host(str(self.root), runner=self, environ={"LD_LIBRARY_PATH": "/tmp/_MEI1",
                                                           "LD_LIBRARY_PATH_ORIG": "/opt/lib"})

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def read(self, rel: str) -> str | None:
        path = self.root / rel
        return path.read_text() if path.exists() else None

    def sysctl(self, key: str) -> str | None:
        text = self.read("proc/sys/" + key.replace(".", "/"))
        return text.strip() if text is not None else None

    def load_bridge(self) -> None:
        for key in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
            self.write(f"proc/sys/net/bridge/{key}", "0\n")

    def programs_run(self) -> list[str]:
        return [os.path.basename(argv[0]) for argv in self.calls]

    # --- the runner ----------------------------------------------------------------------

    def __call__(self, argv, env, timeout, stdin) -> Completed:
        assert all(isinstance(a, str) for a in argv), argv  # an argv list, never a shell
        assert "_MEI" not in env.get("LD_LIBRARY_PATH", ""), "the frozen runtime's libraries"
        self.calls.append(list(argv))
        self.on_call(list(argv))
        name = os.path.basename(argv[0])
        if name in self.breaks:
            raise self.breaks[name]
        code, out, err = getattr(self, "_" + name.replace("-", "_"))(list(argv[1:]), env)
        return Completed(tuple(argv), code, out, err)

    def _sysctl(self, args, env):
        if args[:2] == ["-e", "-p"]:
            for line in self.read(args[2].lstrip("/")).splitlines():
                if "=" in line and not line.startswith("#"):
                    key, value = (s.strip() for s in line.split("=", 1))
                    rel = "proc/sys/" + key.replace(".", "/")
                    if (self.root / rel).parent.is_dir():
                        self.write(rel, value + "\n")
            return 0, "", ""
        return 1, "", f"unexpected sysctl {args}"

    def _modprobe(self, args, env):
        self.load_bridge()
        return 0, "", ""

    def _setenforce(self, args, env):
        self.write("sys/fs/selinux/enforce", args[0])
        return 0, "", ""

    def _iptables(self, args, env):
        assert args[0] == "-w"
        op, rest = args[1], args[2:]
        if op == "-C":
            return (0 if rest in self.iptables else 1), "", ""
        if op == "-I":
            self.iptables.insert(0, [rest[0], *rest[2:]])
            return 0, "", ""
        if op == "-D":
            self.iptables.remove(rest)
            return 0, "", ""
        return 2, "", "bad"

    def _firewall_cmd(self, args, env):
        permanent = "--permanent" in args
        op, _, port = [a for a in args if a != "--permanent"][0].partition("=")
        key = (port, permanent)
        if op == "--query-port":
            return (0 if key in self.firewalld else 1), "", ""
        (self.firewalld.add if op == "--add-port" else self.firewalld.discard)(key)
        return 0, "success", ""

    def _dpkg_query(self, args, env):
        names = args[3:]
        out = "".join(f"{n}\t{self.dpkg[n][0]}\t{self.dpkg[n][1]}\n" for n in names if n in self.dpkg)
        missing = [n for n in names if n not in self.dpkg]
        return (1 if missing else 0), out, "".join(
            f"dpkg-query: no packages found matching {n}\n" for n in missing)

    def _dpkg(self, args, env):
        assert env.get("DEBIAN_FRONTEND") == "noninteractive"
        if "-i" in args:
            if "docker:" not in (self.read("etc/group") or ""):  # docker.io's postinst
                self.write("etc/group", (self.read("etc/group") or "") + "docker:x:999:\n")
            for deb in args[args.index("-i") + 1:]:
                name, version, _ = os.path.basename(deb).split("_")
                self.dpkg[name] = (version.replace("%3a", ":"), "ii ")
            return 0, "", ""
        op, names = args[0], args[1:]
        for n in names:
            self.dpkg[n] = (self.dpkg[n][0], "rc ") if op == "--remove" else ("", "un ")
        return 0, "", ""

    def _systemctl(self, args, env):
        op, unit = args[0], args[1]
        state = self.units.setdefault(unit, {"active": False, "enabled": "enabled"})
        if op == "cat":
            return (0 if "docker.io" in self.dpkg and self.dpkg["docker.io"][1] == "ii " else 1,
                    "", "")
        if op == "is-active":
            return (0 if state["active"] else 3), "active" if state["active"] else "inactive", ""
        if op == "is-enabled":
            return 0, state["enabled"], ""
        if op == "start":
            state["active"] = self.engine_up = True
        elif op == "stop":
            state["active"] = self.engine_up = False
        elif op in ("enable", "disable"):
            state["enabled"] = op + "d"
        return 0, "", ""

    def _groupdel(self, args, env):
        lines = (self.read("etc/group") or "").splitlines(keepends=True)
        self.write("etc/group", "".join(l for l in lines if not l.startswith(args[0] + ":")))
        return 0, "", ""

    def _docker(self, args, env):
        if args[0] == "info":
            return (0, "20.10.24+dfsg1\n", "") if self.engine_up else \
                (1, "", "Cannot connect to the Docker daemon")
        return 0, "", ""


@pytest.fixture
def server(tmp_path):
    return FakeServer(tmp_path / "root")


@pytest.fixture
def no_role_steps(monkeypatch):
    """The plan of this release's own steps, whatever other modules plugged in."""
    monkeypatch.setattr(plan, "ROLE_STEPS", {"portal": [], "device": []})


def context(server: FakeServer, tmp_path, case="bare-lab-server", role=None, answers=None):
    case_role, facts = load(case)
    journal = Journal.load(str(tmp_path / "data"))
    journal.begin("digest")
    answers = answers or type("A", (), {"role": role or case_role,
                                        "data_dir": str(server.root / "var/lib/dragonball")})()
    return plan.InstallContext(answers=answers, facts=facts, journal=journal,
                               host=server.host())


def os_steps(ctx) -> list:
    return [plan.prep_step(ctx, p) for p in osprep.os_preps(ctx.facts)] + \
        [plan.prep_step(ctx, osprep.firewall_prep(ctx.facts, ctx.role))]


def snapshot(root: pathlib.Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


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
    assert len(server.iptables) == 5 and all("dragonball" in r for r in server.iptables)

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
    run_steps([plan.prep_step(ctx, osprep.selinux_prep(ctx.facts))], ctx.journal)
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
    assert len(server.firewalld) == 14
    assert ctx.journal.steps["os.firewall"].changes["ports.firewalld"]["opened"] == [
        "2377/tcp", "4789/udp", "5000/tcp", "7946/tcp", "7946/udp", "9443/tcp"]
    undo_all(ctx.journal, server.host())
    assert server.firewalld == {("8443/tcp", False), ("8443/tcp", True)}
    assert not any("disable" in a or "stop" in a for c in server.calls for a in c)


def test_a_missing_firewall_tool_is_a_warning_not_a_failure(tmp_path):
    server = FakeServer(tmp_path / "root", programs=("sysctl",))
    ctx = context(server, tmp_path)
    warnings = []
    ctx.progress.warn = warnings.append
    run_steps([plan.prep_step(ctx, osprep.firewall_prep(ctx.facts, "device"))], ctx.journal)
    assert warnings and "iptables is not installed" in warnings[0]


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


# --- reset's order and its bookkeeping ----------------------------------------------------------

def test_reset_undoes_latest_step_first_and_each_steps_notes_in_reverse(tmp_path):
    undone = []
    undoer("test-order")(lambda host, entry: undone.append(entry["name"]))
    journal = Journal.load(str(tmp_path))
    journal.begin("d")

    def step(step_id, names):
        def action():
            log = UndoLog(journal, step_id)
            for name in names:
                log.note(name, {"kind": "test-order", "name": name})
            return log.entries()
        return plan.Step(step_id, step_id, action)

    run_steps([step("first", ["a1", "a2"]), step("second", ["b1"]),
               step("third", ["c1", "c2", "c3"])], journal)
    results = undo_all(Journal.load(str(tmp_path)), host=None)
    assert undone == ["c3", "c2", "c1", "b1", "a2", "a1"]
    assert [(r.step, r.key) for r in results][0] == ("third", "c3")
    assert Journal.load(str(tmp_path)).changes() == []


def test_a_failed_undo_stays_in_the_journal_and_the_rest_goes_on(tmp_path):
    def fragile(host, entry):
        if entry["name"] == "stuck":
            raise InstallerError("cannot undo stuck", "fix it")
    undoer("test-fragile")(fragile)
    journal = Journal.load(str(tmp_path))
    journal.begin("d")
    journal.start("s")
    for name in ("ok1", "stuck", "ok2"):
        journal.note("s", name, {"kind": "test-fragile", "name": name})
    journal.failed("s", "it broke")  # a failed step's notes are undone too
    results = undo_all(Journal.load(str(tmp_path)), host=None)
    assert [(r.key, r.status) for r in results] == [("ok2", "undone"), ("stuck", "failed"),
                                                    ("ok1", "undone")]
    assert list(Journal.load(str(tmp_path)).changes()[0][1]) == ["stuck"]


def test_an_entry_of_an_unknown_kind_is_skipped_and_said(tmp_path):
    journal = Journal.load(str(tmp_path))
    journal.begin("d")
    run_steps([plan.Step("old", "a step of another release", lambda: {"x": {"kind": "?"}})],
              journal)
    results = undo_all(journal, host=None)
    assert [(r.status, r.step) for r in results] == [("skipped", "old")]


def test_noting_a_kind_nobody_can_undo_is_a_bug_caught_at_once(tmp_path):
    journal = Journal.load(str(tmp_path))
    journal.begin("d")
    journal.start("s")
    with pytest.raises(ValueError, match="no undo handler"):
        UndoLog(journal, "s").note("k", {"kind": "nobody-knows"})


def test_programs_get_the_callers_library_path_and_a_path_with_sbin(server):
    host = server.host()
    assert host.env["LD_LIBRARY_PATH"] == "/opt/lib"
    assert "LD_LIBRARY_PATH_ORIG" not in host.env
    assert host.env["PATH"].split(":")[0] == "/usr/sbin"
    frozen_only = Host(str(server.root), runner=server, environ={"LD_LIBRARY_PATH": "/tmp/_MEI9"})
    assert "LD_LIBRARY_PATH" not in frozen_only.env


def test_a_missing_program_is_an_error_naming_it(server):
    with pytest.raises(DragonBallError, match="setsid-like is not installed"):
        server.host().run(["setsid-like", "x"])


def test_plan_order_and_duplicate_ids_are_refused(server, tmp_path, no_role_steps):
    ctx = context(server, tmp_path, case="bare-lab-server", role="portal")
    ids = [s.id for s in plan.build_plan(ctx)]
    assert ids == ["os.kernel", "os.limits", "engine.unpack", "engine.packages",
                   "engine.config", "engine.start", "os.firewall"]
    plan.ROLE_STEPS["portal"].append(lambda c: [plan.Step("os.limits", "again", dict)])
    with pytest.raises(InstallerError, match="duplicate step ids: os.limits"):
        plan.build_plan(ctx)


def test_role_steps_come_after_the_firewall(server, tmp_path, no_role_steps):
    ctx = context(server, tmp_path, case="debian12-vm", role="device")
    plan.ROLE_STEPS["device"].append(lambda c: [plan.Step("join.swarm", "join", dict)])
    ids = [s.id for s in plan.build_plan(ctx)]
    assert ids == ["os.kernel", "os.limits", "engine.use", "os.firewall", "join.swarm"]


def test_facts_of_a_case_round_trip(tmp_path):
    _, facts = load("bare-lab-server")
    assert Facts(**json.loads(json.dumps(facts.to_dict()))) == facts


def test_the_plugins_loaded_can_be_limited_for_tests_of_the_base_layer(monkeypatch):
    loaded = []
    monkeypatch.setattr(plan, "PLUGINS", ["a.portal", "b.join"])
    monkeypatch.setattr(plan.importlib, "import_module", loaded.append)
    plan.load_plugins({})
    plan.load_plugins({plan.PLUGINS_ENV: ""})
    plan.load_plugins({plan.PLUGINS_ENV: "x.one, y.two"})
    assert loaded == ["a.portal", "b.join", "x.one", "y.two"]

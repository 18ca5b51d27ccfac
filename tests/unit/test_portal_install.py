"""The portal's install steps on a played server (portal_fakes): the whole run, then the
same steps again (idempotent), then reset (undo) takes everything back."""

from __future__ import annotations

import json
import os
import pathlib
import stat

import bcrypt

from dragonball import pki
from dragonball.installer import portal as portal_steps_mod
from dragonball.installer.portal import cluster
from dragonball.installer.steps import run_steps
from dragonball.installer.undo import undo_all
from dragonball.portal import settings as settings_mod
from dragonball.portal.store import Store
from portal_fakes import (  # noqa: F401 (fixtures)
    ETCD_REF, NODE_ID, PASSWORD, TOKENS, _context, _files, _step, bin_file, played)

def test_install_then_again_then_reset(played, tmp_path, capsys):
    ctx = _context(played, tmp_path)
    steps = [*portal_steps_mod.portal_steps(ctx), portal_steps_mod.first_code_step(ctx)]
    assert [s.id for s in steps] == list(portal_steps_mod.STEP_IDS)
    run_steps(steps, ctx.journal)
    root = played.root

    # the Swarm, on the answered address; tokens masked from now on
    assert played.docker_calls("swarm", "init") == [
        ["swarm", "init", "--advertise-addr", "10.0.0.1", "--listen-addr", "10.0.0.1:2377",
         "--cert-expiry", "8760h"]]
    assert set(TOKENS.values()) <= ctx.secrets.known

    # the PKI: keys 0600, certs for the address, 127.0.0.1 and the hostname
    etc = root / "etc/dragonball"
    for key in ("ca/ca.key", "portal/server.key", "registry/server.key", "portal/ssh/id_ed25519",
                "portal/registry.json", "registry/htpasswd", "registry/push.htpasswd",
                "portal/portal.yaml"):
        assert stat.S_IMODE((etc / key).stat().st_mode) == 0o600, key
    ca_pem = (etc / "ca/ca.crt").read_bytes()
    assert (etc / "ca.crt").read_bytes() == ca_pem == (etc / "registry/ca.crt").read_bytes()
    for folder in ("portal", "registry"):
        pair = pki.KeyPair((etc / folder / "server.crt").read_bytes(),
                           (etc / folder / "server.key").read_bytes())
        assert cluster.cert_fits(pair, ca_pem, ["10.0.0.1", "127.0.0.1"],
                                          ["s1", "localhost"])
    assert (etc / "portal/ssh/id_ed25519.pub").read_text().startswith("ssh-ed25519 ")

    # the registry: two accounts (the portal's writes, the pull one reads), htpasswd files
    # that check, the container, trust, the engine's login (the portal's own account)
    credentials = json.loads((etc / "portal/registry.json").read_text())
    pull = credentials["pull"]
    assert credentials["username"] == "dragonball" and len(credentials["password"]) == 43
    assert pull["username"] == "pull" and len(pull["password"]) == 43
    readers = dict(l.split(":", 1) for l in (etc / "registry/htpasswd").read_text().split())
    writers = dict(l.split(":", 1) for l in (etc / "registry/push.htpasswd").read_text().split())
    assert set(readers) == {"dragonball", "pull"} and set(writers) == {"dragonball"}
    assert bcrypt.checkpw(credentials["password"].encode(), readers["dragonball"].encode())
    assert bcrypt.checkpw(credentials["password"].encode(), writers["dragonball"].encode())
    assert bcrypt.checkpw(pull["password"].encode(), readers["pull"].encode())
    assert readers["dragonball"].startswith("$2b$05$")
    assert {credentials["password"], pull["password"]} <= ctx.secrets.known
    run, etcd_run = played.docker_calls("run")
    assert run[-1].startswith("sha256:")  # by the ID the load checked, not a tag
    assert ["--network", "host"] == run[run.index("--network"):run.index("--network") + 2]
    assert "/etc/dragonball/registry:/etc/dragonball/registry:ro" in run
    assert "/var/lib/dragonball/registry:/opt/dragon_ball/service/registry/storage" in run
    assert ["--restart", "always"] == run[run.index("--restart"):run.index("--restart") + 2]
    assert "io.dragonball.role=registry" in run  # reset removes io.dragonball.* containers
    assert stat.S_IMODE((root / "var/lib/dragonball/registry").stat().st_mode) == 0o711
    assert played.network["registry"] == [("10.0.0.1:5000", "dragonball", credentials["password"])]
    assert (root / "etc/docker/certs.d/10.0.0.1:5000/ca.crt").read_bytes() == ca_pem
    assert played.stdin["login 10.0.0.1:5000"] == credentials["password"].encode()
    assert played.network == {**played.network, "loads": 1, "pushes": 1}

    # etcd: a cluster of one, client and peer TLS from the controllers' CA, no secret in argv
    etcd = played.containers["dragonball-etcd"]
    assert etcd_run[etcd_run.index("--name") + 1] == "dragonball-etcd"
    assert "/var/lib/dragonball/etcd:/var/lib/dragonball/etcd" in etcd_run
    assert "/etc/dragonball/etcd:/etc/dragonball/etcd:ro" in etcd_run
    assert ["--restart", "always"] == etcd_run[etcd_run.index("--restart"):][:2]
    args = etcd["Args"]
    assert args[args.index("--initial-cluster") + 1] == "s1=https://10.0.0.1:2380"
    assert args[args.index("--initial-cluster-state") + 1] == "new"
    assert args[args.index("--listen-client-urls") + 1] == \
        "https://10.0.0.1:2379,https://127.0.0.1:2379"
    assert {"--client-cert-auth", "--peer-client-cert-auth",
            "--trusted-ca-file=/etc/dragonball/etcd/clients-ca.crt",
            "--peer-trusted-ca-file=/etc/dragonball/etcd/clients-ca.crt"} <= set(args)
    assert (etc / "etcd/clients-ca.crt").read_bytes() == (etc / "ca/agent-clients.crt").read_bytes()
    assert stat.S_IMODE((etc / "etcd/member.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "var/lib/dragonball/etcd").stat().st_mode) == 0o700
    assert played.network["etcd"] == ["healthy"]
    member_key = (etc / "etcd/member.key").read_text().splitlines()[1]
    assert not any(member_key in a for a in etcd_run)

    # the runtime and the command
    runtime = root / "opt/dragonball/runtime"
    assert os.access(runtime / "dragonball", os.X_OK)
    assert os.readlink(runtime / "_internal/libz.so") == "libz.so.1"
    assert os.readlink(root / "usr/local/bin/dragonball") == "/opt/dragonball/runtime/dragonball"

    # settings, store, service
    settings = settings_mod.load(str(etc / "portal/portal.yaml"))
    assert (settings.address, settings.hostname, settings.cluster_name, settings.bin_name) == \
        ("10.0.0.1", "s1", "plant", "DragonBall-9.9.9.bin")
    assert settings.state_endpoints == ["https://127.0.0.1:2379"]
    assert (settings.state_ca, settings.state_cert, settings.state_key) == (
        "/etc/dragonball/ca/agent-clients.crt", "/etc/dragonball/portal/agent-client.crt",
        "/etc/dragonball/portal/agent-client.key")
    store = Store.open(str(root / "var/lib/dragonball/portal/portal.db"))
    try:
        assert store.check_admin("admin", PASSWORD)
        (device,) = store.devices()
        assert (device.hostname, device.role, device.node_id) == ("s1", "portal", NODE_ID)
        assert len(store.codes()) == 1
    finally:
        store.close()
    assert played.labels == {"io.dragonball.role": "portal", "io.dragonball.device-id": "1",
                             "io.dragonball.enrolled": "true",
                             # no unshare on the fake server: not probed, so not capable
                             "io.dragonball.overlay-encryption": "false"}
    unit = (root / "etc/systemd/system/dragonball-portal.service").read_text()
    assert "ExecStart=/opt/dragonball/runtime/dragonball portal serve --config " \
           "/etc/dragonball/portal/portal.yaml" in unit
    assert played.units["dragonball-portal.service"] == {"enabled": "enabled", "active": True}
    assert played.network["portal"] == ["https://10.0.0.1:8443"]

    # the first code, printed once, masked in the log, never in the journal
    out = capsys.readouterr().out
    assert "https://10.0.0.1:8443" in out and "SHA256:" + pki.fingerprint(ca_pem) in out
    code = out.split("Enrollment code: ")[1].split()[0]
    assert "--code" not in out and code in ctx.secrets.known
    journal_text = pathlib.Path(ctx.journal.path).read_text()
    for secret in (code, PASSWORD, credentials["password"], *TOKENS.values(),
                   (etc / "ca/ca.key").read_text().splitlines()[1]):
        assert secret not in journal_text

    # every action again: nothing new
    before = _files(root)
    calls = len(played.calls)
    for step in steps[:-1]:  # the last one makes a new code each time it runs: that is its job
        step.action()
    after = _files(root)
    changed = {k for k in after if before.get(k) != after[k] and not k.startswith("var/lib")}
    assert changed == set()
    new_calls = played.calls[calls:]
    assert not any(c[1:3] in (["swarm", "init"], ["run", "--detach"]) for c in new_calls)
    assert played.network["loads"] == 1

    # reset: the Swarm left, the container and image gone, every file and folder ours gone
    results = undo_all(ctx.journal, played.host())
    assert all(r.status == "undone" for r in results), results
    assert played.swarm == "inactive" and not played.containers
    assert list(played.images) == [ETCD_REF]  # images.load's: not these steps' to remove
    assert played.units["dragonball-portal.service"] == {"enabled": "disabled", "active": False}
    assert ["logout", "10.0.0.1:5000"] in played.docker_calls("logout")
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if "usr/bin" not in str(p))
    assert left == ["usr"]  # and usr/bin, the played programs


def test_what_existed_before_stays_after_reset(played, tmp_path):
    ca = pki.create_ca()
    pki.write_pem_files(ca, played.root / "etc/dragonball/ca/ca.crt",
                        played.root / "etc/dragonball/ca/ca.key")
    ctx = _context(played, tmp_path)
    _step(ctx, "portal.pki", cluster.make_pki)
    assert (played.root / "etc/dragonball/ca/ca.crt").read_bytes() == ca.cert_pem
    undo_all(ctx.journal, played.host())
    assert (played.root / "etc/dragonball/ca/ca.key").read_bytes() == ca.key_pem
    assert not (played.root / "etc/dragonball/portal").exists()

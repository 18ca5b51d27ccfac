"""`DragonBall-<version>.bin preflight` on a bare Debian 12 server: real facts, the fixed shape.

The server is a container of dragonball-bare:bookworm (no python3, no docker) with a
noexec /tmp, like Docker's default tmpfs, so the .bin is told `--target /root`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from support import LABELS, ROOT

CHECK_KEYS = {"name", "status", "detail", "hint"}


@pytest.fixture(scope="module")
def server(docker_client, bare_server_image, release_bin):
    path, _ = release_bin
    container = docker_client.containers.run(
        bare_server_image, ["sleep", "infinity"], entrypoint=[], detach=True, labels=LABELS,
        tmpfs={"/tmp": "noexec"}, volumes={str(path.parent): {"bind": "/dist", "mode": "ro"}})
    try:
        code, out = container.exec_run(["cp", f"/dist/{path.name}", f"/root/{path.name}"])
        assert code == 0, out
        yield container, f"/root/{path.name}"
    finally:
        container.remove(force=True)


def sh(container, script: str) -> tuple[int, str, str]:
    code, (out, err) = container.exec_run(["sh", "-c", script], demux=True)
    return code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")


@pytest.fixture(scope="module")
def report(server):
    container, binary = server
    started = time.monotonic()
    code, out, err = sh(container, f"{binary} --target /root preflight --json")
    elapsed = time.monotonic() - started
    assert code in (0, 1), f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
    print(f"preflight through the .bin took {elapsed:.2f} s")
    return code, json.loads(out)


def test_the_shape_is_the_documented_one(report):
    code, doc = report
    assert set(doc) == {"schema", "dragonball", "release", "role", "ok", "summary", "checks",
                        "facts"}
    assert doc["schema"] == 1 and doc["role"] == "portal"
    assert all(set(c) == CHECK_KEYS for c in doc["checks"])
    assert all(c["status"] in ("pass", "warn", "fail", "skip") for c in doc["checks"])
    assert doc["ok"] == (code == 0) == (doc["summary"]["fail"] == 0)


def test_the_facts_are_this_servers(report, release_bin):
    _, doc = report
    _, manifest = release_bin
    facts, checks = doc["facts"], {c["name"]: c for c in doc["checks"]}
    assert doc["release"] == f"{manifest['name']} {manifest['version']}"
    assert facts["arch"] == "x86_64" and checks["arch"]["status"] == "pass"
    assert (facts["distro"]["id"], facts["distro"]["version"]) == ("debian", "12")
    assert checks["distro"]["status"] == "pass"
    assert facts["euid"] == 0 and checks["root"]["status"] == "pass"
    # Debian 12's glibc, which the runtime does not need: it carries its own (builder/loader.py)
    assert manifest["floor"]["glibc"] == "none" and facts["glibc"] == "2.36"
    assert checks["glibc"]["status"] == "pass" and "carries its own C library" in \
        checks["glibc"]["detail"]
    assert checks["kernel"]["status"] == "pass"
    # No engine on a bare server: install will put in the bundled one.
    assert facts["docker"]["server"] is None and checks["docker"]["status"] == "pass"
    assert "bundled engine" in checks["docker"]["detail"]
    # The container's /tmp is a noexec tmpfs: seen, and only a warning.
    assert checks["noexec.temp"]["status"] == "warn"
    # Sized from this release: the images section of this very .bin.
    needed = str(round(manifest["sections"]["images"]["size"] / 1e6))
    assert f"{needed} MB of images" in checks["disk.data"]["detail"]
    for port in ("2377/tcp", "7946/tcp", "7946/udp", "4789/udp", "5000/tcp", "8443/tcp",
                 "9443/tcp"):
        assert checks[f"port.{port}"]["status"] == "pass", checks[f"port.{port}"]


def test_a_port_in_use_fails_and_exits_1(server):
    container, binary = server
    # The bare server's own sshd (it has host keys) holds the portal's port for a while.
    code, out, err = sh(container, "mkdir -p /run/sshd && /usr/sbin/sshd -p 8443")
    assert code == 0, err
    try:
        code, out, err = sh(container, f"{binary} --target /root preflight --json")
        assert code == 1, err
        port = next(c for c in json.loads(out)["checks"] if c["name"] == "port.8443/tcp")
        assert port["status"] == "fail" and "8443" in port["hint"]
    finally:
        sh(container, "kill $(cat /run/sshd.pid)")


def test_the_table_and_usage_errors(server):
    container, binary = server
    code, out, _ = sh(container, f"{binary} --target /root preflight --role device")
    assert code in (0, 1) and "port.9443/tcp" in out and "port.5000/tcp" not in out
    assert "preflight: " in out
    code, out, err = sh(container, f"{binary} --target /root preflight --data-dir relative")
    assert code == 2 and "absolute path" in err


def test_preflight_left_nothing_behind(server):
    container, _ = server
    code, out, _ = sh(container, "ls -d /var/lib/dragonball /root/dragonball.* 2>&1; ls -A /tmp")
    assert "No such file" in out and "dragonball." not in out.replace("/root/dragonball.*", "")


def test_the_bin_verifies_and_runs_preflight_on_debian_11(docker_client, release_bin):
    """Issue 14: Debian 11 (glibc 2.31) was refused at once by the stub (exit 84, "needs
    2.36"). The runtime now carries its C library: --verify, then preflight with the
    server's real facts; the bundled engine (a private tree, no glibc floor) passes too."""
    subprocess.run([sys.executable, str(ROOT / "build.py"), "bare-bullseye"], check=True,
                   cwd=ROOT)
    path, _ = release_bin
    container = docker_client.containers.run(
        "dragonball-bare:bullseye", ["sleep", "infinity"], entrypoint=[], detach=True,
        labels=LABELS, volumes={str(path.parent): {"bind": "/dist", "mode": "ro"}})
    try:
        code, out, err = sh(container, f"/dist/{path.name} --verify")
        assert code == 0 and "is intact" in out + err, (out, err)
        code, out, err = sh(container, f"/dist/{path.name} preflight --json")
        assert code in (0, 1), f"exit {code}\n{out}\n{err}"
        doc = json.loads(out)
        checks = {c["name"]: c for c in doc["checks"]}
        assert (doc["facts"]["distro"]["id"], doc["facts"]["distro"]["version"]) == \
            ("debian", "11")
        assert doc["facts"]["glibc"] == "2.31" and checks["glibc"]["status"] == "pass"
        assert checks["arch"]["status"] == "pass" and checks["root"]["status"] == "pass"
        # no engine there: the bundled one goes in (it needs nothing of the server's glibc)
        assert checks["docker"]["status"] == "pass", checks["docker"]
        assert "install puts in the bundled engine" in checks["docker"]["detail"], \
            checks["docker"]
        assert sh(container, "ls -A /tmp")[1] == ""   # the private folder: gone
    finally:
        container.remove(force=True)


def test_a_noexec_opt_fails_with_the_fix_and_changes_nothing(docker_client, bare_server_image,
                                                             release_bin):
    """Issue 14's bad input: /opt mounted noexec (the runtime is copied to /opt/dragonball
    and run from there): a failed check naming the mount and the fix, exit 1, nothing made."""
    path, _ = release_bin
    container = docker_client.containers.run(
        bare_server_image, ["sleep", "infinity"], entrypoint=[], detach=True, labels=LABELS,
        tmpfs={"/tmp": "noexec", "/opt": "noexec"},
        volumes={str(path.parent): {"bind": "/dist", "mode": "ro"}})
    try:
        code, out, err = sh(container, f"/dist/{path.name} --target /root preflight --json")
        assert code == 1, f"exit {code}\n{out}\n{err}"
        check = next(c for c in json.loads(out)["checks"] if c["name"] == "noexec.runtime")
        assert check["status"] == "fail", check
        assert "/opt/dragonball is on a noexec mount (tmpfs on /opt)" in check["detail"], check
        assert "remount" in check["hint"], check
        assert sh(container, "ls -A /opt")[1] == ""  # nothing unpacked or copied there
        assert sh(container, "test -e /var/lib/dragonball")[0] == 1
    finally:
        container.remove(force=True)

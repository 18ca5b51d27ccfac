"""What Swarm does with each way of naming a task's image: the experiment behind
docs/orchestrator.md, "Images everywhere" (issue 12, DESIGN day 2 answer 1).

    sudo .venv/bin/python bench/image_refs.py [--image notes/api:0.1.0]

A private dockerd, a Swarm of one, in a network namespace of its own (the host engine's
Swarm is never touched); the image is copied into it with `docker save | docker load`
(the way each server gets the release from its .bin), then services are created with the
Engine's own CLI and timed to their first running task:

  (a) by image ID (`sha256:<config digest>`, --no-resolve-image): no registry anywhere;
  (b) `<registry>/<repo>@sha256:<manifest digest>` with no registry answering;
  (c) the same with our registry (dragonball/registry, TLS, htpasswd) answering, the image
      loaded but never pulled (no RepoDigests): how long the pull through it takes;
  (d) the same again with the registry stopped, now that the pull recorded RepoDigests;
  (e) the same on an engine holding nothing (a full pull of every layer).
Everything it made is removed at the end. Nothing leaves the namespace.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "payload"), str(ROOT), str(ROOT / "tests")]

from dragonball import pki  # noqa: E402

DOCKER, DOCKERD = "/usr/bin/docker", "/usr/sbin/dockerd"
ADDRESS = "192.0.2.1"       # TEST-NET-1, inside the namespace only
REGISTRY = f"{ADDRESS}:5000"
NETNS = "dbbench-refs"
USER = "dragonball"


def run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=kw.pop("check", True), **kw)


class Engine:
    """A private dockerd in NETNS, a Swarm manager."""

    def __init__(self) -> None:
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="dbbench-refs-", dir="/var/tmp"))
        self.url = f"unix://{self.root}/docker.sock"
        self.proc = None

    def up(self) -> None:
        inside = ["ip", "netns", "exec", NETNS]
        run(["ip", "netns", "add", NETNS])
        run([*inside, "ip", "link", "set", "lo", "up"])
        run([*inside, "ip", "link", "add", "swarm0", "type", "bridge"])
        run([*inside, "ip", "addr", "add", f"{ADDRESS}/24", "dev", "swarm0"])
        run([*inside, "ip", "link", "set", "swarm0", "up"])
        log = open(self.root / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{NETNS}", DOCKERD, "--data-root",
             str(self.root / "data"), "--exec-root", str(self.root / "exec"), "--pidfile",
             str(self.root / "dockerd.pid"), "-H", self.url, "--iptables=false",
             "--ip-masq=false"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while self.docker("info", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit((self.root / "dockerd.log").read_text()[-2000:])
            time.sleep(0.3)
        self.docker("swarm", "init", "--advertise-addr", ADDRESS)

    def docker(self, *args, **kw) -> subprocess.CompletedProcess:
        return run([DOCKER, "-H", self.url, *args], **kw)

    def down(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        run(["ip", "netns", "del", NETNS], check=False)
        run(["umount", "-R", str(self.root / "exec")], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def copy_image(engine: Engine, ref: str) -> float:
    start = time.monotonic()
    save = subprocess.Popen([DOCKER, "save", ref], stdout=subprocess.PIPE)
    subprocess.run([DOCKER, "-H", engine.url, "load", "-q"], stdin=save.stdout, check=True,
                   capture_output=True)
    save.wait()
    return time.monotonic() - start


def service(engine: Engine, name: str, image: str, wait_s: float = 90) -> tuple:
    """(seconds to a running task or None, the tasks' last errors)."""
    start = time.monotonic()
    engine.docker("service", "create", "--detach", "--no-resolve-image", "--name", name,
                  "--no-healthcheck", "--restart-delay", "2s", "--entrypoint", "sleep",
                  "--with-registry-auth", image, "3600")
    errors = set()
    while time.monotonic() - start < wait_s:
        out = engine.docker("service", "ps", "--no-trunc", "--format",
                            "{{.CurrentState}}|{{.Error}}", name).stdout
        for line in out.splitlines():
            state, _, error = line.partition("|")
            if error:
                errors.add(error.strip())
            if state.startswith("Running"):
                return time.monotonic() - start, sorted(errors)
        time.sleep(0.2)
    return None, sorted(errors)


def start_registry(engine: Engine, folder: pathlib.Path, registry_image: str) -> None:
    engine.docker("run", "-d", "--name", "refs-registry", "--network", "host", "-v",
                  f"{folder / 'tls'}:/etc/dragonball/registry:ro", registry_image)
    deadline = time.monotonic() + 90
    while True:
        health = engine.docker("inspect", "--format", "{{.State.Health.Status}}",
                               "refs-registry", check=False).stdout.strip()
        if health == "healthy":
            return
        if time.monotonic() > deadline:
            raise SystemExit("the registry is not healthy: " +
                             engine.docker("logs", "refs-registry", check=False).stderr[-800:])
        time.sleep(0.5)


def secrets(folder: pathlib.Path) -> str:
    ca = pki.create_ca()
    server = pki.issue_server_cert(ca, "registry", ips=[ADDRESS, "127.0.0.1"])
    pki.write_pem_files(server, folder / "tls" / "server.crt", folder / "tls" / "server.key")
    pki.write_private(folder / "tls" / "ca.crt", ca.cert_pem, 0o644)
    password = pki.new_secret()
    for name in ("htpasswd", "push.htpasswd"):  # this account reads and writes
        pki.write_private(folder / "tls" / name,
                          (pki.htpasswd_line(USER, password) + "\n").encode())
    certs = pathlib.Path("/etc/docker/certs.d") / REGISTRY
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "tls" / "ca.crt", certs / "ca.crt")
    return password


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="notes/api:0.1.0")
    parser.add_argument("--registry-image", default="dragonball/registry:0.1.0")
    args = parser.parse_args()
    engine, folder = Engine(), pathlib.Path(tempfile.mkdtemp(prefix="dbbench-refs-secrets-"))
    rows = []
    try:
        engine.up()
        password = secrets(folder)
        image_id = run([DOCKER, "image", "inspect", "--format", "{{.Id}}",
                        args.image]).stdout.strip()
        rows.append(("docker load of the image (save | load)", copy_image(engine, args.image)))
        copy_image(engine, args.registry_image)
        digests = engine.docker("image", "inspect", "--format", "{{json .RepoDigests}}",
                                args.image).stdout.strip()
        rows.append(("RepoDigests after docker load", digests))
        took, errors = service(engine, "by-id", image_id)
        rows.append(("(a) by image ID, no registry: to running (s)", took, errors))
        repository = args.image.rsplit(":", 1)[0]
        start_registry(engine, folder, args.registry_image)
        engine.docker("login", REGISTRY, "--username", USER, "--password-stdin", input=password)
        pushed = f"{REGISTRY}/{repository}:bench"
        engine.docker("tag", args.image, pushed)
        begin = time.monotonic()
        engine.docker("push", pushed)
        rows.append(("docker push to the registry (s)", time.monotonic() - begin))
        digest = json.loads(engine.docker("image", "inspect", "--format",
                                          "{{json .RepoDigests}}", pushed).stdout)[0]
        # forget the digest the push recorded: as after a docker load from the .bin
        engine.docker("rmi", pushed)
        engine.docker("service", "rm", "by-id")
        time.sleep(3)
        engine.docker("rmi", "--force", args.image, check=False)
        copy_image(engine, args.image)
        engine.docker("stop", "refs-registry")
        took, errors = service(engine, "by-digest-down", digest, wait_s=30)
        rows.append(("(b) registry@digest, loaded, registry down: to running (s)", took, errors))
        engine.docker("service", "rm", "by-digest-down")
        engine.docker("start", "refs-registry")
        start_registry_wait = time.monotonic()
        while engine.docker("inspect", "--format", "{{.State.Health.Status}}",
                            "refs-registry").stdout.strip() != "healthy":
            if time.monotonic() - start_registry_wait > 60:
                break
            time.sleep(0.5)
        took, errors = service(engine, "by-digest-up", digest)
        rows.append(("(c) registry@digest, loaded, registry up: to running (s)", took, errors))
        engine.docker("stop", "refs-registry")
        begin = time.monotonic()
        engine.docker("service", "update", "--detach", "--force", "by-digest-up")
        time.sleep(1)
        took, errors = service_update_wait(engine, "by-digest-up", begin)
        rows.append(("(d) the same after its pull, registry down: new task running (s)", took,
                     errors))
        engine.docker("service", "rm", "by-digest-up")
        time.sleep(3)
        engine.docker("rmi", "--force", args.image, digest, check=False)
        engine.docker("start", "refs-registry")
        time.sleep(3)
        took, errors = service(engine, "by-digest-empty", digest)
        rows.append(("(e) registry@digest on an engine without the image: full pull (s)", took,
                     errors))
    finally:
        engine.down()
        shutil.rmtree(pathlib.Path("/etc/docker/certs.d") / REGISTRY, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
    for row in rows:
        print(" | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row))
    return 0


def service_update_wait(engine: Engine, name: str, begin: float, wait_s: float = 60) -> tuple:
    errors = set()
    while time.monotonic() - begin < wait_s:
        out = engine.docker("service", "ps", "--no-trunc", "--format",
                            "{{.DesiredState}}|{{.CurrentState}}|{{.Error}}", name).stdout
        lines = [l.split("|") for l in out.splitlines()]
        errors |= {l[2] for l in lines if l[2]}
        if sum(1 for l in lines if l[1].startswith("Running")) and len(lines) > 1 and \
                all(not l[1].startswith("Running") or l[0] == "Running" for l in lines):
            running = [l for l in lines if l[0] == "Running" and l[1].startswith("Running")]
            if running and len(lines) >= 2:
                return time.monotonic() - begin, sorted(errors)
        time.sleep(0.2)
    return None, sorted(errors)


if __name__ == "__main__":
    sys.exit(main())

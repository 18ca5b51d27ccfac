"""Bench: a server switched off past its Swarm node certificate's expiry, for real.

Swarm's shortest node certificate lifetime is 1 hour (swarmkit refuses less), and the lab's
servers share this machine's clock, so this takes a little over an hour: too long for CI
(tests/e2e/test_cert_expiry.py covers the rest there; docs/certificates.md).

    .venv/bin/python bench/cert_expiry.py BIN [--expiry 1h] [--keep]

1. s1 installed as the portal, s2 as a device; then `docker swarm ca --rotate --cert-expiry
   EXPIRY` on s1, so every node holds a certificate that ends EXPIRY from now (measured:
   `docker swarm update --cert-expiry` alone changes no certificate already issued, and a
   server that joined 15 s after it still got 90 days);
2. s2 is switched off (`docker kill` of its lab container) right away;
3. once its certificate's notAfter is 2 minutes past, s2 is switched on again: what its
   engine says (`docker info` Swarm state and error) and what the portal's Swarm says;
4. the documented command: `dragonball rejoin s2` on the portal, the command it prints
   run on s2; s2 Ready again and its agent task running.
Every step's output and time is printed, and written to bench/results/cert_expiry.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "payload"), str(ROOT / "tests")]

from cryptography import x509  # noqa: E402

from tests.lab import Lab  # noqa: E402
from tests.lab.install import LabCluster  # noqa: E402

NODE_CERT = "/var/lib/docker/swarm/certificates/swarm-node.crt"
LABELS = {"io.dragonball.test": "bench-cert-expiry"}


def log(results: dict, key: str, value) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    results.setdefault("log", []).append({"t": stamp, key: value})
    print(f"[{stamp}] {key}: {value}", flush=True)


def not_after(lab: Lab, server: str) -> datetime.datetime:
    pem = lab.exec(server, ["cat", NODE_CERT], check=True).stdout
    return x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc


def swarm_info(cluster: LabCluster, server: str) -> str:
    return cluster.docker(server, "info", "--format", "{{json .Swarm}}", check=False).stdout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("bin")
    parser.add_argument("--expiry", default="1h")
    parser.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    parser.add_argument("--name", default="dbcertx")
    parser.add_argument("--attach", action="store_true",
                        help="a lab this bench left with s2 switched off: go on from there")
    args = parser.parse_args(argv)
    results: dict = {"expiry": args.expiry}
    lab = Lab.attach(args.name) if args.attach else Lab(args.name, 2, internal=True,
                                                          labels=LABELS).up()
    try:
        cluster = LabCluster(lab, args.bin)
        expires = stopped_cert(lab) if args.attach else set_up(lab, cluster, args, results)
        wake(lab, cluster, expires, results)
    finally:
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / "cert_expiry.json").write_text(json.dumps(results, indent=2, default=str))
        if not args.keep:
            lab.down()
    return 0


def stopped_cert(lab: Lab) -> datetime.datetime:
    """The node certificate of s2, switched off: read from its container's volume."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["docker", "cp", f"{lab.container('s2')}:{NODE_CERT}", folder],
                       check=True)
        pem = pathlib.Path(folder, "swarm-node.crt").read_bytes()
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc


def set_up(lab: Lab, cluster: LabCluster, args, results: dict) -> datetime.datetime:
    cluster.copy_bin()
    assert cluster.install("s1", cluster.portal_answers("s1")).ok
    code = cluster.enroll()
    run2 = cluster.install("s2", cluster.device_answers("s2", code))
    assert run2.ok, run2.output
    log(results, "s2 node cert not after (join)", not_after(lab, "s2"))
    log(results, "swarm ca --rotate", cluster.docker(
        "s1", "swarm", "ca", "--rotate", "--quiet", "--cert-expiry", args.expiry,
        check=False, timeout=300).returncode)
    lab.kill("s2")
    log(results, "s2 switched off", "docker kill")
    expires = stopped_cert(lab)
    log(results, "s2 node cert not after (rotated)", expires)
    return expires


def wake(lab: Lab, cluster: LabCluster, expires: datetime.datetime, results: dict) -> None:
    wake = expires + datetime.timedelta(minutes=2)
    while datetime.datetime.now(datetime.timezone.utc) < wake:
        time.sleep(30)
    log(results, "s1 node ls", cluster.docker("s1", "node", "ls", check=False).stdout)
    lab.start("s2")
    time.sleep(20)
    log(results, "s2 swarm after boot", swarm_info(cluster, "s2"))
    log(results, "s1 node ls after s2 boot",
        cluster.docker("s1", "node", "ls", check=False).stdout)
    time.sleep(60)
    log(results, "s2 swarm a minute later", swarm_info(cluster, "s2"))
    rejoin = cluster.dragonball("rejoin", "s2", "--json", check=False)
    log(results, "dragonball rejoin s2", rejoin.stdout + rejoin.stderr)
    if rejoin.returncode != 0:
        engine_level(cluster, lab, results)
        return
    command = json.loads(rejoin.stdout)["command"]   # ["sudo", "./<bin>", "rejoin", ...]
    began = time.monotonic()
    done = lab.exec("s2", [cluster.bin, "--target", "/root", *command[2:]], timeout=600)
    log(results, "rejoin on s2", {"exit": done.returncode, "seconds": time.monotonic() - began,
                                  "output": (done.stdout + done.stderr)[-2000:]})
    time.sleep(15)
    log(results, "s1 node ls after rejoin",
        cluster.docker("s1", "node", "ls", check=False).stdout)
    log(results, "agent tasks", cluster.docker(
        "s1", "service", "ps", "dragonball-agent", check=False).stdout)


def engine_level(cluster: LabCluster, lab: Lab, results: dict) -> None:
    """Without DragonBall's command (an older .bin): what the engine alone needs."""
    nodes = cluster.docker("s1", "node", "ls", "--format", "{{.ID}} {{.Hostname}} {{.Status}}",
                           check=False).stdout.split("\n")
    old = next((line.split()[0] for line in nodes if " s2 " in line), None)
    if old:
        log(results, "node rm", cluster.docker("s1", "node", "rm", "--force", old,
                                               check=False).stdout)
    token = cluster.docker("s1", "swarm", "join-token", "-q", "worker").stdout.strip()
    log(results, "s2 leave", cluster.docker("s2", "swarm", "leave", "--force",
                                            check=False).stdout)
    joined = cluster.docker("s2", "swarm", "join", "--token", token, "--advertise-addr",
                            lab.ip("s2"), f"{lab.ip('s1')}:2377", check=False)
    log(results, "s2 join", (joined.stdout + joined.stderr).replace(token, "TOKEN"))
    time.sleep(20)
    log(results, "s1 node ls after join", cluster.docker("s1", "node", "ls", check=False).stdout)
    log(results, "agent tasks", cluster.docker(
        "s1", "service", "ps", "dragonball-agent", check=False).stdout)


if __name__ == "__main__":
    sys.exit(main())

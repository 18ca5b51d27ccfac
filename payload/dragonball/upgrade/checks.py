"""What an upgrade checks before it changes anything, and the spec it applies (pure).

`identity_problems` (another product, a downgrade), `node_problems` (a server down or
drained, no quorum), `room_problems` and `new_image_bytes` (room for the new images),
`cert_problems` (certificates ending before the upgrade is over), `carry_placement` (the new
release's app with the site's own choices), `record_root` (where a release's records are).
"""

from __future__ import annotations

import datetime
import os

import yaml

from dragonball.release import installed
from dragonball.upgrade import plan as plan_mod

#: Unpacked images take about this many times their compressed size on a server.
UNPACK_FACTOR = 3
CERT_MARGIN = datetime.timedelta(days=1)


def identity_problems(current: dict | None, new: dict, allow_downgrade: bool) -> list[str]:
    """Why `new` (a release id) may not replace `current`: another product, older. An app
    release with none before is a new app (DESIGN.md, "Release identity")."""
    if current is None and new.get("kind") == "app":
        return []
    if current is None:
        return ["this server has no installed release on record (/var/lib/dragonball/"
                "release/current.json): run the upgrade on the portal or another manager"]
    if current["name"] != new["name"]:
        return [f"this .bin is release {new['name']!r}, this cluster runs {current['name']!r}: "
                "it is another product"]
    order = plan_mod.compare(new["version"], current["version"])
    if order < 0 and not allow_downgrade:
        return [f"{new['name']} {new['version']} is older than the installed "
                f"{current['version']}: a downgrade (give --allow-downgrade to mean it, or "
                "'dragonball rollback' to go back to the previous release)"]
    return []


def node_problems(nodes) -> list[str]:
    """Servers not Ready, managers without quorum (swarm.model.Node list)."""
    problems = [f"server {n.hostname} is {'down' if not n.ready else n.availability}"
                for n in nodes if not n.ready or n.availability == "drain"]
    managers = [n for n in nodes if n.manager]
    reachable = [n for n in managers if n.reachability == "reachable" or n.leader]
    if managers and len(reachable) <= len(managers) // 2:
        problems.append(f"only {len(reachable)} of {len(managers)} managers are reachable: "
                        "the cluster has no quorum")
    problems += [f"manager {n.hostname} is {n.reachability or 'unreachable'}"
                 for n in managers if n not in reachable and n.ready]
    return problems


def room_problems(free: dict, need: int) -> list[str]:
    """free: hostname -> free bytes (None: unknown); need: bytes each server needs."""
    return [f"server {host} has {bytes_ >> 20} MiB free where its images are, the new "
            f"release needs about {need >> 20} MiB: free some space there"
            for host, bytes_ in sorted(free.items()) if bytes_ is not None and bytes_ < need]


def new_image_bytes(old: dict, new: dict) -> int:
    """The compressed bytes of the new manifest's images whose ID the old one lacks."""
    held = {i.get("image_id") for i in old.get("images") or []}
    return sum(i.get("size", 0) for i in new.get("images") or [] if i.get("image_id") not in held)


#: What the site chose for a service (at deploy, or by editing its spec): where it runs, how
#: many, the moving address of its network. The rest is the release's.
SITE_KEYS = ("placement", "replicas", "address")


def carry_placement(new_text: str, applied_text: str | None) -> str:
    """The new release's app spec with each service's SITE_KEYS as the app runs now (the
    implementer's choices at deploy), everything else the new release's."""
    if not applied_text:
        return new_text
    new, applied = yaml.safe_load(new_text), yaml.safe_load(applied_text)
    if not isinstance(new, dict) or not isinstance(applied, dict):
        return new_text
    for group in ("services", "jobs"):
        running = applied.get(group) or {}
        for name, service in (new.get(group) or {}).items():
            was = running.get(name)
            if not isinstance(was, dict) or not isinstance(service, dict):
                continue
            for key in SITE_KEYS:
                if key in was:
                    service[key] = was[key]
                elif key in service and key != "replicas":
                    service.pop(key)
    return yaml.safe_dump(new, sort_keys=False)


def record_root(release: dict) -> str:
    """Where a release's records are: the .bin's in release/, an app-only release's in
    release/apps/<name>/ (an app is known by its own name and version)."""
    if release.get("kind") == "app":
        return os.path.join(installed.RELEASE_DIR, "apps", release["name"])
    return installed.RELEASE_DIR


def cert_problems(files: list[str], now: datetime.datetime | None = None) -> list[str]:
    from cryptography import x509
    now = now or datetime.datetime.now(datetime.timezone.utc)
    problems = []
    for path in files:
        try:
            with open(path, "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
        except (OSError, ValueError):
            continue
        if cert.not_valid_after_utc < now + CERT_MARGIN:
            problems.append(f"{path} ends {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: renew "
                            "it first (dragonball certs renew)")
    return problems

"""Rules about what the server lends DragonBall: disk space, executable mounts, ports (pure)."""

from __future__ import annotations

from dragonball.installer.preflight import requirements as req_mod
from dragonball.installer.preflight.check import FAIL, PASS, SKIP, WARN, Check, size
from dragonball.installer.preflight.facts import Facts
from dragonball.installer.preflight.requirements import Requirements

#: What breaks when a path is on a noexec mount, and how bad it is.
NOEXEC = {
    "temp": (WARN, "the .bin unpacks its runtime there by default: "
                   "give it --target DIR on a mount that allows exec"),
    "data": (WARN, "module storage bind-mounted from it cannot hold programs: "
                   "remount it with exec, or choose another --data-dir"),
    "docker": (FAIL, "containers cannot start from it: remount it with exec "
                     "(or drop noexec from its line in /etc/fstab)"),
    "runtime": (FAIL, "the runtime is copied there and run from there (the portal's unit, "
                      "the dragonball command): remount it with exec (mount -o remount,exec "
                      "on that mount point, and drop noexec from its line in /etc/fstab)"),
}


def disk(facts: Facts, req: Requirements) -> list[Check]:
    """Free space for the images: on the data directory's file system, and the engine's."""
    if req.images_bytes is None:
        return [Check("disk", SKIP, "no release manifest: run it from the .bin "
                      "to size the images")]
    data, engine = facts.disk.get("data"), facts.disk.get("docker")
    if not data or not engine:
        missing = facts.paths["data"] if not data else facts.paths["docker"]
        return [Check("disk", WARN, f"cannot read the free space of {missing}",
                      f"check it yourself: df -h {missing}")]
    same = data["device"] == engine["device"]
    needs = req_mod.disk_needs(req, same)
    return [_disk_check(key, facts, req, factor, need, same)
            for key, (factor, need) in needs.items()]


def _disk_check(key: str, facts: Facts, req: Requirements, factor: int, need: int,
                same: bool) -> Check:
    found, path = facts.disk[key], facts.paths[key]
    mount = (facts.mounts.get(key) or {}).get("target", found["path"])
    holds = f"{facts.paths['data']} and {facts.paths['docker']}" if same else path
    detail = (f"{size(found['free'])} free on {mount} (holds {holds}); needs {size(need)}: "
              f"{size(req.images_bytes)} of images x {factor} + {size(req_mod.DISK_MARGIN)}")
    name = f"disk.{key}"
    if found["free"] < need:
        where = "choose another --data-dir or " if key == "data" else ""
        return Check(name, FAIL, detail, f"{where}free {size(need - found['free'])} on {mount}")
    if found["free"] < need * req_mod.RECOMMENDED_DISK_FACTOR:
        return Check(name, WARN, detail, "module storage and logs grow from there: "
                     f"{size(need * req_mod.RECOMMENDED_DISK_FACTOR)} free is recommended")
    return Check(name, PASS, detail)


def noexec(facts: Facts, req: Requirements) -> list[Check]:
    """Whether programs may run from the temporary, data, engine and runtime directories."""
    found = []
    for key, (status, hint) in NOEXEC.items():
        path, mount = facts.paths.get(key), facts.mounts.get(key)
        if not path:
            continue
        if mount is None:
            found.append(Check(f"noexec.{key}", WARN, f"{path}: no mount holds it in "
                               "/proc/mounts", "check it yourself: findmnt -T " + path))
        elif "noexec" in mount["options"]:
            found.append(Check(f"noexec.{key}", status, f"{path} is on a noexec mount "
                               f"({mount['fstype']} on {mount['target']})", hint))
        else:
            found.append(Check(f"noexec.{key}", PASS, f"{path}: exec allowed "
                               f"({mount['fstype']} on {mount['target']})"))
    return found


def readonly(facts: Facts, req: Requirements) -> list[Check]:
    """Every folder the install writes to is on a read-write mount: a read-only /usr
    (an immutable or hardened image) would stop the engine's install half way."""
    where = {**{p: m for p, m in (facts.system_mounts or {}).items()},
             **{facts.paths[k]: facts.mounts.get(k) for k in ("data", "docker")
                if facts.paths.get(k)}}
    found = []
    for path, mount in sorted(where.items()):
        if mount and "ro" in mount["options"]:
            found.append(Check(f"readonly.{path}", FAIL,
                               f"{path} is on a read-only mount ({mount['fstype']} on "
                               f"{mount['target']}): the install writes there",
                               f"remount it read-write for the install (mount -o remount,rw "
                               f"{mount['target']}) or make it writable in /etc/fstab"))
    if not found:
        found.append(Check("readonly", PASS, "writable: " + ", ".join(sorted(where))))
    return found


def ports(facts: Facts, req: Requirements) -> list[Check]:
    """Every port the role listens on must be free now."""
    found = []
    for port in req.ports:
        state = facts.ports.get(str(port))
        name, what = f"port.{port}", f"{port.purpose}"
        if state == "free":
            found.append(Check(name, PASS, f"{what}: free"))
        elif state == "in use":
            found.append(Check(name, FAIL, f"{what}: in use",
                               f"stop what listens on it; ss -lntup 'sport = :{port.number}' "
                               "shows which program"))
        else:
            found.append(Check(name, WARN, f"{what}: not tested ({state or 'no answer'})",
                               f"check it yourself: ss -lntup 'sport = :{port.number}'"))
    return found

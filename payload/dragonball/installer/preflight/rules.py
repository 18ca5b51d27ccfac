"""The preflight rules: `checks(facts, requirements) -> [Check]`, pure.

Each rule reads `Facts` and `Requirements` only and returns its checks; the
order of `RULES` is the order of the table. Rules about resources (disk, noexec,
ports) are in `rules_resources`, those needing the cluster in `rules_cluster`.
"""

from __future__ import annotations

from dragonball.installer.preflight import kernel
from dragonball.installer.preflight import requirements as req_mod
from dragonball.installer.preflight.check import FAIL, PASS, SKIP, WARN, Check, size
from dragonball.installer.preflight.facts import Facts
from dragonball.installer.preflight import parse
from dragonball.installer.preflight.parse import version_tuple
from dragonball.installer.preflight.requirements import Requirements
from dragonball.installer.preflight.rules_cluster import clock, hostname, portal
from dragonball.installer.preflight.rules_resources import disk, noexec, ports, readonly

NO_RELEASE = "no release manifest: run it from the .bin to check against the release"
UPGRADE_OS = "upgrade the OS (Debian 12 and Ubuntu 22.04 are new enough)"


def root(facts: Facts, req: Requirements) -> list[Check]:
    if facts.euid == 0:
        return [Check("root", PASS, "running as root")]
    return [Check("root", FAIL, f"running as uid {facts.euid}, not root",
                  "run it as root: sudo ./DragonBall-<version>.bin preflight")]


def distro(facts: Facts, req: Requirements) -> list[Check]:
    d = facts.distro
    name = d.get("name") or d.get("id") or "unknown"
    if not d.get("id"):
        return [Check("distro", WARN, "unknown distribution (no /etc/os-release)",
                      "DragonBall is tested on Debian 12; the other checks tell what is missing")]
    major = (d.get("version") or "").split(".")[0]
    if (d["id"], major) in req_mod.TESTED_DISTROS:
        return [Check("distro", PASS, f"{name}: tested")]
    tested = ", ".join(f"{i.capitalize()} {v}" for i, v in req_mod.TESTED_DISTROS)
    kin = parse.family(d.get("id"), d.get("like"))
    said = f" ({parse.FAMILY_NAMES[kin]})" if kin else " (a family DragonBall does not know)"
    return [Check("distro", WARN, f"{name}{said}: not tested",
                  f"DragonBall is tested on {tested}; it may work here: "
                  "the other checks tell what is missing")]


def arch(facts: Facts, req: Requirements) -> list[Check]:
    if not req.arch:
        return [Check("arch", SKIP, NO_RELEASE)]
    if facts.arch == req.arch:
        return [Check("arch", PASS, facts.arch)]
    return [Check("arch", FAIL, f"{facts.arch}: this release is built for {req.arch}",
                  f"run it on an {req.arch} server")]


def glibc(facts: Facts, req: Requirements) -> list[Check]:
    if not req.glibc:
        return [Check("glibc", SKIP, NO_RELEASE)]
    if req.glibc == "none":   # the runtime carries its own C library (builder/loader.py)
        return [Check("glibc", PASS, f"{facts.glibc or 'none'}: not needed, the runtime "
                      "carries its own C library")]
    if not facts.glibc:
        return [Check("glibc", FAIL, "no GNU C library found",
                      f"DragonBall's runtime needs glibc {req.glibc} or newer: {UPGRADE_OS}")]
    if version_tuple(facts.glibc) >= version_tuple(req.glibc):
        return [Check("glibc", PASS, f"{facts.glibc} (needs {req.glibc} or newer)")]
    return [Check("glibc", FAIL, f"{facts.glibc}: the runtime needs {req.glibc} or newer",
                  UPGRADE_OS)]


def kernel_version(facts: Facts, req: Requirements) -> list[Check]:
    if not req.kernel:
        return [Check("kernel", SKIP, NO_RELEASE)]
    if version_tuple(facts.kernel) >= version_tuple(req.kernel):
        return [Check("kernel", PASS, f"{facts.kernel} (needs {req.kernel} or newer)")]
    return [Check("kernel", FAIL, f"{facts.kernel}: the engine needs {req.kernel} or newer",
                  f"boot a kernel {req.kernel} or newer: {UPGRADE_OS}")]


def kernel_features(facts: Facts, req: Requirements) -> list[Check]:
    return [_feature(f, facts.kernel_features.get(f.name) or {}) for f in kernel.FEATURES]


def _feature(feature: kernel.Feature, found: dict) -> Check:
    name, state = f"kernel.{feature.name}", found.get("state", kernel.UNKNOWN)
    source = found.get("source", "")
    if state in (kernel.ACTIVE, kernel.BUILTIN, kernel.MODULE):
        return Check(name, PASS, f"{state} ({source})")
    module, symbol = feature.modules[0], feature.config[0]
    if state == kernel.MISSING:
        return Check(name, FAIL if feature.required else WARN,
                     f"missing ({source}): needed for {feature.why}",
                     f"boot a kernel with {symbol}, or install this kernel's modules "
                     f"(linux-modules-extra-$(uname -r) on Ubuntu), then: modprobe {module}")
    return Check(name, WARN, f"cannot tell ({source}): needed for {feature.why}",
                 f"check on the host: modprobe -n -v {module}, or "
                 f"grep {symbol} /boot/config-$(uname -r)")


def cgroups(facts: Facts, req: Requirements) -> list[Check]:
    c = facts.cgroups
    if c.get("unified") == "/sys/fs/cgroup":
        mode, controllers = "v2", c.get("v2_controllers") or []
        missing_memory = bool(controllers) and "memory" not in controllers
    elif c.get("v1"):
        mode = "v1 and v2 (hybrid)" if c.get("unified") else "v1"
        missing_memory = "memory" not in c["v1"]
    else:
        return [Check("kernel.cgroups", FAIL, "no cgroup file system is mounted",
                      "mount cgroup2 on /sys/fs/cgroup (systemd does it at boot)")]
    if missing_memory:
        return [Check("kernel.cgroups", WARN, f"{mode}, without the memory controller",
                      "memory limits of modules will not apply: boot with cgroup_enable=memory")]
    return [Check("kernel.cgroups", PASS, mode)]


def cpu(facts: Facts, req: Requirements) -> list[Check]:
    wants = f"minimum {req_mod.MIN_CPUS}, recommended {req_mod.RECOMMENDED_CPUS}"
    status = _grade(facts.cpus, req_mod.MIN_CPUS, req_mod.RECOMMENDED_CPUS)
    hint = "" if status == PASS else "give the server more CPUs (modules and the engine share them)"
    cpus = f"{facts.cpus} CPU" + ("" if facts.cpus == 1 else "s")
    return [Check("cpu", status, f"{cpus} ({wants})", hint)]


def memory(facts: Facts, req: Requirements) -> list[Check]:
    wants = (f"minimum {size(req_mod.MIN_MEMORY)}, "
             f"recommended {size(req_mod.RECOMMENDED_MEMORY)}")
    status = _grade(facts.memory, req_mod.MIN_MEMORY, req_mod.RECOMMENDED_MEMORY)
    hint = "" if status == PASS else "give the server more memory"
    return [Check("memory", status, f"{size(facts.memory)} ({wants})", hint)]


def _grade(value: int, minimum: int, recommended: int) -> str:
    return FAIL if value < minimum else WARN if value < recommended else PASS


def swap(facts: Facts, req: Requirements) -> list[Check]:
    if not facts.swap:
        return [Check("swap", PASS, "off")]
    return [Check("swap", WARN, f"{size(facts.swap)} of swap is on",
                  "a module near its memory limit slows down in swap instead of restarting; "
                  "DragonBall leaves swap as it is (swapoff -a and /etc/fstab turn it off)")]


def selinux(facts: Facts, req: Requirements) -> list[Check]:
    mode, config = facts.selinux.get("mode"), facts.selinux.get("config")
    if mode == "enforcing":
        return [Check("selinux", WARN, "enforcing",
                      "install sets SELinux to permissive (setenforce 0, SELINUX=permissive "
                      "in /etc/selinux/config) only with your consent (the wizard asks; "
                      "answers file: selinux_permissive: yes), records it, and reset "
                      "restores enforcing")]
    detail = mode if not config or config == mode else f"{mode} (config: {config})"
    return [Check("selinux", PASS, detail)]


def firewall(facts: Facts, req: Requirements) -> list[Check]:
    active = [name for name in ("firewalld", "ufw") if facts.firewall.get(name)]
    listed = ", ".join(str(p) for p in req.ports)
    chain = ("its own iptables chain, DRAGONBALL, opens the cluster ports to the cluster's "
             "servers only (8443/tcp to all)")
    if active:
        return [Check("firewall", PASS, f"{' and '.join(active)} active: install opens "
                      f"{listed} through it, and never disables it; {chain}")]
    return [Check("firewall", PASS, f"no firewalld or ufw active: install uses {listed}; "
                  f"{chain}")]


def docker(facts: Facts, req: Requirements) -> list[Check]:
    d = facts.docker
    bundled = f"the bundled engine {req.engine_version}" if req.engine_version else \
        "the bundled engine"
    if d.get("podman"):
        return [Check("docker", FAIL, f"{d.get('binary')} is Podman's docker command "
                      "(podman-docker), not a Docker engine: DragonBall needs Swarm",
                      "remove it (dnf remove podman-docker, or apt-get remove "
                      f"podman-docker), then run the install again: it puts in {bundled}")]
    version, how = (d.get("server"), "running") if d.get("server") else \
        (d.get("dockerd"), "installed, not running")
    if not version:
        extra = f" (a docker client {d['client']} without an engine)" if d.get("client") else ""
        if req.engine_glibc not in (None, "none") and facts.glibc and \
                version_tuple(facts.glibc) < version_tuple(req.engine_glibc):
            return [Check("docker", FAIL, f"no Docker engine{extra}, and {bundled} (Debian "
                          f"packages) needs glibc {req.engine_glibc}: this server has "
                          f"{facts.glibc}",
                          f"install Docker {req_mod.DOCKER_MIN} to 28.x from your "
                          "distribution or Docker's packages (DragonBall adopts it), then run "
                          "the install again; or use a server with a newer glibc")]
        return [Check("docker", PASS, f"no Docker engine{extra}: install puts in {bundled}")]
    if version_tuple(version) < version_tuple(req_mod.DOCKER_MIN):
        return [Check("docker", FAIL, f"Docker {version} {how}: DragonBall needs "
                      f"{req_mod.DOCKER_MIN} or newer",
                      f"upgrade the engine to {req_mod.DOCKER_MIN} or newer, or remove it "
                      f"(/var/lib/docker stays) so that install puts in {bundled}")]
    if version_tuple(version) >= version_tuple(req_mod.DOCKER_TOO_NEW):
        return [Check("docker", FAIL, f"Docker {version} {how}: it refuses the Engine API "
                      f"1.41 this release speaks (Docker {req_mod.DOCKER_TOO_NEW} raised its "
                      f"minimum to 1.44); DragonBall adopts an engine from {req_mod.DOCKER_MIN} "
                      "up to 28.x",
                      "remove it (its packages: docker-ce, docker-ce-cli, containerd.io; "
                      f"/var/lib/docker stays) so that install puts in {bundled}, or install "
                      "on a server without it")]
    if d.get("swarm") == "active":
        return [Check("docker", WARN, f"Docker {version} {how}, already in a Swarm",
                      "DragonBall makes its own Swarm: if nothing else uses this one, "
                      "leave it (docker swarm leave --force)")]
    then = "DragonBall uses it" if how == "running" else "install starts it and uses it"
    return [Check("docker", PASS, f"Docker {version} {how}: {then}")]


RULES = (root, distro, arch, glibc, kernel_version, kernel_features, cgroups, cpu, memory,
         disk, noexec, readonly, ports, swap, selinux, firewall, docker, hostname, clock,
         portal)


def checks(facts: Facts, req: Requirements) -> list[Check]:
    """Every check of `facts` against `req`, in table order."""
    return [check for rule in RULES for check in rule(facts, req)]

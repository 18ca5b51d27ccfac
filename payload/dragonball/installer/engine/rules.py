"""The Docker engine, decided and configured (pure): use the one there, or install ours.

`engine_path` picks what the engine steps do from preflight's facts;
`packages_to_install` compares the bundled .debs with what dpkg has;
`daemon_config` merges our settings into an existing daemon.json. The adapter
that runs dpkg, writes the file and starts the engine is `engine/apply.py`.
"""

from __future__ import annotations

import itertools
import json
import re

from dragonball.errors import InstallerError
from dragonball.installer.preflight.facts import Facts
from dragonball.installer.preflight.parse import version_tuple
from dragonball.installer.preflight.requirements import DOCKER_MIN

USE, START, INSTALL = "use", "start", "install"
DAEMON_JSON = "/etc/docker/daemon.json"
#: What we add to daemon.json: container logs rotate (3 files of 10 MB each), and
#: containers may open as many files as the OS preparation allows.
DAEMON_SETTINGS = {
    "log-driver": "json-file",
    "log-opts": {"max-size": "10m", "max-file": "3"},
    "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1048576, "Hard": 1048576}},
}
#: Log drivers that take max-size / max-file.
ROTATING_DRIVERS = ("json-file", "local")


def engine_path(facts: Facts, install_started: bool) -> str:
    """USE a compatible running engine, START a compatible installed one, else INSTALL.

    `install_started`: the journal shows our install of the engine began; its
    half-installed engine must not be mistaken for the server's own on a re-run.
    """
    if install_started:
        return INSTALL
    docker = facts.docker or {}
    server, dockerd = docker.get("server"), docker.get("dockerd")
    if server and version_tuple(server) >= version_tuple(DOCKER_MIN):
        return USE
    if not server and dockerd and version_tuple(dockerd) >= version_tuple(DOCKER_MIN):
        return START
    return INSTALL


def daemon_settings(nofile: int = 1048576) -> dict:
    """DAEMON_SETTINGS with the containers' open files limit `nofile` (osprep.nofile_limit)."""
    return {**DAEMON_SETTINGS,
            "default-ulimits": {"nofile": {"Name": "nofile", "Soft": nofile, "Hard": nofile}}}


def daemon_config(existing: dict | None, nofile: int = 1048576) -> dict:
    """Our settings added to an existing daemon.json; a key the admin set keeps its value.

    Log options and ulimits are merged key by key (theirs win), and log rotation is
    only added for a log driver that takes it.
    """
    existing = dict(existing or {})
    ours = daemon_settings(nofile)
    merged = {**ours, **existing}
    if merged["log-driver"] in ROTATING_DRIVERS:
        merged["log-opts"] = {**DAEMON_SETTINGS["log-opts"], **existing.get("log-opts", {})}
    elif "log-opts" not in existing:
        merged.pop("log-opts")
    merged["default-ulimits"] = {**ours["default-ulimits"],
                                 **existing.get("default-ulimits", {})}
    return merged


def parse_daemon_json(text: str | None, path: str = DAEMON_JSON) -> dict | None:
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InstallerError(f"{path} is not valid JSON: {e}",
                             "fix it (or move it away), then run install again") from e
    if not isinstance(value, dict):
        raise InstallerError(f"{path} does not hold a JSON object", "fix it or move it away")
    return value


def render_daemon_json(config: dict) -> str:
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


# --- dpkg --------------------------------------------------------------------------------------

DPKG_QUERY_FORMAT = "${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"


def parse_dpkg_query(text: str) -> dict:
    """`dpkg-query -W -f DPKG_QUERY_FORMAT` -> name -> (version, status abbreviation)."""
    found = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[0]:
            found[fields[0]] = (fields[1], fields[2].strip())
    return found


def is_installed(state: tuple | None) -> bool:
    """Fully installed ("ii"), not half-installed, unpacked or only its config left."""
    return bool(state) and len(state[1]) >= 2 and state[1][1] == "i"


def is_absent(state: tuple | None) -> bool:
    """Not there at all, or only its config files (removed, not purged)."""
    return not state or len(state[1]) < 2 or state[1][1] in ("n", "c")


def packages_to_install(bundled: list, installed: dict) -> list:
    """The bundled packages dpkg must install: missing, broken, or older than ours.

    A newer version already installed stays: we never downgrade a server's package.
    """
    wanted = []
    for package in bundled:
        state = installed.get(package["name"])
        if not is_installed(state) or compare_versions(state[0], package["version"]) < 0:
            wanted.append(package)
    return wanted


def compare_versions(a: str, b: str) -> int:
    """Debian's version order (deb-version(7)): -1, 0 or 1, like dpkg --compare-versions."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def _split_version(version: str) -> tuple[int, str, str]:
    epoch, _, rest = version.rpartition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
    return int(epoch or 0), upstream, revision


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    while a or b:
        da, a = re.match(r"(\D*)(.*)", a).groups()
        db, b = re.match(r"(\D*)(.*)", b).groups()
        for ca, cb in itertools.zip_longest(da, db, fillvalue=""):
            oa, ob = (_order(ca) if ca else 0), (_order(cb) if cb else 0)
            if oa != ob:
                return -1 if oa < ob else 1
        na, a = re.match(r"(\d*)(.*)", a).groups()
        nb, b = re.match(r"(\d*)(.*)", b).groups()
        if int(na or 0) != int(nb or 0):
            return -1 if int(na or 0) < int(nb or 0) else 1
    return 0

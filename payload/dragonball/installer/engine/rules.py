"""The Docker engine, decided and configured (pure): use the one there, or install ours.

`engine_path` picks what the engine steps do from preflight's facts;
`daemon_config` merges our settings into an existing daemon.json. The adapter
that installs the engine's files, writes the config and starts it is `engine/apply.py`.
"""

from __future__ import annotations

import json

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

"""The agent's settings: constants, module parameters checked and turned into Settings
(pure, but for load_settings), and the one way it speaks (`say`)."""

from __future__ import annotations

import dataclasses
import os
import sys

VERSION = os.environ.get("DRAGONBALL_AGENT_VERSION", "0.0.0")
RUN_DIR = os.environ.get("AGENT_RUN_DIR", "/run/dragonball-agent")


def say(text: str) -> None:
    print(f"agent: {text}", flush=True)


# --- settings (pure) ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    port: int = 9443
    bind: str = "0.0.0.0"
    cert: str = "/host/identity/agent.crt"     # this server's own (the host's, read-only)
    key: str = "/host/identity/agent.key"
    ca: str = "/run/secrets/ca.crt"
    proc_root: str = "/host/proc"
    health_socket: str = os.path.join(RUN_DIR, "health.sock")
    params_dir: str = "/host/params"             # the host's /var/lib/dragonball/params
    transfers_dir: str = "/host/transfers"       # the volume dragonball-transfers
    firewall_dir: str = "/host/firewall"         # the host's /var/lib/dragonball/firewall
    docker_socket: str = "/var/run/docker.sock"


def problems(p: dict) -> list[str]:
    """Every problem with the parameters (module/defaults.json and overrides) at once."""
    found = []
    port = p.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        found.append(f"port must be an integer 1-65535, got {port!r}")
    for key in ("bind", "secrets_dir", "identity_dir", "tls_cert", "tls_key", "ca", "proc_root",
                "health_socket", "params_dir", "transfers_dir", "docker_socket",
                "firewall_dir"):
        if not isinstance(p.get(key), str) or not p.get(key).strip():
            found.append(f"{key} must be a non-empty string, got {p.get(key)!r}")
    return found


def settings_from(p: dict) -> Settings:
    """Settings from checked parameters: the certificate and key are relative to
    identity_dir (this server's own identity, the host's folder), `ca` to secrets_dir: the
    CA of the agent's clients (the controllers'), the only one it accepts them from."""
    def under(folder: str, name: str) -> str:
        return os.path.join(p[folder], p[name])
    return Settings(port=p["port"], bind=p["bind"], cert=under("identity_dir", "tls_cert"),
                    key=under("identity_dir", "tls_key"), ca=under("secrets_dir", "ca"),
                    proc_root=p["proc_root"],
                    health_socket=p["health_socket"], params_dir=p["params_dir"],
                    transfers_dir=p["transfers_dir"], docker_socket=p["docker_socket"],
                    firewall_dir=p["firewall_dir"])


def load_settings() -> Settings:
    sys.path.insert(0, "/opt/dragon_ball/lib")  # the base image's library (dragonballbase)
    from dragonball.module import params
    p = params.load()
    found = problems(p)
    if found:
        raise SystemExit("agent: invalid parameters:\n" + "\n".join(f"  - {x}" for x in found))
    return settings_from(p)


def missing_files(settings: Settings) -> list[str]:
    return [f"{what}: {path} is not a readable file" for what, path in
            (("certificate", settings.cert), ("key", settings.key), ("CA", settings.ca))
            if not (os.path.isfile(path) and os.access(path, os.R_OK))]


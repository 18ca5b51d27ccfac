#!/usr/bin/env python3
"""Drive Debian's docker-registry (the CNCF distribution registry) as a DragonBall module.

    python3 module/registryctl.py render    validate the parameters, copy the TLS material and
                                            htpasswd for the service user, write config.yml
    python3 module/registryctl.py launch    start `docker-registry serve` (on a unix socket) and
                                            nginx in front of it (TLS, method rules) in the
                                            background; wait until /v2/ answers over TLS
    python3 module/registryctl.py status    HTTPS GET /v2/ on this host: 200 or 401 is healthy
    python3 module/registryctl.py info      version, port, repository count
    python3 module/registryctl.py stop      SIGTERM, then wait for the process to end
    python3 module/registryctl.py restart   stop, then launch (config_change: 2.8 cannot reload)

The TLS certificate, its key, the CA and the htpasswd files come in through a mounted folder
(`secrets_dir`, default /etc/dragonball/registry): nothing secret is in the image. They are
copied into RUN_DIR, readable only by the user the registry runs as, so the mount may stay
read-only and root-only. Stdlib only: this runs on the base image's python3.

Who may write (least privilege, docs/security.md): every account of `htpasswd` may read
(GET, HEAD: pull, list); only the accounts of `push_htpasswd` may write (POST, PUT, PATCH,
DELETE: push, delete). distribution's htpasswd auth has no such rule, so nginx (from the
base image) terminates TLS on the port and checks the accounts, with `limit_except GET`
naming the writers' file; distribution itself listens only on a unix socket in RUN_DIR
(0700, its own user's) and checks the full htpasswd again.
"""

from __future__ import annotations

import http.client
import os
import pwd
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, "/opt/dragon_ball/lib")  # the base image's library (dragonballbase)
from dragonball.module import daemon, params  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # this module's own files
from registry_render import render_config, render_nginx  # noqa: E402,F401 (tests use them here)

REGISTRY_BIN = "/usr/bin/docker-registry"
CONFIG = os.environ.get("REGISTRY_CONFIG", "/etc/docker/registry/config.yml")
RUN_DIR = os.environ.get("REGISTRY_RUN_DIR", "/run/dragonball-registry")
PID_FILE = os.path.join(RUN_DIR, "registry.pid")
SERVICE_USER = "docker-registry"
LOG_LEVELS = ("error", "warn", "info", "debug")
FILE_KEYS = ("tls_cert", "tls_key", "ca", "htpasswd", "push_htpasswd")
NGINX_BIN = "/usr/sbin/nginx"
READY_WITHIN_S = 60
STOP_WITHIN_S = 7  # inside the default stop grace of 10 s, less the supervisor's 2 s


def say(text: str) -> None:
    print(f"registry: {text}", flush=True)


# -- pure ----------------------------------------------------------------------------------

def problems(p: dict) -> list[str]:
    """Every problem with the parameters, not just the first."""
    found = []
    port = p.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        found.append(f"port must be an integer 1-65535, got {port!r}")
    for key in ("secrets_dir", "realm", "check_host", *FILE_KEYS):
        if not isinstance(p.get(key), str) or not p.get(key).strip():
            found.append(f"{key} must be a non-empty string, got {p.get(key)!r}")
    if not isinstance(p.get("delete_enabled"), bool):
        found.append(f"delete_enabled must be true or false, got {p.get('delete_enabled')!r}")
    if p.get("log_level") not in LOG_LEVELS:
        found.append(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {p.get('log_level')!r}")
    return found


def source_paths(p: dict) -> dict:
    """Where the mounted TLS material and htpasswd are: names relative to secrets_dir."""
    return {key: os.path.join(p["secrets_dir"], p[key]) for key in FILE_KEYS}


def run_paths(run_dir: str = RUN_DIR) -> dict:
    """Where the registry reads its private copies."""
    return {"tls_cert": os.path.join(run_dir, "tls.crt"),
            "tls_key": os.path.join(run_dir, "tls.key"),
            "ca": os.path.join(run_dir, "ca.crt"), "htpasswd": os.path.join(run_dir, "htpasswd"),
            "push_htpasswd": os.path.join(run_dir, "push.htpasswd"),
            "socket": os.path.join(run_dir, "registry.sock"),
            "nginx_conf": os.path.join(run_dir, "nginx.conf"),
            "nginx_pid": os.path.join(run_dir, "nginx.pid"),
            "nginx_temp": os.path.join(run_dir, "nginx-temp")}


def repository_count(storage_root: str) -> int:
    """Repositories in the filesystem storage: folders holding ``_manifests`` (names may nest)."""
    top = os.path.join(storage_root, "docker", "registry", "v2", "repositories")
    count = 0
    for _, dirs, _ in os.walk(top):
        if "_manifests" in dirs:
            count += 1
        dirs[:] = [d for d in dirs if not d.startswith("_")]
    return count


# -- adapters ------------------------------------------------------------------------------

def storage_root() -> str:
    storage = os.environ.get("DRAGONBALL_STORAGE_DIR", os.path.join(os.getcwd(), "storage"))
    return os.path.join(storage, "registry")


def service_user():
    """(uid, gid) of the registry's own user when we can switch to it, else None (run as is)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def http_secret(storage_dir: str) -> str:
    """The registry's upload-state secret, made once and kept in storage/ (0600)."""
    path = os.path.join(storage_dir, "registry-http.secret")
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        value = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(value + "\n")
        return value


def write_config(text: str, owner) -> None:
    """config.yml holds the upload-state secret: 0600, owned by the service user."""
    os.makedirs(os.path.dirname(CONFIG), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(CONFIG), prefix=".config.")
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    if owner:
        os.chown(tmp, *owner)
    os.replace(tmp, CONFIG)


def write_private_text(path: str, text: str) -> None:
    """A root-only file (nginx's master reads it as root), replaced atomically."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".write.")
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def copy_private(source: str, dest: str, owner) -> None:
    """Copy `source` to `dest` atomically, mode 0600 (0644 for certificates), owned by `owner`."""
    mode = 0o644 if dest.endswith(".crt") else 0o600
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".copy.")
    os.fchmod(fd, mode)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out)
    if owner:
        os.chown(tmp, *owner)
    os.replace(tmp, dest)


def render() -> int:
    try:
        p = params.load()
    except params.ParamError as e:
        say(str(e))
        return 1
    found = problems(p)
    sources = source_paths(p) if not found else {}
    found += [f"{key}: {path} is not a readable file (mount the folder with the TLS "
              f"material and htpasswd at {p['secrets_dir']})"
              for key, path in sources.items() if not os.access(path, os.R_OK)
              or not os.path.isfile(path)]
    if found:
        say("invalid parameters or missing files, config.yml left unchanged:")
        for problem in found:
            print(f"  - {problem}", flush=True)
        return 1
    owner = service_user()
    os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
    root, files = storage_root(), run_paths()
    os.makedirs(root, exist_ok=True)
    if owner:
        os.chown(RUN_DIR, *owner)
        if os.stat(root).st_uid != owner[0]:
            subprocess.run(["chown", "-R", f"{owner[0]}:{owner[1]}", root], check=True)
    for key in FILE_KEYS:
        copy_private(sources[key], files[key], owner)
    write_config(render_config(p, files, root, http_secret(os.path.dirname(root))), owner)
    os.makedirs(files["nginx_temp"], mode=0o700, exist_ok=True)
    if owner:
        os.chown(files["nginx_temp"], *owner)
    write_private_text(files["nginx_conf"], render_nginx(p, files, SERVICE_USER if owner else None))
    say(f"rendered {CONFIG} and nginx.conf (port {p['port']}, TLS and htpasswd from "
        f"{p['secrets_dir']}, writers from {p['push_htpasswd']}, storage {root}, "
        f"delete {'enabled' if p['delete_enabled'] else 'disabled'})")
    return 0


def probe(host: str, port: int, cafile: str, timeout: float = 5.0) -> tuple:
    """(HTTP status of GET /v2/, detail); status None when no TLS answer came."""
    try:
        context = ssl.create_default_context(cafile=cafile)
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        try:
            conn.request("GET", "/v2/")
            return conn.getresponse().status, ""
        finally:
            conn.close()
    except ssl.SSLCertVerificationError as e:
        return None, f"TLS verification failed ({e.verify_message}): is {host} in the certificate's SANs?"
    except (OSError, http.client.HTTPException) as e:
        return None, str(e) or type(e).__name__


def probe_socket(path: str, timeout: float = 5.0) -> tuple:
    """(HTTP status of GET /v2/ on distribution's own unix socket, detail)."""
    import socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"GET /v2/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
            head = sock.recv(64).split(b"\r\n", 1)[0].split()
        return (int(head[1]), "") if len(head) >= 2 and head[1].isdigit() else (None, "no HTTP")
    except OSError as e:
        return None, f"{path}: {e.strerror or e}"


def healthy(status) -> bool:
    return status in (200, 401)


def alive(pid) -> bool:
    """True while `pid` is a live docker-registry process (not a zombie, not a reused pid)."""
    return daemon.alive(pid, b"docker-registry")


def server_pid():
    return daemon.read_pid(PID_FILE)


def nginx_pid():
    return daemon.read_pid(run_paths()["nginx_pid"])


def container_log():
    """The registry's output: the container log, else log/registry.log (module.daemon)."""
    return daemon.container_log("registry.log")


def wait_ready(name: str, proc, check, deadline: float) -> tuple[bool, str]:
    """Until `check()` answers healthy, `proc` ends, or the deadline: (ready, detail)."""
    detail = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False, (f"{name} exited with status {proc.returncode} during start; "
                           "its own messages are in the container log")
        status, detail = check()
        if healthy(status):
            return True, f"{status}"
        time.sleep(0.3)
    return False, f"{name} did not answer /v2/ within {READY_WITHIN_S} s: {detail}"


def launch() -> int:
    p = params.load()
    owner = service_user()
    files = run_paths()
    argv = [REGISTRY_BIN, "serve", CONFIG]
    if owner:
        argv = ["setpriv", f"--reuid={owner[0]}", f"--regid={owner[1]}", "--init-groups", *argv]
    deadline = time.monotonic() + READY_WITHIN_S
    with container_log() as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    with open(PID_FILE, "w", encoding="ascii") as f:
        f.write(f"{proc.pid}\n")
    say(f"docker-registry starting (pid {proc.pid}, socket {files['socket']})")
    ready, detail = wait_ready("docker-registry", proc, lambda: probe_socket(files["socket"], 2),
                              deadline)
    if not ready:
        say(detail)
        return 1
    with container_log() as out:
        front = subprocess.Popen([NGINX_BIN, "-c", files["nginx_conf"]], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=out)
    say(f"nginx starting (pid {front.pid}, port {p['port']}: TLS, readers and writers)")
    ready, detail = wait_ready("nginx", front,
                               lambda: probe(p["check_host"], p["port"], files["ca"], timeout=2),
                               deadline)
    if not ready:
        say(detail)
        return 1
    say(f"ready: GET /v2/ answers {detail} over TLS on port {p['port']}")
    return 0


def status() -> int:
    p = params.load()
    files = run_paths()
    state, detail = probe_socket(files["socket"])
    if not healthy(state):
        say(f"unhealthy: docker-registry on {files['socket']}: {detail or f'HTTP {state}'}")
        return 1
    state, detail = probe(p["check_host"], p["port"], files["ca"])
    if healthy(state):
        print(f"GET https://{p['check_host']}:{p['port']}/v2/ -> {state}")
        return 0
    say(f"unhealthy: GET /v2/ on port {p['port']}: {detail or f'HTTP {state}'}")
    return 1


def version() -> str:
    try:
        out = subprocess.run([REGISTRY_BIN, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out[-1] if out else "unknown"


def info() -> int:
    p = params.load()
    root = storage_root()
    print(f"registry: docker-registry {version()} behind nginx, port {p['port']}, TLS, "
          "htpasswd auth (writers: push_htpasswd), "
          f"delete {'enabled' if p['delete_enabled'] else 'disabled'}")
    print(f"repositories: {repository_count(root)}")
    print(f"storage: {root}")
    return 0


def stop(kill: bool = False) -> int:
    """nginx first (no new requests), then the registry; 1 if either is still running."""
    code = 0
    for name, pid, marker in (("nginx", nginx_pid(), b"nginx"),
                              ("docker-registry", server_pid(), b"docker-registry")):
        outcome = daemon.terminate(pid, marker, STOP_WITHIN_S / 2, kill)
        if outcome == "not running":
            say(f"{name} is not running")
        elif outcome == "still running":
            say(f"{name} (pid {pid}) still running {STOP_WITHIN_S / 2:.1f} s after SIGTERM")
            code = 1
        else:
            say(f"{name} (pid {pid}) stopped")
    return code


def main(argv: list[str]) -> int:
    commands = {"render": render, "launch": launch, "status": status, "info": info,
                "stop": stop, "restart": lambda: stop(kill=True) or launch()}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return commands[argv[0]]()
    except params.ParamError as e:
        say(str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

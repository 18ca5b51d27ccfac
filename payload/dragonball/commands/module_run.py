"""`dragonball module run DIR` and `module stop NAME`: one module on this machine's Docker
engine, the module author's inner loop (issue 15: there was no local runner).

    python build.py module examples/store          # its image: dragonball-module/store:latest
    dragonball module run examples/store --param maxmemory=64mb
    dragonball module stop store

`run` starts the image built from DIR (`build.py module DIR`) as `dragonball-run-<name>`
(one at a time: a new run replaces it), with the parameters given (`--param KEY=VALUE`, JSON
values where they parse, mounted read-only and announced as the cluster does) and its
storage/ and log/ as Docker volumes kept between runs (`dragonball-run-<name>-storage`,
`-log`: filled from the image with its owners, as a slot's volumes are; `--fresh` starts
them empty). It
asks the module's own `status` every second, as Swarm's health check would, and ends when
it passes (exit 0: its address, its `info`, how to change a parameter, read the log, stop),
fails past the start timeout, or the container exits (exit 1: its log's last lines). The
engine is reached with the `docker` command (its socket): nothing else is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import time

from rich.markup import escape

from dragonball.console import console
from dragonball.errors import (ExitStatus, Failed, InvalidInput, NotFound, SupervisorError,
                               Unavailable)
from dragonball.shared.childenv import child_environment

REPOSITORY = "dragonball-module"   # build.py module's images (builder/pipeline.py)
CONTAINER = "dragonball-run-{}"
LABEL = "io.dragonball.run"
PARAMS_MOUNT = "/run/dragonball-params"   # orchestrator/naming.py: where a task reads them
LOCAL_APP = "local"                       # DRAGONBALL_APP of a module run here
SERVICE_ROOT = "/opt/dragon_ball/service"
MODULE_LABEL = "io.dragonball.module"     # the module folder an image holds, when it says
RUN_SH = "/opt/dragon_ball/bin/run.sh"
START_TIMEOUT_S = 120.0
LOG_LINES = 30


class RunFailed(SupervisorError, Failed):
    """It exited, or was not healthy in time."""


class RunInvalid(SupervisorError, InvalidInput):
    """A bad --param."""


class ImageMissing(SupervisorError, NotFound):
    """No image of the module, or no container of that name."""


class EngineUnavailable(SupervisorError, Unavailable):
    """No docker command, or the engine does not answer."""


def register(module_commands) -> None:
    run = module_commands.add_parser(
        "run", help="run one module on this machine's Docker engine until it is healthy",
        description="Start the image `build.py module DIR` made, with the parameters "
                    "given, and wait for the module's own status to pass. Exit status: 0 "
                    "healthy, 1 it failed (its log said), 2 invalid input, 3 no image, 5 "
                    "no Docker engine.")
    run.add_argument("dir", help="the folder build.py module built (its Dockerfile)")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="a parameter (a JSON value where it parses: 8080, true, [1,2])")
    run.add_argument("--fresh", action="store_true",
                     help="start with empty storage/ and log/ (kept between runs otherwise)")
    run.add_argument("--timeout", type=float, default=START_TIMEOUT_S, metavar="S",
                     help=f"how long it may take to be healthy (default {START_TIMEOUT_S:.0f})")
    run.add_argument("--json", action="store_true", help="print one JSON document")
    run.set_defaults(handler=run_command)
    stop = module_commands.add_parser("stop", help="stop and remove a module `run` started")
    stop.add_argument("name", help="the module's name (its folder's)")
    stop.set_defaults(handler=stop_command)


def parse_params(items: list[str]) -> dict:
    """{key: value} of KEY=VALUE items: JSON values where they parse, else the text (pure);
    InvalidInput naming a bad item."""
    found = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RunInvalid(f"--param {item!r}: give KEY=VALUE", "e.g. --param port=8080")
        try:
            found[key] = json.loads(text)
        except ValueError:
            found[key] = text
    return found


def state_dir(name: str, environ=os.environ) -> pathlib.Path:
    base = environ.get("XDG_CACHE_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "dragonball" / "run" / name


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(["docker", *args], capture_output=True, text=True,
                              timeout=timeout, env=child_environment(os.environ),
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError as e:
        raise EngineUnavailable("no docker command on this machine",
                          "module run needs a Docker engine here (sudo bash scripts/setup.sh "
                          "on a build machine)") from e
    except subprocess.TimeoutExpired as e:
        raise EngineUnavailable(f"docker {args[0]} did not answer within {timeout:.0f} s",
                          "is the engine running? systemctl status docker") from e
    if check and done.returncode != 0:
        raise EngineUnavailable(f"docker {' '.join(args[:2])} failed: "
                          f"{(done.stderr or done.stdout).strip()[-300:]}",
                          "is the engine running, and are you root (or in group docker)?")
    return done


def run_command(args: argparse.Namespace) -> int:
    folder = pathlib.Path(args.dir).resolve()
    name = folder.name
    params = parse_params(args.param)
    image = f"{REPOSITORY}/{name}:latest"
    found = docker("image", "inspect", "--format",
                   f'{{{{index .Config.Labels "{MODULE_LABEL}"}}}}', image, check=False)
    if found.returncode != 0:
        raise ImageMissing(f"no image {image} on this machine",
                       f"build it first: python build.py module {args.dir}")
    # An image FROM the built-in Service holds its module folder `service` (its label says so,
    # and the label is inherited), whatever the folder it was built from is called.
    module = found.stdout.strip() if found.stdout.strip() not in ("", "<no value>") else name
    container = CONTAINER.format(name)
    docker("rm", "-f", container, check=False)
    state = state_dir(name)
    volumes = {what: f"{container}-{what}" for what in ("storage", "log")}
    if args.fresh:
        docker("volume", "rm", "-f", *volumes.values(), check=False)
    (state / "params").mkdir(parents=True, exist_ok=True, mode=0o700)
    (state / "params" / "params.json").write_text(json.dumps(params, indent=2) + "\n")
    (state / "params" / "revision").write_text("1\n")
    docker("run", "-d", "--name", container, "--label", f"{LABEL}={name}",
           "-e", f"DRAGONBALL_APP={LOCAL_APP}", "-e", f"DRAGONBALL_SERVICE={name}",
           "-e", f"DRAGONBALL_PARAMS_FROM={PARAMS_MOUNT}/params.json",
           "-e", "DRAGONBALL_PARAMS_OWNER=portal",
           "-v", f"{state / 'params'}:{PARAMS_MOUNT}:ro",
           "-v", f"{volumes['storage']}:{SERVICE_ROOT}/{module}/storage",
           "-v", f"{volumes['log']}:{SERVICE_ROOT}/{module}/log", image)
    seconds = wait_healthy(container, args.timeout, args.json)
    info = docker("exec", container, RUN_SH, "info", check=False).stdout.strip()
    address = docker("inspect", "--format",
                     "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                     container).stdout.split()
    if args.json:
        console.print_json(json.dumps({"ok": True, "module": name, "container": container,
                                       "address": address[0] if address else None,
                                       "seconds": round(seconds, 1), "info": info,
                                       "params": params, "volumes": sorted(volumes.values())}))
        return ExitStatus.OK
    console.print(f"[green]healthy[/green] {escape(name)} in {seconds:.1f} s: container "
                  f"{container}, address {escape(' '.join(address) or '?')}")
    if info:
        console.print(escape(info))
    console.print(f"storage/ and log/ kept in the volumes {', '.join(volumes.values())}\n"
                  f"a parameter, live: echo '{{\"KEY\": VALUE}}' | docker exec -i {container} "
                  f"{RUN_SH} config_change\nits log: docker logs -f {container}\n"
                  f"stop it: dragonball module stop {escape(name)}")
    return ExitStatus.OK


def wait_healthy(container: str, timeout: float, quiet: bool) -> float:
    """Seconds until the module's `status` passes; RunFailed with its log when the
    container exits or `timeout` passes."""
    began = time.monotonic()
    if not quiet:
        console.print(f"waiting for {container}'s status (asked every second, "
                      f"{timeout:.0f} s at most)")
    while True:
        running = docker("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}",
                         container).stdout.split()
        if running and running[0] != "true":
            raise RunFailed(f"{container} exited ({running[1] if len(running) > 1 else '?'}) "
                            f"before it was healthy; its log:\n{log_tail(container)}",
                            "fix what its start scripts say, rebuild (build.py module DIR) "
                            "and run again")
        if docker("exec", container, RUN_SH, "status", check=False, timeout=90).returncode == 0:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            status = docker("exec", container, RUN_SH, "status", check=False, timeout=90)
            raise RunFailed(f"{container} was not healthy within {timeout:.0f} s: "
                            f"{(status.stdout + status.stderr).strip()[-500:]}\nits log:\n"
                            f"{log_tail(container)}", "its status scripts say why; it still "
                            f"runs: docker logs {container}; dragonball module stop")
        time.sleep(1.0)


def log_tail(container: str) -> str:
    done = docker("logs", "--tail", str(LOG_LINES), container, check=False)
    return "\n".join(f"  | {line}" for line in (done.stdout + done.stderr).splitlines())


def stop_command(args: argparse.Namespace) -> int:
    container = CONTAINER.format(args.name)
    found = docker("inspect", "--format", "{{.Id}}", container, check=False)
    if found.returncode != 0 or docker("rm", "-f", container, check=False).returncode != 0:
        raise ImageMissing(f"no module {args.name!r} runs here ({container})",
                       "docker ps --filter label=io.dragonball.run lists what module run "
                       "started")
    console.print(f"stopped {escape(args.name)}; its storage/ and log/ stay in the volumes "
                  f"{container}-storage and {container}-log (run --fresh empties them)")
    return ExitStatus.OK

"""`run.sh`: the entry point of every module container.

    run.sh [start]                        run the module (the container's main process)
    run.sh status [--json]                healthy? (exit 0 = healthy)
    run.sh info [--json]                  describe the container
    run.sh config_change [FILE|-] [--replace] [--json]
                                          merge new parameters, run action/config_change
                                          (DRAGONBALL_EVENT=config_change), keep them on success
    run.sh notify [FILE|-] [--json]       another service changed: run action/config_change
                                          with the parameters unchanged and not persisted,
                                          DRAGONBALL_EVENT=notify, DRAGONBALL_NOTIFICATION_FILE=
                                          the payload; a seq already handled in this container
                                          is acknowledged without running anything
    run.sh check                          check the module against the spec

FILE is a JSON object; - or nothing reads standard input. With DRAGONBALL_PARAMS_OWNER=portal
the portal owns the parameters: in force are the last ones applied in this container, else
the file $DRAGONBALL_PARAMS_FROM; storage/ is not used for them.

Exit codes (the module spec's own range, docs/module-spec.md): 0 ok, 1 an action failed,
2 invalid module, command line or input (the runtime's OK, FAILED and INVALID), 3 the
supervisor itself failed (a bug; the runtime says 70 for its own).
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import sys
import traceback

from dragonball.errors import DragonBallError, ExitStatus, ModuleError, SupervisorInputInvalid
from dragonball.module import load_module
from dragonball.supervisor import notification
from dragonball.supervisor import params as params_mod
from dragonball.supervisor.lifecycle import Supervisor
from dragonball.supervisor.runtime import Runtime

log = logging.getLogger("dragonball")
LOG_MAX_BYTES = 1 << 20
LOG_BACKUPS = 3
#: run.sh's "the supervisor itself failed": the module spec's own status (docs/module-spec.md),
#: kept apart from the runtime's ExitStatus, whose 3 means "not found".
SUPERVISOR_FAILED = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run.sh", description="DragonBall module supervisor",
                                epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="start",
                   choices=["start", "status", "info", "config_change", "notify", "check"])
    p.add_argument("file", nargs="?", help="config_change: JSON file of new parameters; "
                   "notify: JSON file of the notification; - for standard input (the default)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--replace", action="store_true",
                   help="config_change: the given parameters replace all current ones")
    return p


def _setup_logging(log_dir: str, to_console: bool) -> None:
    log.setLevel(logging.INFO)
    folder = os.path.join(log_dir, "dragonball")
    os.makedirs(folder, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(
        os.path.join(folder, "supervisor.log"), maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(file_handler)
    if to_console:
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter("[dragonball] %(message)s"))
        log.addHandler(console)


def _read_input(source: str | None, parse, what: str) -> dict:
    """`parse(text, source name)` of FILE or standard input; `what` names it in errors."""
    if source in (None, "-"):
        return parse(sys.stdin.read(), "standard input")
    try:
        with open(source, encoding="utf-8") as f:
            return parse(f.read(), source)
    except OSError as e:
        raise SupervisorInputInvalid(f"cannot read {what} from {source}: {e.strerror}",
                                     "give a readable JSON file, or - for standard input") from e


def _print_report(report, as_json: bool) -> int:
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    elif report.event == "info" and report.ok:
        print("".join(s.output for s in report.scripts), end="")
    else:
        print(report.render())
    return ExitStatus.OK if report.ok else ExitStatus.FAILED  # a script failed or timed out


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    module = load_module(runtime.module_dir())
    if args.command == "check":
        print(f"module {module.name} follows the spec")
        return ExitStatus.OK
    _setup_logging(module.path("log"), to_console=args.command == "start")
    supervisor = Supervisor(runtime, module)
    if args.command == "start":
        return supervisor.run()
    if args.command == "config_change":
        change = _read_input(args.file, params_mod.parse, "parameters")
        report = supervisor.config_change(change, args.replace)
    elif args.command == "notify":
        report = supervisor.notify(_read_input(args.file, notification.parse, "a notification"))
    else:
        report = getattr(supervisor, args.command)()
    return _print_report(report, args.json)


def main(argv: list | None = None) -> int:
    parser = _parser()
    args = parser.parse_intermixed_args(argv)
    if args.replace and args.command != "config_change":
        parser.error("--replace is an option of config_change only")
    try:
        return run(args, Runtime.from_environ(dict(os.environ)))
    except ModuleError as e:
        print(f"refusing to run: {e}", file=sys.stderr)
        return ExitStatus.INVALID
    except DragonBallError as e:  # the module spec's 2: what it was given is not usable
        print(f"error: {e}", file=sys.stderr)
        return ExitStatus.INVALID
    except Exception:  # a bug of ours: say where, and keep the exit code distinct
        traceback.print_exc()
        return SUPERVISOR_FAILED


if __name__ == "__main__":
    sys.exit(main())

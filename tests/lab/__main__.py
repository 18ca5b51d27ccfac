"""`python -m tests.lab`: the lab by hand (scripts/lab.sh wraps it; docs/lab.md).

Exit status: 0 done · 1 the lab failed (message and hint on stderr) · 2 bad usage.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import statistics
import sys
import time

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from .errors import LabError
from .lab import Lab

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False, markup=False)])
    try:
        return args.command(args)
    except LabError as e:
        if args.debug:
            err_console.print_exception()
        err_console.print(f"lab: error: {e}", markup=False)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/lab.sh", description=__doc__.splitlines()[0],
                                     parents=[_common(None)])
    parser.set_defaults(name="dblab", debug=False)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    # The options are accepted before or after the command; SUPPRESS keeps a
    # subcommand's unset option from overwriting one given before it.
    sub_parser = functools.partial(sub.add_parser, parents=[_common(argparse.SUPPRESS)])
    up = sub_parser("up", help="bring up N servers s1..sN")
    up.add_argument("servers", type=int, metavar="N")
    _lab_options(up)
    up.set_defaults(command=_up)
    sub_parser("down", help="remove the lab entirely").set_defaults(command=_down)
    sub_parser("status", help="the lab's servers and their state").set_defaults(command=_status)
    shell = sub_parser("shell", help="a root shell on one server")
    shell.add_argument("server", metavar="NAME", help="s1, s2, ... (or 1, 2, ...)")
    shell.set_defaults(command=_shell)
    bench = sub_parser("bench", help="time up() and down() for each size given")
    bench.add_argument("sizes", type=int, nargs="+", metavar="N")
    bench.add_argument("--repeat", type=int, default=1, metavar="R", help="runs per size")
    _lab_options(bench)
    bench.set_defaults(command=_bench)
    return parser


def _common(default) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default=default, help="the lab's name (default: dblab)")
    common.add_argument("--debug", action="store_true", default=default,
                        help="show every command run, and tracebacks")
    return common


def _lab_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--internal", action="store_true",
                        help="no way out of the lab network (docker network --internal)")
    parser.add_argument("--subnet", help="IPv4 subnet of the lab network (default: a free /24)")
    parser.add_argument("--fresh-host-keys", action="store_true",
                        help="new SSH host keys on each server's first boot (~0.45 s CPU each)")


def _up(args) -> int:
    lab = Lab(args.name, args.servers, args.internal, args.subnet,
              fresh_host_keys=args.fresh_host_keys)
    started = time.monotonic()
    lab.up()
    console.print(f"lab {lab.name}: {len(lab.servers)} servers up in "
                  f"{time.monotonic() - started:.1f} s ({lab.mode} mode)")
    _print_status(lab)
    console.print(f"a shell: sudo bash scripts/lab.sh --name {lab.name} shell s1")
    return 0


def _down(args) -> int:
    Lab(args.name, 1).down()
    console.print(f"lab {args.name}: removed (containers, volumes, network, firewall rule)")
    return 0


def _status(args) -> int:
    _print_status(Lab.attach(args.name))
    return 0


def _print_status(lab: Lab) -> None:
    table = Table(title=f"lab {lab.name} on {lab.subnet}"
                        f"{' (internal)' if lab.spec.internal else ''}")
    for column in ("server", "container", "ip", "container state", "systemd", "mode"):
        table.add_column(column)
    for row in lab.status():
        table.add_row(row["server"], row["container"], row["ip"], row["state"], row["system"],
                      row["mode"])
    console.print(table)
    if lab.spec.internal:
        console.print(f"packets that tried to leave: {lab.leak_packets()}")


def _shell(args) -> int:
    lab = Lab.attach(args.name)
    server = int(args.server) if args.server.isdigit() else args.server
    argv = lab.exec_argv(server, ["bash", "-l"], tty=sys.stdin.isatty(), interactive=True)
    os.execv(argv[0], argv)


def _bench(args) -> int:
    """Each size `repeat` times: the median and best up()/down(), memory once up.

    A first lab of one server runs before, uncounted: it pays for finding out
    which run mode works here (--privileged or the capability set), ~0.5 s.
    """
    table = Table(title=f"lab up/down ({args.repeat} run(s) each; load average "
                        f"{os.getloadavg()[0]:.1f} at start)")
    for column in ("servers", "up median (s)", "up best (s)", "down median (s)",
                   "memory per server (MiB)", "degraded"):
        table.add_column(column, justify="right")
    # Not counted: the first lab of a process finds out whether --privileged works.
    _bench_once(args, 1)
    for size in args.sizes:
        runs = [_bench_once(args, size) for _ in range(args.repeat)]
        ups, downs, memory, degraded = zip(*runs)
        table.add_row(str(size), f"{statistics.median(ups):.1f}", f"{min(ups):.1f}",
                      f"{statistics.median(downs):.1f}", f"{statistics.median(memory):.0f}",
                      str(max(degraded)))
    console.print(table)
    return 0


def _bench_once(args, size: int) -> tuple[float, float, float, int]:
    lab = Lab(f"{args.name}-bench{size}", size, args.internal, args.subnet,
              fresh_host_keys=args.fresh_host_keys)
    started = time.monotonic()
    lab.up()
    up_s = time.monotonic() - started
    memory = lab.memory_mib()
    started = time.monotonic()
    lab.down()
    return up_s, time.monotonic() - started, sum(memory.values()) / size, len(lab.degraded)


if __name__ == "__main__":
    sys.exit(main())

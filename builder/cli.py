"""``python build.py [base|examples|all]``: the command line of the build pipeline.

One top-level handler turns a `DragonBallError` into a message and the exit status of its
category (dragonball.errors; README.md, "Exit statuses": a failed build 1, no Docker engine
5), any other exception into its traceback and 70 (a defect of the builder), Ctrl-C into 130;
``--debug`` adds the traceback of a DragonBallError and debug logging.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import time
from collections.abc import Sequence

from rich.logging import RichHandler
from rich.table import Table

from dragonball.errors import DragonBallError, ExitStatus

from builder import REPO_ROOT, bundle, pipeline
from builder.engine import Engine
from builder.progress import Reporter

log = logging.getLogger(__name__)


TARGETS = {
    "base": "the base image dragonballbase:bookworm (debootstrap root filesystem, cached)",
    "bare": "dragonball-bare:bookworm, a bare Debian server (systemd, sshd, no python3) "
            "for tests and the lab",
    "bare-bullseye": "dragonball-bare:bullseye, the same server on Debian 11 (glibc 2.31): "
                     "the old userland of the tests",
    "bare-trixie": "dragonball-bare:trixie, the same server on Debian 13 (glibc 2.41)",
    "bare-docker": "dragonball-bare:docker, the Debian 12 server with Debian's own docker.io "
                   "(an engine DragonBall adopts)",
    "bare-rhel": "dragonball-bare:rhel, a stand-in for an rpm-based server: the Debian 12 "
                 "server without dpkg or apt, with RHEL 9's os-release",
    "examples": "the base image, then every examples/<name>/Dockerfile as "
                "dragonball-example/<name>:latest",
    "module": "one module's image from DIR (its Dockerfile, FROM dragonballbase; its module "
              "folder DIR/<name> checked against the spec first) as "
              "dragonball-module/<name>:latest, on the base image (both cached)",
    "app": "an app-only release: dist/<name>-<version>.app (its module images and app spec, "
           "no runtime, no engine), from --release FILE naming app:; --since an earlier "
           ".bin or .app leaves out what the cluster has",
    "keygen": "a new Ed25519 release-signing key pair in --keys DIR (default: keys/)",
    "bin": "the release (default): dist/DragonBall-<version>.bin, dist/manifest.json, "
           "dist/SHA256SUMS, from --release FILE",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse build.py's command line."""
    parser = argparse.ArgumentParser(
        prog="build.py", description="Build DragonBall's images, with no public registry.",
        epilog="targets:\n" + "\n".join(f"  {k:<13} {v}" for k, v in TARGETS.items()) +
               "\n\nenvironment: DRAGONBALL_CACHE (default /var/cache/dragonball), "
               "DRAGONBALL_DEBIAN_MIRROR (default: from /etc/apt)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="?", default="bin", choices=TARGETS,
                        help="what to build (default: bin)")
    parser.add_argument("dir", nargs="?", type=pathlib.Path, metavar="DIR",
                        help="module: the folder holding the module's Dockerfile")
    parser.add_argument("--release", type=pathlib.Path, default=REPO_ROOT / "release.yaml",
                        help="the release manifest (default: release.yaml)")
    parser.add_argument("--dist", type=pathlib.Path, default=REPO_ROOT / "dist",
                        help="where the .bin and its artifacts go (default: dist/)")
    parser.add_argument("--sign-key", type=pathlib.Path,
                        help="sign the release with this Ed25519 private key (PEM, mode 0600)")
    parser.add_argument("--since", type=pathlib.Path, metavar="FILE",
                        help="app: the .bin or .app the cluster has; its blobs are left out")
    parser.add_argument("--keys", type=pathlib.Path, default=pathlib.Path("keys"),
                        help="keygen: where to write the key pair (default: keys/)")
    parser.add_argument("--debug", action="store_true",
                        help="log every step and show tracebacks on errors")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, reporter: Reporter | None = None) -> int:
    """Run build.py; return its exit status."""
    args = parse_args(argv)
    reporter = reporter or Reporter()
    _configure_logging(reporter, args.debug)
    try:
        run(args, reporter)
    except DragonBallError as e:
        if args.debug:
            reporter.console.print_exception()
        reporter.error(str(e))
        return e.exit_status
    except KeyboardInterrupt:
        reporter.error("interrupted")
        return ExitStatus.INTERRUPTED
    except Exception:  # noqa: BLE001 - the one place that turns a bug into a report
        reporter.console.print_exception(show_locals=args.debug)
        reporter.error("build.py failed unexpectedly (a bug: the traceback above says where)")
        return ExitStatus.INTERNAL
    return ExitStatus.OK


def run(args: argparse.Namespace, reporter: Reporter) -> None:
    """Build `args.target`, then print what was built."""
    started, target = time.monotonic(), args.target
    engine = Engine()
    try:
        env = pipeline.BuildEnv(reporter=reporter, engine=engine)
        if target == "keygen":
            key, pub = bundle.write_key_pair(args.keys)
            reporter.note(f"private key {key} (keep it secret), public key {pub} "
                          "(give it to implementers through a channel you trust)")
            return
        if target == "bin":
            result = bundle.build_bin(env, args.release, args.dist, args.sign_key)
            _print_bin_summary(reporter, result, time.monotonic() - started)
            return
        if target == "app":
            from builder.app_release import build_app
            result = build_app(env, args.release, args.dist, args.since)
            reporter.note(f"{result.path}: {result.size / 1e6:.1f} MB, sha256 "
                          f"{result.sha256[:16]}…, {len(result.images)} image(s), "
                          f"{result.left_out} blob(s) left out (the cluster has them)")
            reporter.note(f"on a manager, as root: dragonball release add "
                          f"{result.path.name} --apply")
            return
        if target == "module":
            plan = pipeline.plan_build(env, with_examples=False)
            module = pipeline.module_build(args.dir)     # checked before the base is built
            built = [pipeline.build_base(env, plan), pipeline.build_example(env, module,
                                                                            plan.mirror)]
            _print_summary(reporter, engine, built, time.monotonic() - started)
            return
        if target == "bare" or target.startswith("bare-"):
            variant = target.partition("-")[2] or None
            _print_summary(reporter, engine, [pipeline.build_bare(env, variant)],
                           time.monotonic() - started)
            return
        plan = pipeline.plan_build(env, with_examples=target == "examples")
        built = [pipeline.build_base(env, plan)]
        if target == "examples" and not plan.examples:
            reporter.note("no examples/<name>/Dockerfile found: no example images to build")
        built += [pipeline.build_example(env, e, plan.mirror) for e in plan.examples]
        _print_summary(reporter, engine, built, time.monotonic() - started)
    finally:
        engine.close()


def _print_bin_summary(reporter: Reporter, result, seconds: float) -> None:
    table = Table(title=f"{result.path} built in {seconds:.1f} s", title_justify="left")
    for column in ("section", "size", "sha256"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for name, info in result.manifest["sections"].items():
        table.add_row(name, f"{info['size'] / 1e6:.1f} MB", info["sha256"][:16] + "…")
    table.add_row("[bold].bin[/]", f"{result.path.stat().st_size / 1e6:.1f} MB",
                  result.sha256[:16] + "…")
    reporter.console.print(table)
    for image in result.manifest["images"]:
        reporter.note(f"image {image['ref']}: {image['size'] / 1e6:.1f} MB compressed")


def _print_summary(reporter: Reporter, engine: Engine, built: list[str], seconds: float) -> None:
    table = Table(title=f"built in {seconds:.1f} s", title_justify="left")
    table.add_column("image")
    table.add_column("size", justify="right")
    for name in built:
        table.add_row(name, f"{engine.image_size(name) / 1e6:.1f} MB")
    reporter.console.print(table)


def _configure_logging(reporter: Reporter, debug: bool) -> None:
    handler = RichHandler(console=reporter.console, show_path=debug, markup=False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(name)s: %(message)s", handlers=[handler], force=True)
    # docker-py and urllib3 are chatty at DEBUG and say nothing we act on.
    for noisy in ("urllib3", "docker"):
        logging.getLogger(noisy).setLevel(logging.INFO)

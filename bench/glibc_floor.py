#!/usr/bin/env python3
"""How old a glibc can the release run on? The highest `GLIBC_x.y` each part's ELF files
need (builder/elf.py), and the distributions whose glibc is new enough (issue 14's target:
2.17 or no host libc at all).

    .venv/bin/python bench/glibc_floor.py              # the cached runtime and engine tree
    .venv/bin/python bench/glibc_floor.py --markdown FILE

Reads the build cache (/var/cache/dragonball: run `python build.py` once first): the newest
frozen runtime tree, and the newest engine tree section (builder/engine_tree.py) unpacked
into a temporary folder. A part that carries its own C library and loader, and needs no
library of the server, needs no glibc at all ("none"); otherwise its files' highest need.
Prints one row per part and one per distribution. Nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pathlib
import sys
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from builder import elf, engine_tree, loader  # noqa: E402
from builder.cache import cache_dir  # noqa: E402

#: glibc of each distribution's release (their package archives), newest last
DISTROS = (("RHEL 7 / CentOS 7", "2.17"), ("RHEL 8 / Rocky 8 / Alma 8", "2.28"),
           ("Debian 11", "2.31"), ("Ubuntu 20.04", "2.31"), ("SUSE 15 SP5", "2.31"),
           ("RHEL 9 / Rocky 9 / Alma 9", "2.34"), ("Ubuntu 22.04", "2.35"),
           ("Debian 12", "2.36"), ("Ubuntu 24.04", "2.39"), ("Debian 13", "2.41"))


def scan(folder: pathlib.Path) -> tuple[int, str | None, str | None]:
    """(ELF files needing some glibc, their highest need, the file)."""
    count = sum(1 for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
                and elf.glibc_versions(p))
    floor, where = elf.tree_floor(folder)
    return count, floor, where


def parts(cache: pathlib.Path) -> list[tuple[str, int, str | None, str | None]]:
    rows = []
    runtime = cache / "runtime"
    trees = sorted((p for p in runtime.iterdir() if p.is_dir() and not p.name.startswith(".")),
                   key=lambda p: p.stat().st_mtime) if runtime.is_dir() else []
    if trees:
        count, floor, where = scan(trees[-1])
        onedir = trees[-1] / "dragonball"
        if onedir.is_dir() and not loader.tree_needs_host(onedir):
            floor, where = "none", "carries glibc and its loader"
        rows.append(("runtime (PyInstaller onedir)", count, floor, where))
    sections = sorted((cache / "engine").glob("tree-*.tar"), key=lambda p: p.stat().st_mtime)
    if sections:
        with tempfile.TemporaryDirectory() as temp:
            tree = pathlib.Path(temp)
            with tarfile.open(sections[-1]) as tar:
                for entry in json.load(tar.extractfile("engine.json"))["files"]:
                    target = tree / entry["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(gzip.decompress(tar.extractfile(entry["member"]).read()))
            count, floor, where = scan(tree)
            if not engine_tree.tree_problems(tree):
                floor, where = "none", "carries glibc and its loader"
            rows.append(("engine tree (dockerd, containerd, runc, ...)", count, floor, where))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", help="write the tables as markdown to this file too")
    args = parser.parse_args()
    rows = parts(cache_dir(os.environ))
    if not rows:
        print("nothing cached: run 'python build.py' first", file=sys.stderr)
        return 1
    lines = ["| part | ELF files | needs glibc | set by |", "|---|---:|---:|---|"]
    lines += [f"| {name} | {count} | {floor or '-'} | `{where or '-'}` |"
              for name, count, floor, where in rows]
    needs = [r[2] for r in rows if r[2] and r[2] != "none"]
    release = max(needs, key=elf.version_key) if needs else "0"
    lines += ["", f"The release needs glibc **{release if needs else 'none'}** (target: 2.17 "
              "or none).", "",
              "| distribution | its glibc | glibc enough (the kernel: preflight) |", "|---|---:|---|"]
    lines += [f"| {name} | {version} | "
              f"{'yes' if elf.version_key(version) >= elf.version_key(release) else 'no'} |"
              for name, version in DISTROS]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Capture this host as a preflight case: the files `probe` reads, and the system's answers.

    .venv/bin/python tests/unit/data/hosts/capture.py CASE [--data-dir DIR] [--role ROLE]

writes tests/unit/data/hosts/CASE/root/ (only what probe read, nothing else),
CASE/case.json (role, paths, the LiveSystem answers) and leaves CASE/expected.json
to `DRAGONBALL_UPDATE_GOLDEN=1 pytest tests/unit/test_preflight_golden.py`.
Review what it wrote before committing it: it is a copy of this host's files.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil

from dragonball.shared import ports
from dragonball.shared.paths import DATA_DIR
from dragonball.installer.preflight import default_paths, kernel, probe
from dragonball.installer.preflight.facts import HostFiles, relative
from dragonball.installer.preflight.system import LiveSystem

HERE = pathlib.Path(__file__).resolve().parent
#: distro reads these itself; they are copied when present.
RELEASE_FILES = ("etc/os-release", "usr/lib/os-release", "etc/lsb-release", "etc/debian_version",
                 "etc/redhat-release", "etc/centos-release", "etc/system-release")
#: Mount lines of running containers: real, but many, and nothing preflight looks at.
CONTAINER_MOUNTS = ("/var/lib/docker/overlay2/", "/run/docker/netns/", "/var/lib/docker/containers/")
#: Process names that matter to preflight; other processes are left out of the capture.
KEPT_PROCESSES = ("firewalld",)


CASE_ROOT = [HERE]  # where _write may write: the case being captured


class RecordingFiles(HostFiles):
    """A HostFiles that remembers every path probe looked at."""

    def __init__(self, root: str = "/") -> None:
        super().__init__(root)
        self.read, self.listed, self.checked = set(), set(), set()

    def text(self, rel: str):
        self.read.add(relative(rel))
        return super().text(rel)

    def names(self, rel: str):
        self.listed.add(relative(rel))
        return super().names(rel)

    def exists(self, rel: str) -> bool:
        self.checked.add(relative(rel))
        return super().exists(rel)


class RecordingSystem(LiveSystem):
    """LiveSystem that keeps its answers in the shape RecordedSystem replays."""

    def __init__(self) -> None:
        super().__init__()
        self.answers = {"disk": {}, "portal": {}}

    def _keep(self, key, value):
        self.answers[key] = value
        return value

    def uname(self):
        return self._keep("uname", super().uname())

    def euid(self):
        return self._keep("euid", super().euid())

    def glibc(self):
        return self._keep("glibc", super().glibc())

    def now(self):
        return self._keep("now", round(super().now()))

    def disk(self, path):
        self.answers["disk"][path] = found = super().disk(path)
        return found

    def ports(self, wanted):
        return self._keep("ports", super().ports(wanted))

    def docker(self):
        return self._keep("docker", super().docker())


def copy_tree(files: RecordingFiles, target: pathlib.Path) -> None:
    for rel in sorted(files.read | set(RELEASE_FILES)):
        source = pathlib.Path(files.path(rel))
        if rel.startswith("proc/") and rel.endswith("/comm") and rel.split("/")[1].isdigit():
            if (files.text(rel) or "").strip() not in KEPT_PROCESSES:
                continue
        if source.is_file():
            data = source.read_bytes()
            _write(target / rel, _without_containers(data) if rel == "proc/mounts" else data)
    for rel in sorted(files.checked):
        source = pathlib.Path(files.path(rel))
        if source.is_dir():
            _write(target / rel / ".keep", b"")
        elif source.is_file():
            _write(target / rel, source.read_bytes())
    wanted = {m for f in kernel.FEATURES for m in f.modules}
    for name in files.names("sys/module"):
        if name in wanted:
            _write(target / "sys/module" / name / ".keep", b"")


def _without_containers(mounts: bytes) -> bytes:
    lines = mounts.decode().splitlines(keepends=True)
    def target(line: str) -> str:
        return (line.split() + ["", ""])[1]
    return "".join(l for l in lines
                   if not any(target(l).startswith(c) for c in CONTAINER_MOUNTS)).encode()


def _write(path: pathlib.Path, data: bytes) -> None:
    if not path.resolve().is_relative_to(CASE_ROOT[0]):
        raise SystemExit(f"refusing to write {path}: outside {CASE_ROOT[0]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("case")
    parser.add_argument("--out", default=str(HERE), help="the folder of the cases")
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--role", choices=ports.ROLES, default="portal")
    args = parser.parse_args()
    case = pathlib.Path(args.out).resolve() / args.case
    CASE_ROOT[0] = case
    if case.exists():
        shutil.rmtree(case)
    files, system = RecordingFiles("/"), RecordingSystem()
    paths = default_paths(args.data_dir, os.environ)
    probe(system, paths, ports.ports_for(args.role), files=files)
    copy_tree(files, case / "root")
    (case / "case.json").write_text(json.dumps({
        "about": f"captured by capture.py on {os.uname().nodename}",
        "role": args.role, "paths": paths, "portal": None, "cluster": None,
        "system": system.answers}, indent=2, sort_keys=True) + "\n")
    print(f"wrote {case}: review it, then DRAGONBALL_UPDATE_GOLDEN=1 pytest "
          "tests/unit/test_preflight_golden.py")


if __name__ == "__main__":
    main()

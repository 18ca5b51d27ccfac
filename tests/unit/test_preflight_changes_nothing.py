"""`preflight` changes nothing, ever: proved on captured trees and on this host.

Two proofs: a snapshot of a host tree before and after a run (every file's bytes,
mode and mtime), and an audit hook (PEP 578) watching the real command on this
host: no file opened for writing, nothing created, removed, renamed or chmod-ed,
and no program run but docker's version queries.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from test_preflight_golden import CASES, HOSTS, run_case


def snapshot(root: pathlib.Path) -> dict:
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        found[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return found


@pytest.mark.parametrize("name", CASES)
def test_a_captured_tree_is_the_same_after_preflight(name, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(HOSTS / name / "root", root, symlinks=True)
    before = snapshot(tmp_path)
    run_case(name, root=root)
    assert snapshot(tmp_path) == before


AUDITED = r'''
import json, os, sys
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
CHANGES = {"os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.chmod", "os.chown",
           "os.truncate", "os.symlink", "os.link", "os.utime", "shutil.rmtree", "shutil.move",
           "shutil.copyfile", "os.unlink"}
seen = {"writes": [], "changes": [], "programs": []}

def hook(event, args):
    if event == "open":
        path, mode, flags = args
        if isinstance(path, (str, bytes)) and str(path) != "/dev/null" and (
                (isinstance(mode, str) and any(c in mode for c in "wax+"))
                or (isinstance(flags, int) and flags & WRITE_FLAGS)):
            seen["writes"].append(str(path))
    elif event in CHANGES:
        seen["changes"].append([event, str(args[0])])
    elif event == "subprocess.Popen":
        seen["programs"].append([str(a) for a in args[1]])

sys.addaudithook(hook)
from dragonball.cli import main
code = main(sys.argv[1:])
sys.stderr.write("AUDIT " + json.dumps(seen) + "\n")
sys.exit(code)
'''


def test_the_real_command_on_this_host_writes_nothing(tmp_path):
    data_dir = tmp_path / "not" / "yet" / "dragonball"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", AUDITED, "preflight", "--json", "--data-dir", str(data_dir),
         "--manifest", str(HOSTS / "manifest.json")],
        capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode in (0, 1), result.stderr
    audit = json.loads(result.stderr.rsplit("AUDIT ", 1)[1])
    assert audit["writes"] == [] and audit["changes"] == []
    for argv in audit["programs"]:   # only questions: versions, the Swarm's state, glibc's
        assert (os.path.basename(argv[0]) in ("docker", "dockerd") and (
            argv[1:] in (["--version"], ["version", "--format", "{{json .}}"],
                         ["info", "--format", "{{.Swarm.LocalNodeState}}"]))) or \
            (os.path.basename(argv[0]), argv[1:]) == ("getconf", ["GNU_LIBC_VERSION"]), argv
    assert not data_dir.parent.parent.exists(), "the data directory must not be created"
    assert list(tmp_path.iterdir()) == []
    assert json.loads(result.stdout)["schema"] == 1

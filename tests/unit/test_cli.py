"""`dragonball module check`: exit codes and output, through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys


def dragonball(*args):
    return subprocess.run([sys.executable, "-m", "dragonball.cli", *args],
                          capture_output=True, text=True, timeout=60)


def test_a_valid_module_passes(make_module):
    root = make_module("web", {"start/1_a.sh": "true"})
    result = dragonball("module", "check", str(root))
    assert result.returncode == 0
    assert "module web follows the spec" in result.stdout


def test_an_invalid_module_lists_every_problem_and_exits_2(make_module):
    root = make_module("web", {"start/1_a.sh": "true"}, manifest='{"timeout": "soon"}')
    (root / "action" / "info").rmdir()
    result = dragonball("module", "check", "--json", str(root))
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert sorted(p["path"] for p in report["problems"]) == ["action/info/",
                                                             "module.json:timeout"]
    assert all(p["hint"] for p in report["problems"])


def test_a_missing_folder_is_a_clear_error(tmp_path):
    result = dragonball("module", "check", str(tmp_path / "nope"))
    assert result.returncode == 2 and "is not a folder" in result.stdout

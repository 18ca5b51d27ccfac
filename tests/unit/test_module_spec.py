"""The module spec check: pure validation over listings, and scan() on real folders."""

from __future__ import annotations

import os

import pytest

from dragonball.errors import ModuleError
from dragonball.module import EVENTS, Entry, Listing, load_module, scan, validate

SCRIPT = Entry("file", executable=True, head=b"#!/b")


def listing(extra: dict | None = None, drop: tuple = (), manifest=None, root="/m/demo"):
    entries = {"action": Entry("dir")}
    entries.update({f"action/{e}": Entry("dir") for e in EVENTS})
    entries.update(extra or {})
    for path in drop:
        entries.pop(path)
    return Listing(root, entries, manifest)


def paths(problems) -> list:
    return [p.path for p in problems]


def test_a_minimal_module_is_valid():
    module, problems = validate(listing())
    assert problems == []
    assert module.name == "demo"
    assert module.scripts == {e: () for e in EVENTS}


def test_scripts_are_in_ascii_byte_order_not_natural_or_locale_order():
    names = ["a_lower", "B_upper", "2_a", "10_b", "1_x"]
    module, _ = validate(listing({f"action/start/{n}": SCRIPT for n in names}))
    assert module.scripts["start"] == ("10_b", "1_x", "2_a", "B_upper", "a_lower")


def test_every_problem_is_reported_at_once_with_its_path():
    _, problems = validate(listing(
        extra={"junk": Entry("dir"), "action/restart": Entry("dir"),
               "action/start/run me": SCRIPT,
               "action/start/2_noexec.sh": Entry("file", executable=False, head=b"#!/b"),
               "action/start/3_noshebang.sh": Entry("file", executable=True, head=b"echo"),
               "action/stop/sub": Entry("dir")},
        drop=("action/info",), root="/m/Bad Name"))
    assert sorted(paths(problems)) == sorted([
        "Bad Name", "junk", "action/restart/", "action/info/", "action/start/run me",
        "action/start/2_noexec.sh", "action/start/3_noshebang.sh", "action/stop/sub"])
    by_path = {p.path: p for p in problems}
    assert "chmod +x action/start/2_noexec.sh" in by_path["action/start/2_noexec.sh"].hint
    assert "#!" in by_path["action/start/3_noshebang.sh"].message


def test_missing_action_folder_is_one_problem_not_six():
    entries = {"module": Entry("dir")}
    _, problems = validate(Listing("/m/demo", entries))
    assert paths(problems) == ["action/"]


def test_dotfiles_are_ignored_and_binaries_need_no_shebang():
    module, problems = validate(listing({
        "action/start/.gitkeep": Entry("file"), ".git": Entry("dir"),
        "action/start/1_bin": Entry("file", executable=True, head=b"\x7fELF")}))
    assert problems == []
    assert module.scripts["start"] == ("1_bin",)


def test_top_level_kinds_are_checked():
    _, problems = validate(listing({"storage": Entry("file"), "module.json": Entry("dir")}))
    assert sorted(paths(problems)) == ["module.json", "storage"]


def test_bad_timeouts_are_reported_with_the_manifest_key():
    manifest = '{"timeout": 0, "timeouts": {"start": "x", "nope": 1, "start/9.sh": 2}, "extra": 1}'
    _, problems = validate(listing(manifest=manifest))
    assert sorted(paths(problems)) == sorted([
        "module.json:timeout", "module.json:timeouts.start", "module.json:timeouts.nope",
        "module.json:timeouts.start/9.sh", "module.json:extra"])


def test_scan_reads_a_real_folder(make_module):
    root = make_module("web", {"start/1_a.sh": "true", "status/1_s.sh": "true"},
                       manifest='{"timeout": 5}')
    (root / "action" / "start" / "2_data.txt").write_text("plain text")
    (root / "log").mkdir()
    _, problems = validate(scan(str(root)))
    assert paths(problems) == [os.path.join("action", "start", "2_data.txt")]
    (root / "action" / "start" / "2_data.txt").unlink()
    module = load_module(str(root))
    assert module.scripts["start"] == ("1_a.sh",)
    assert module.timeouts.for_script("start", "1_a.sh") == 5


def test_load_module_raises_with_every_problem(tmp_path):
    with pytest.raises(ModuleError) as err:
        load_module(str(tmp_path / "absent"))
    assert "is not a folder" in str(err.value)
    assert "dragonball module check" in str(err.value)

"""The deterministic tar writer: same entries, same bytes; headers carry nothing of the host."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile

import pytest

from builder import detar


def a_tree(root):
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "run").write_text("#!/bin/sh\n")
    (root / "pkg" / "run").chmod(0o700)
    (root / "pkg" / "sub" / "data.txt").write_text("data\n")
    (root / "pkg" / "sub" / "data.txt").chmod(0o600)
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    os.symlink("sub/data.txt", root / "pkg" / "link")
    return root / "pkg"


def written(entries, mtime=0, gzip_level=None) -> bytes:
    out = io.BytesIO()
    summary = detar.write_tar(out, entries, mtime, gzip_level)
    data = out.getvalue()
    assert summary == detar.TarSummary(hashlib.sha256(data).hexdigest(), len(data))
    return data


def test_same_entries_in_any_order_give_the_same_bytes():
    entries = [("b/2", b"two", None), ("a", b"one", 0o755), ("b/1", b"", None)]
    assert written(entries) == written(list(reversed(entries)))
    assert written(entries, gzip_level=9) == written(list(reversed(entries)), gzip_level=9)


def test_a_changed_content_name_mode_or_time_changes_the_bytes():
    base = written([("a", b"one", None)])
    assert written([("a", b"One", None)]) != base
    assert written([("b", b"one", None)]) != base
    assert written([("a", b"one", 0o755)]) != base
    assert written([("a", b"one", None)], mtime=1) != base


def test_headers_hold_no_owner_and_the_given_time(tmp_path):
    tar = tarfile.open(fileobj=io.BytesIO(written(detar.tree_entries(a_tree(tmp_path), "top"),
                                                  mtime=1700000000)))
    members = tar.getmembers()
    assert [m.name for m in members] == ["top", "top/link", "top/run", "top/sub",
                                         "top/sub/data.txt"]
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", 1700000000)
        assert not m.pax_headers
    modes = {m.name: (m.type, m.mode) for m in members}
    assert modes["top"] == (tarfile.DIRTYPE, 0o755)
    assert modes["top/run"] == (tarfile.REGTYPE, 0o755)        # executable: 0755
    assert modes["top/sub/data.txt"] == (tarfile.REGTYPE, 0o644)  # else 0644
    assert tar.getmember("top/link").issym() and tar.getmember("top/link").linkname == \
        "sub/data.txt"
    assert tar.extractfile("top/sub/data.txt").read() == b"data\n"


def test_a_file_changed_on_disk_changes_the_hash(tmp_path):
    tree = a_tree(tmp_path)
    before = written(detar.tree_entries(tree, "top"), gzip_level=9)
    (tree / "sub" / "data.txt").write_text("Data\n")
    assert written(detar.tree_entries(tree, "top"), gzip_level=9) != before


def test_gzip_header_names_no_file_and_no_time(tmp_path):
    path = tmp_path / "out.tar.gz"
    summary = detar.write_tar(path, [("a", b"one", None)], 0, gzip_level=9)
    data = path.read_bytes()
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] == 0                           # FLG: no FNAME, no FCOMMENT
    assert data[4:8] == b"\0\0\0\0"               # MTIME 0
    assert summary.sha256 == hashlib.sha256(data).hexdigest()
    assert tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))).getnames() == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.tar.gz"]  # no partial file left


def test_a_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        detar.write_tar(tmp_path / "out.tar", [("a", tmp_path / "missing", None)], 0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("names, problem", [
    (["a", "a"], "duplicate"), (["/etc/passwd"], "relative"), (["a/../../x"], "relative")])
def test_bad_names_are_refused(names, problem):
    with pytest.raises(ValueError, match=problem):
        written([(name, b"", None) for name in names])


@pytest.mark.parametrize("environ, expected", [({}, 0), ({"SOURCE_DATE_EPOCH": ""}, 0),
                                               ({"SOURCE_DATE_EPOCH": "1700000000"}, 1700000000)])
def test_source_date_epoch(environ, expected):
    assert detar.source_date_epoch(environ) == expected


def test_source_date_epoch_must_be_a_number():
    with pytest.raises(ValueError, match="SOURCE_DATE_EPOCH"):
        detar.source_date_epoch({"SOURCE_DATE_EPOCH": "yesterday"})

"""builder/elf.py: the glibc an ELF file needs, read from its version requirements; the
runtime's floor is the highest of its files' (issue 14: the stub checks the real floor)."""

from __future__ import annotations

import shutil
import struct

import pytest

from builder import elf


def synthetic_elf(versions: list[str], wide: bool = True, order: str = "<",
                  library: str = "libc.so.6") -> bytes:
    """An ELF file with only what elf.py reads: a header, a string table, and one
    .gnu.version_r entry needing `versions` of `library`."""
    strings = b"\0" + library.encode() + b"\0"
    offsets = []
    for v in versions:
        offsets.append(len(strings))
        strings += v.encode() + b"\0"
    aux = b""
    for i, at in enumerate(offsets):
        last = i == len(offsets) - 1
        aux += struct.pack(order + "IHHII", 0, 0, 0, at, 0 if last else 16)
    verneed = struct.pack(order + "HHIII", 1, len(versions), 1, 16, 0) + aux
    head_size, sh_size = (64, 64) if wide else (52, 40)
    strings_at = head_size
    verneed_at = strings_at + len(strings)
    sh_at = verneed_at + len(verneed)

    def section(kind, offset, size, link):
        if wide:
            return struct.pack(order + "IIQQQQIIQQ", 0, kind, 0, 0, offset, size, link, 0, 1, 0)
        return struct.pack(order + "IIIIIIIIII", 0, kind, 0, 0, offset, size, link, 0, 1, 0)
    sections = section(0, 0, 0, 0) + section(3, strings_at, len(strings), 0) + \
        section(elf.SHT_GNU_VERNEED, verneed_at, len(verneed), 1)
    ident = elf.MAGIC + bytes([2 if wide else 1, 1 if order == "<" else 2, 1]) + b"\0" * 9
    if wide:
        header = ident + struct.pack(order + "HHIQQQIHHHHHH", 3, 62, 1, 0, 0, sh_at, 0,
                                     head_size, 0, 0, sh_size, 3, 1)
    else:
        header = ident + struct.pack(order + "HHIIIIIHHHHHH", 3, 3, 1, 0, 0, sh_at, 0,
                                     head_size, 0, 0, sh_size, 3, 1)
    return header + strings + verneed + sections


@pytest.mark.parametrize("wide,order", [(True, "<"), (False, "<"), (True, ">")])
def test_the_versions_are_read_in_any_class_and_byte_order(tmp_path, wide, order):
    path = tmp_path / "prog"
    path.write_bytes(synthetic_elf(["GLIBC_2.2.5", "GLIBC_2.34", "GLIBC_2.17",
                                    "GLIBC_PRIVATE"], wide, order))
    assert elf.requirements(path)[0] == ("libc.so.6", "GLIBC_2.2.5")
    assert elf.glibc_versions(path) == ["2.2.5", "2.17", "2.34"]


def test_not_elf_truncated_or_absurd_counts_for_nothing(tmp_path):
    (tmp_path / "text").write_text("#!/bin/sh\necho hi\n")
    whole = synthetic_elf(["GLIBC_2.28"])
    (tmp_path / "cut").write_bytes(whole[:80])
    (tmp_path / "empty").write_bytes(b"")
    absurd = bytearray(whole)
    struct.pack_into("<H", absurd, 0x3C, 60000)   # e_shnum past any real file
    (tmp_path / "absurd").write_bytes(bytes(absurd))
    for name in ("text", "cut", "empty", "absurd"):
        assert elf.glibc_versions(tmp_path / name) is None, name
    assert elf.glibc_versions(tmp_path / "missing") is None


def test_the_floor_of_a_tree_is_its_highest_need_and_names_the_file(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "prog").write_bytes(synthetic_elf(["GLIBC_2.17"]))
    (tmp_path / "lib" / "libx.so").write_bytes(synthetic_elf(["GLIBC_2.9", "GLIBC_2.35"]))
    (tmp_path / "lib" / "liby.so").write_bytes(synthetic_elf(["GLIBC_2.4"]))
    (tmp_path / "README").write_text("not ELF")
    (tmp_path / "link").symlink_to(tmp_path / "lib" / "libx.so")
    assert elf.tree_floor(tmp_path) == ("2.35", "lib/libx.so")
    assert elf.tree_floor(tmp_path / "lib" / "none") == (None, None)


@pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils' readelf to compare")
def test_this_machine_s_programs_read_as_readelf_reads_them():
    import subprocess
    for program in ("/usr/bin/ls", "/usr/bin/tar", "/usr/bin/python3"):
        out = subprocess.run(["readelf", "-V", "-W", program], capture_output=True,
                             text=True).stdout
        theirs = {w.split("GLIBC_")[1] for w in out.split() if w.startswith("GLIBC_2")}
        assert set(elf.glibc_versions(program)) == theirs, program

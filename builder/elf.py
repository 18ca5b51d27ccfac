"""What glibc an ELF file needs: the highest `GLIBC_x.y` among its version requirements
(`.gnu.version_r`, what the dynamic loader checks before it runs anything), pure.

    needed = glibc_versions(path)          # ["2.2.5", "2.14", "2.34"], sorted; [] if none
    floor, where = tree_floor(folder)      # ("2.34", "libpython3.11.so.1.0") over a tree

Why: the .bin's stub refuses a server whose glibc is older than the runtime needs (the
manifest's `floor.glibc`). The build machine's own glibc is only an upper bound of that;
the files' requirements are the real floor (issue 14), so the stub refuses no server that
could run it. Reads the section headers; a file without them (`sstrip`) or not ELF gives
None, and counts for nothing.
"""

from __future__ import annotations

import os
import pathlib
import struct

MAGIC = b"\x7fELF"
SHT_GNU_VERNEED = 0x6FFFFFFE
PREFIX = "GLIBC_"
MAX_SECTIONS = 4096


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _read(f, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("truncated")
    return data


def _cstring(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    return table[offset:end if end >= 0 else len(table)].decode("ascii", "replace")


def requirements(path: str | os.PathLike) -> list[tuple[str, str]] | None:
    """[(library, version name)] of the file's version requirements (`libc.so.6`,
    `GLIBC_2.34`); None when it is not an ELF file with section headers."""
    try:
        with open(path, "rb") as f:
            ident = f.read(16)
            if len(ident) < 16 or ident[:4] != MAGIC or ident[4] not in (1, 2) \
                    or ident[5] not in (1, 2):
                return None
            wide, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
            header = _read(f, 0, 64 if wide else 52)
            if wide:
                shoff, = struct.unpack_from(order + "Q", header, 0x28)
                shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", header, 0x3A)
            else:
                shoff, = struct.unpack_from(order + "I", header, 0x20)
                shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", header, 0x2E)
            if not shoff or not shnum or shnum > MAX_SECTIONS:
                return None
            sections = []
            for i in range(shnum):
                raw = _read(f, shoff + i * shentsize, shentsize)
                if wide:
                    _, kind, _, _, offset, size, link = struct.unpack_from(
                        order + "IIQQQQI", raw, 0)
                else:
                    _, kind, _, _, offset, size, link = struct.unpack_from(
                        order + "IIIIIII", raw, 0)
                sections.append((kind, offset, size, link))
            found = []
            for kind, offset, size, link in sections:
                if kind != SHT_GNU_VERNEED or link >= len(sections):
                    continue
                data = _read(f, offset, size)
                strings = _read(f, sections[link][1], sections[link][2])
                found += _verneed(data, strings, order)
            return found
    except (OSError, ValueError, struct.error):
        return None


def _verneed(data: bytes, strings: bytes, order: str) -> list[tuple[str, str]]:
    """Walk Verneed entries (vn_version, vn_cnt, vn_file, vn_aux, vn_next) and their
    Vernaux (vna_hash, vna_flags, vna_other, vna_name, vna_next)."""
    found, at, seen = [], 0, 0
    while at + 16 <= len(data) and seen < MAX_SECTIONS:
        _, count, file_at, aux, next_at = struct.unpack_from(order + "HHIII", data, at)
        library = _cstring(strings, file_at)
        here = at + aux
        for _ in range(min(count, MAX_SECTIONS)):
            if here + 16 > len(data):
                break
            _, _, _, name_at, aux_next = struct.unpack_from(order + "IHHII", data, here)
            found.append((library, _cstring(strings, name_at)))
            if not aux_next:
                break
            here += aux_next
        seen += 1
        if not next_at:
            break
        at += next_at
    return found


def glibc_versions(path: str | os.PathLike) -> list[str] | None:
    """The `GLIBC_x.y` versions the file needs, sorted ("2.34"); None when not ELF."""
    found = requirements(path)
    if found is None:
        return None
    names = {name[len(PREFIX):] for _, name in found
             if name.startswith(PREFIX) and version_key(name[len(PREFIX):])}
    return sorted(names, key=version_key)


def tree_floor(folder: str | os.PathLike) -> tuple[str | None, str | None]:
    """(the highest glibc version any ELF file under `folder` needs, that file's path
    relative to `folder`); (None, None) when none needs one."""
    best, where = None, None
    root = pathlib.Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        versions = glibc_versions(path)
        if versions and (best is None or version_key(versions[-1]) > version_key(best)):
            best, where = versions[-1], str(path.relative_to(root))
    return best, where


PT_DYNAMIC = 2


def is_dynamic(path: str | os.PathLike) -> bool:
    """Whether the 64-bit ELF file at `path` has a PT_DYNAMIC segment (is linked against
    shared libraries, or is one); False for a static program or a file that is not ELF."""
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != MAGIC or head[4] != 2:
            return False
        order = "<" if head[5] == 1 else ">"
        phoff, = struct.unpack_from(order + "Q", head, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 0x36)
        if phnum > MAX_SECTIONS or phentsize < 4:
            return False
        try:
            table = _read(f, phoff, phentsize * phnum)
        except ValueError:
            return False
    return any(struct.unpack_from(order + "I", table, i * phentsize)[0] == PT_DYNAMIC
               for i in range(phnum))

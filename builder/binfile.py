"""Assemble DragonBall-<version>.bin: the sh stub, then the sections (docs/bin-format.md).

`layout` and `render_stub` are pure; `assemble` streams the section files into
the output, so nothing is held in memory whatever the images weigh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import re
import shutil
import tempfile

from dragonball.errors import BuildError

STUB_SIZE = 16384
SECTION_ORDER = ("manifest", "runtime", "engine", "images")
OPTIONAL_SECTIONS = ("signature",)  # after the others, only in a signed build
_SAFE_LIST = re.compile(r"[A-Za-z0-9 :/._@+,()~-]*\Z")
CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class SectionSpec:
    name: str
    offset: int
    size: int
    sha256: str

    def entry(self) -> str:
        return f"{self.name}:{self.offset}:{self.size}:{self.sha256}"


def sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def layout(sizes: dict, digests: dict) -> list:
    """Sections in order right after the stub, with no gap (pure)."""
    missing = [n for n in SECTION_ORDER if n not in sizes]
    if missing:
        raise BuildError(f"the .bin needs the sections {', '.join(missing)}", "a builder bug")
    offset, sections = STUB_SIZE, []
    for name in SECTION_ORDER + tuple(n for n in OPTIONAL_SECTIONS if n in sizes):
        sections.append(SectionSpec(name, offset, sizes[name], digests[name]))
        offset += sizes[name]
    return sections


_VERSION = re.compile(r"[0-9]+(\.[0-9]+){0,2}\Z")


def render_stub(template: str, version: str, sections: list, list_lines: list,
                glibc_floor: str) -> bytes:
    """The stub with its values, padded to exactly STUB_SIZE bytes (pure)."""
    bad = [line for line in list_lines if not _SAFE_LIST.match(line) or line == "EOF"]
    if bad:
        raise BuildError(f"cannot list {bad[0]!r} in the stub", "use plain image names")
    if glibc_floor != "none" and not _VERSION.match(glibc_floor):
        raise BuildError(f"glibc floor {glibc_floor!r} is neither 'none' nor a version like 2.36",
                         "a builder bug")
    total = sections[-1].offset + sections[-1].size
    text = (template.replace("@VERSION@", version)
            .replace("@STUB_SIZE@", str(STUB_SIZE))
            .replace("@TOTAL_SIZE@", str(total))
            .replace("@SECTIONS@", " ".join(s.entry() for s in sections))
            .replace("@GLIBC_FLOOR@", glibc_floor)
            .replace("@LIST@", "\n".join(list_lines)))
    data = text.encode()
    if not data.endswith(b"\n"):
        data += b"\n"
    if len(data) > STUB_SIZE - 2:
        raise BuildError(f"the stub is {len(data)} bytes, more than {STUB_SIZE}",
                         "shorten scripts/stub.sh or raise STUB_SIZE")
    padding = STUB_SIZE - len(data)
    return data + b"#" * (padding - 1) + b"\n"


def assemble(out: pathlib.Path, stub: bytes, files: dict) -> None:
    """Write stub + section files (in SECTION_ORDER) to `out`, atomically, mode 0755."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.",
                                     delete=False) as f:
        try:
            f.write(stub)
            for name in SECTION_ORDER + tuple(n for n in OPTIONAL_SECTIONS if n in files):
                with open(files[name], "rb") as src:
                    shutil.copyfileobj(src, f, CHUNK)
        except BaseException:
            os.unlink(f.name)
            raise
    os.chmod(f.name, 0o755)
    os.replace(f.name, out)

"""Find the Debian mirror this build host already uses, from its apt sources.

The mirror's host name must never be written into the repository, so it is read
at run time: parsing is pure (text in, `AptSource` records out) and the probe
takes a root directory, so a captured ``/etc/apt`` tree is a test fixture (the
way distro's ``LinuxDistribution(root_dir=...)`` works).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import re
from collections.abc import Iterable, Mapping

from dragonball.errors import BuildError

from builder.errors import BuildInputInvalid

log = logging.getLogger(__name__)

#: Environment variable that overrides the mirror found in the apt sources.
MIRROR_ENV = "DRAGONBALL_DEBIAN_MIRROR"

# Schemes a docker build container can reach too: file:, cdrom: and mirror+file:
# only make sense on the host itself.
_USABLE_SCHEMES = ("http://", "https://")
_ONE_LINE_OPTIONS = re.compile(r"\[[^\]]*\]")


@dataclasses.dataclass(frozen=True)
class AptSource:
    """One apt source entry: a deb822 paragraph or a one-line ``deb`` line."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    origin: str = ""
    enabled: bool = True


def parse_deb822(text: str, origin: str = "") -> list[AptSource]:
    """Parse a deb822 ``.sources`` file into its entries (disabled ones included)."""
    sources = []
    for number, paragraph in enumerate(_deb822_paragraphs(text), start=1):
        fields = {key.lower(): value.split() for key, value in paragraph.items()}
        enabled = fields.get("enabled", ["yes"])[0].lower() not in ("no", "false", "0")
        sources.append(AptSource(
            types=tuple(fields.get("types", ())), uris=tuple(fields.get("uris", ())),
            suites=tuple(fields.get("suites", ())),
            components=tuple(fields.get("components", ())),
            origin=f"{origin} (entry {number})", enabled=enabled))
    return sources


def _deb822_paragraphs(text: str) -> Iterable[dict[str, str]]:
    paragraph: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if paragraph:
                yield paragraph
            paragraph, key = {}, None
        elif line[0] in " \t" and key:
            paragraph[key] += " " + line.strip()  # a folded continuation line
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            paragraph[key] = value.strip()
    if paragraph:
        yield paragraph


def parse_one_line(text: str, origin: str = "") -> list[AptSource]:
    """Parse one-line style sources (``deb [opts] URI suite component...``)."""
    sources = []
    for number, raw in enumerate(text.splitlines(), start=1):
        words = _ONE_LINE_OPTIONS.sub(" ", raw.split("#", 1)[0]).split()
        if len(words) < 3 or words[0] not in ("deb", "deb-src"):
            continue
        sources.append(AptSource(
            types=(words[0],), uris=(words[1],), suites=(words[2],),
            components=tuple(words[3:]), origin=f"{origin}:{number}"))
    return sources


def mirror_for_suite(sources: Iterable[AptSource], suite: str) -> str | None:
    """Return the URL of the first enabled binary source serving `suite`'s main area.

    Only an exact suite match counts, so ``bookworm-security`` and
    ``bookworm-updates`` entries (other archives, often other hosts) never
    qualify, nor does a third-party repository that names the suite with
    another component (``bookworm stable``).
    """
    for source in sources:
        if not (source.enabled and "deb" in source.types and suite in source.suites):
            continue
        if "main" not in source.components:
            continue
        for uri in source.uris:
            if uri.startswith(_USABLE_SCHEMES):
                return uri.rstrip("/")
            log.debug("skipping %s at %s: a build container cannot reach it", uri, source.origin)
    return None


def source_files(root_dir: pathlib.Path) -> list[pathlib.Path]:
    """The files apt reads under `root_dir`, in apt's order.

    apt ignores every other name in ``sources.list.d`` (``*.save``,
    ``*.disabled``, ``*.dpkg-old``...), which is how files are disabled.
    """
    etc_apt = root_dir / "etc" / "apt"
    files = [etc_apt / "sources.list"]
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    return [f for f in files if f.is_file()]


def read_apt_sources(root_dir: pathlib.Path | str = "/") -> list[AptSource]:
    """Read and parse every apt source under `root_dir` (``/`` on a real host)."""
    sources = []
    for path in source_files(pathlib.Path(root_dir)):
        text = path.read_text(encoding="utf-8", errors="replace")
        parse = parse_deb822 if path.suffix == ".sources" else parse_one_line
        sources += parse(text, str(path))
    return sources


#: Debian releases one mirror serves together (bullseye: the old userland of the tests).
DEBIAN_RELEASES = ("bookworm", "trixie", "bullseye")


def debian_mirror(suite: str, root_dir: pathlib.Path | str = "/",
                  environ: Mapping[str, str] = os.environ) -> str:
    """Return the Debian mirror URL to build `suite` from.

    ``DRAGONBALL_DEBIAN_MIRROR`` wins; otherwise the host's apt sources decide.
    Raises `BuildError` when neither names a usable mirror.
    """
    override = environ.get(MIRROR_ENV, "").strip()
    if override:
        if not override.startswith(_USABLE_SCHEMES):
            raise BuildInputInvalid(f"{MIRROR_ENV}={override!r} is not an http:// or https:// "
                                    "URL", f"set it like {MIRROR_ENV}=http://<mirror host>/debian")
        return override.rstrip("/")
    sources = read_apt_sources(root_dir)
    mirror = mirror_for_suite(sources, suite)
    if mirror is None and suite in DEBIAN_RELEASES:
        # a Debian mirror holds every release: the one this host's own release comes from
        mirror = next((found for other in DEBIAN_RELEASES
                       if (found := mirror_for_suite(sources, other))), None)
    if mirror is None:
        raise BuildError(_no_mirror_message(suite, root_dir, sources),
                         f"add 'deb http://<mirror host>/debian {suite} main' to "
                         f"/etc/apt/sources.list, or set {MIRROR_ENV}=http://<mirror host>/debian")
    return mirror


def _no_mirror_message(suite: str, root_dir: pathlib.Path | str, sources: list[AptSource]) -> str:
    where = pathlib.Path(root_dir) / "etc" / "apt"
    seen = sorted({s for source in sources if source.enabled for s in source.suites})
    found = f"enabled suites found: {', '.join(seen)}" if seen else "no enabled deb source found"
    return (f"no Debian mirror serves suite {suite!r} (main) in the apt sources under {where} "
            f"(sources.list, sources.list.d/*.list, *.sources); {found}")

"""Finding the Debian mirror: captured /etc/apt trees in, a mirror URL (or a clear error) out."""

from __future__ import annotations

import pathlib

import pytest

from dragonball.errors import BuildError

from builder.apt_sources import (
    MIRROR_ENV, debian_mirror, mirror_for_suite, parse_deb822, parse_one_line, source_files)

DATA = pathlib.Path(__file__).parent / "data" / "apt"
NO_ENV: dict[str, str] = {}


@pytest.mark.parametrize("case, expected", [
    ("deb822", "http://mirror.example.test/debian"),
    ("one_line", "http://mirror.example.test/debian"),
])
def test_mirror_from_captured_tree(case, expected):
    assert debian_mirror("bookworm", DATA / case, NO_ENV) == expected


@pytest.mark.parametrize("case", ["disabled", "security_only", "empty"])
def test_no_usable_source_is_a_clear_error(case):
    with pytest.raises(BuildError) as failure:
        debian_mirror("bookworm", DATA / case, NO_ENV)
    assert "'bookworm'" in failure.value.message
    assert str(DATA / case / "etc" / "apt") in failure.value.message
    assert MIRROR_ENV in failure.value.hint


def test_error_lists_the_suites_it_did_find():
    with pytest.raises(BuildError) as failure:
        debian_mirror("bookworm", DATA / "security_only", NO_ENV)
    assert "bookworm-backports, bookworm-security, bookworm-updates" in failure.value.message


def test_a_missing_root_is_an_error_not_a_crash(tmp_path):
    with pytest.raises(BuildError):
        debian_mirror("bookworm", tmp_path / "nowhere", NO_ENV)


def test_environment_overrides_the_sources():
    env = {MIRROR_ENV: "https://override.example.test/debian/"}
    assert debian_mirror("bookworm", DATA / "security_only", env) == \
        "https://override.example.test/debian"


def test_override_must_be_http():
    with pytest.raises(BuildError, match="not an http"):
        debian_mirror("bookworm", DATA / "deb822", {MIRROR_ENV: "file:///srv/debian"})


def test_blank_override_is_ignored():
    assert debian_mirror("bookworm", DATA / "deb822", {MIRROR_ENV: "  "}) == \
        "http://mirror.example.test/debian"


def test_apt_ignores_disabled_file_names():
    names = [p.name for p in source_files(DATA / "deb822")]
    assert names == ["debian.sources"]
    assert source_files(DATA / "disabled")[0].name == "debian.sources"  # read, then Enabled: no


def test_one_line_sources_are_read_before_sources_list_d():
    names = [p.name for p in source_files(DATA / "one_line")]
    assert names == ["sources.list", "aaa-cdrom.list", "docker.list"]


def test_parse_deb822_fields_folding_and_enabled():
    text = ("# a comment\n"
            "types: deb deb-src\n"
            "URIs: http://a.example.test/debian\n"
            "  http://b.example.test/debian\n"
            "Suites: bookworm\n"
            "Components: main contrib\n"
            "\n"
            "Types: deb\n"
            "URIs: http://c.example.test/debian\n"
            "Suites: bookworm\n"
            "Components: main\n"
            "Enabled: no\n")
    first, second = parse_deb822(text, "x.sources")
    assert first.types == ("deb", "deb-src")
    assert first.uris == ("http://a.example.test/debian", "http://b.example.test/debian")
    assert first.components == ("main", "contrib")
    assert first.enabled and not second.enabled
    assert second.origin == "x.sources (entry 2)"


def test_parse_one_line_options_and_comments():
    text = ("deb [arch=amd64 signed-by=/k.gpg] http://m.example.test/debian bookworm main # c\n"
            "# deb http://old.example.test/debian bookworm main\n"
            "deb http://short.example.test/debian\n")
    (source,) = parse_one_line(text, "sources.list")
    assert source.uris == ("http://m.example.test/debian",)
    assert source.suites == ("bookworm",)
    assert source.components == ("main",)
    assert source.origin == "sources.list:1"


def test_only_exact_suite_with_main_and_binary_packages_counts():
    sources = parse_one_line(
        "deb-src http://src.example.test/debian bookworm main\n"
        "deb http://sec.example.test/debian-security bookworm-security main\n"
        "deb https://vendor.example.test/debian bookworm stable\n"
        "deb file:/srv/mirror bookworm main\n"
        "deb http://m.example.test/debian bookworm main\n")
    assert mirror_for_suite(sources, "bookworm") == "http://m.example.test/debian"
    assert mirror_for_suite(sources, "trixie") is None


def test_another_debian_release_comes_from_the_hosts_debian_mirror():
    """build.py bare-bullseye on a bookworm host: a Debian mirror holds every release."""
    assert debian_mirror("bullseye", DATA / "deb822", NO_ENV) == \
        "http://mirror.example.test/debian"
    with pytest.raises(BuildError, match="'bullseye'"):
        debian_mirror("bullseye", DATA / "security_only", NO_ENV)   # no Debian mirror at all
    with pytest.raises(BuildError, match="'focal'"):
        debian_mirror("focal", DATA / "deb822", NO_ENV)   # not a Debian release: not guessed

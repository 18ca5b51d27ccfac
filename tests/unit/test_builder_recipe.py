"""Base image recipes: validation, and a hash that moves exactly when the rootfs would."""

from __future__ import annotations

import json

import pytest

from dragonball.errors import BuildError

from builder import REPO_ROOT
from builder.recipe import (
    Recipe, canonical_json, load_recipe, recipe_from_data, recipe_hash)

BASE = Recipe(suite="bookworm", variant="minbase", arch="amd64",
              include=("python3", "tini", "procps"))
VERSION = "1.0.128+nmu2+deb12u2"


def test_hash_is_pinned():
    # A literal: the hash names cached tars and rootfs images, so a change to the
    # canonical form must be a decision (bump ROOTFS_FORMAT), never an accident.
    assert recipe_hash(BASE, VERSION) == \
        "5473ecec6c0c0bf4a444878a108b9266ba0a433b023886999589bfeed3e7c324"


def test_package_order_and_duplicates_do_not_matter():
    shuffled = Recipe("bookworm", "minbase", "amd64", ("procps", "tini", "python3", "tini"))
    assert recipe_hash(shuffled, VERSION) == recipe_hash(BASE, VERSION)


@pytest.mark.parametrize("change", [
    {"suite": "trixie"}, {"variant": "buildd"}, {"arch": "arm64"},
    {"include": ("python3", "tini")}, {"include": ("python3", "tini", "procps", "curl")},
])
def test_any_rootfs_change_changes_the_hash(change):
    other = Recipe(**{**BASE.__dict__, **change})
    assert recipe_hash(other, VERSION) != recipe_hash(BASE, VERSION)


def test_debootstrap_version_changes_the_hash():
    assert recipe_hash(BASE, "1.0.129") != recipe_hash(BASE, VERSION)


def test_canonical_json_ignores_key_order_and_spacing():
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})
    assert canonical_json({"a": 1}) == '{"a":1}'


def test_the_committed_recipe_loads():
    recipe = load_recipe(REPO_ROOT / "base_images" / "dragonballbase" / "recipe.json")
    assert recipe.suite == "bookworm" and recipe.variant == "minbase"
    assert set(recipe.include) == {"python3", "tini", "procps"}


def test_every_problem_is_reported_at_once():
    data = {"suite": "Bookworm!", "variant": "tiny", "include": ["ok", "Not_OK"], "extra": 1}
    with pytest.raises(BuildError) as failure:
        recipe_from_data(data, "r.json")
    message = failure.value.message
    for expected in ("unknown field 'extra'", "missing field 'arch'", "'suite' must be",
                     "'variant' must be one of", "'Not_OK', not a Debian package name"):
        assert expected in message
    assert message.startswith("r.json is invalid")


def test_bad_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "recipe.json"
    path.write_text('{\n  "suite": "bookworm",\n}\n')
    with pytest.raises(BuildError, match=r"recipe.json:3:1: not valid JSON"):
        load_recipe(path)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(BuildError, match="cannot read recipe"):
        load_recipe(tmp_path / "recipe.json")


def test_recipe_round_trips_through_json(tmp_path):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(BASE.canonical()))
    assert recipe_hash(load_recipe(path), VERSION) == recipe_hash(BASE, VERSION)

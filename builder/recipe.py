"""Base image recipes: what debootstrap builds, and the hash that names the result.

A recipe is ``base_images/<name>/recipe.json``. Its hash keys the cached root
filesystem tar and the imported ``dragonball-rootfs`` image, so an unchanged
recipe never runs debootstrap twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import re
from typing import Any

from dragonball.errors import BuildError

from builder.errors import BuildInputInvalid

#: Bump when what `builder.rootfs` does after debootstrap changes, so cached
#: root filesystems made the old way are not reused.
ROOTFS_FORMAT = 1

_FIELDS = {"suite", "variant", "arch", "include"}
_VARIANTS = {"minbase", "buildd", "fakechroot"}
_WORD = re.compile(r"[a-z][a-z0-9-]*")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What debootstrap is asked for: suite, variant, architecture, extra packages."""

    suite: str
    variant: str
    arch: str
    include: tuple[str, ...]

    def canonical(self) -> dict[str, Any]:
        """The recipe as plain data, package order not significant."""
        return {"suite": self.suite, "variant": self.variant, "arch": self.arch,
                "include": sorted(set(self.include))}


def recipe_problems(data: Any) -> list[str]:
    """Every problem with a parsed recipe.json, or an empty list."""
    if not isinstance(data, dict):
        return ["the recipe must be a JSON object"]
    problems = [f"unknown field {key!r}" for key in sorted(set(data) - _FIELDS)]
    problems += [f"missing field {key!r}" for key in sorted(_FIELDS - set(data))]
    for key in ("suite", "arch"):
        if key in data and not (isinstance(data[key], str) and _WORD.fullmatch(data[key])):
            problems.append(f"{key!r} must be a word like 'bookworm' or 'amd64'")
    if "variant" in data and data["variant"] not in _VARIANTS:
        problems.append(f"'variant' must be one of {', '.join(sorted(_VARIANTS))}")
    include = data.get("include", [])
    if not isinstance(include, list):
        problems.append("'include' must be a list of Debian package names")
    else:
        problems += [f"'include' has {name!r}, not a Debian package name"
                     for name in include if not (isinstance(name, str) and _PACKAGE.fullmatch(name))]
    return problems


def recipe_from_data(data: Any, where: str = "recipe") -> Recipe:
    """Validate parsed JSON and build a `Recipe`; all problems are reported at once."""
    problems = recipe_problems(data)
    if problems:
        raise BuildInputInvalid(f"{where} is invalid:\n" +
                                "\n".join(f"  - {p}" for p in problems),
                                "fix the listed fields (see "
                                "base_images/dragonballbase/recipe.json)")
    return Recipe(suite=data["suite"], variant=data["variant"], arch=data["arch"],
                  include=tuple(data["include"]))


def load_recipe(path: pathlib.Path) -> Recipe:
    """Read and validate a recipe.json file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BuildError(f"cannot read recipe {path}: {e.strerror}",
                         "run build.py from a complete checkout") from e
    except json.JSONDecodeError as e:
        raise BuildInputInvalid(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})",
                                "fix the JSON syntax at that position") from e
    return recipe_from_data(data, str(path))


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no insignificant white space: equal data, equal text."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def recipe_hash(recipe: Recipe, debootstrap_version: str) -> str:
    """sha256 (hex) of the recipe with the debootstrap version and our rootfs format.

    The debootstrap version is part of it because a new debootstrap may lay
    out the same recipe differently.
    """
    key = {"recipe": recipe.canonical(), "debootstrap": debootstrap_version,
           "format": ROOTFS_FORMAT}
    return hashlib.sha256(canonical_json(key).encode("utf-8")).hexdigest()

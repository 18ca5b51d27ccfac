"""The build pipeline's errors beyond the layer's own `BuildError` (a step failed: exit 1).

`BuildEngineError` (no Docker engine: 5) lives with the engine adapter (builder/engine.py).
"""

from __future__ import annotations

from dragonball.errors import BuildError, InvalidInput

__all__ = ["BuildError", "BuildInputInvalid"]


class BuildInputInvalid(BuildError, InvalidInput):
    """What build.py was given is not usable: the release manifest, a recipe, a module, the
    signing key, an option or a variable; nothing was built (exit 2)."""

"""The build pipeline behind ``build.py``: base images, module images, later the .bin.

Pure logic (recipe hash, apt sources parsing, context plans) lives in modules that
touch nothing; adapters (`process`, `engine`, `rootfs`) run commands and talk to
the Docker engine, and translate their failures into `dragonball.errors`.
"""

from __future__ import annotations

import pathlib

#: The repository root: build.py sits here, next to builder/, payload/, examples/.
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

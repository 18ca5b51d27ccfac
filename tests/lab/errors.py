"""The lab's one exception, a branch of DragonBall's tree (dragonball.errors)."""

from __future__ import annotations

from dragonball.errors import Failed


class LabError(Failed):
    """The lab of local servers could not be brought up, driven or taken down.

    The message says what failed and on which server; the hint says what to do next.
    A category's child (FAILED, as before), so the root's children stay the layers and the
    categories (tests/unit/test_errors_taxonomy.py) in a process that imports the lab.
    """

"""Names every layer checks the same way: a server's hostname (RFC 1123)."""

from __future__ import annotations

import re

_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def hostname(value: str) -> bool | str:
    """A DNS hostname (RFC 1123): labels of letters, digits and inner hyphens.

    True, or a message saying what is wrong (a questionary-style validator).
    """
    labels = value.split(".")
    if (0 < len(value) <= 253 and all(_LABEL.match(label) for label in labels)
            and not labels[-1].isdigit()):
        if value.lower() == "localhost":
            return "localhost names every server: give this server's own name"
        return True
    return "not a hostname: use letters, digits, hyphens, dots between (like node-1.lan)"

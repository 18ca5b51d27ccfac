"""Enrollment codes: what a person reads off the portal and types on a new device.

Format (docs/answers.md): 16 characters in four groups of four, ``7K3M-Q9XD-2HBW-P4T3``,
from an alphabet of 31 symbols that cannot be mistaken for one another when read
aloud or off a screen: Crockford's base32 (no I, L, O, U) without Z (read as 2).
The first 15 characters carry about 74 random bits; the 16th is a check character,

    check = sum(position * value for the 15 characters, positions 1..15) mod 31

31 is prime and every weight differs and is below 31, so every single mistyped
character and every swap of two of the first 15 characters is caught here, before
any network call; any other typo slips through one time in 31. Typing is forgiving:
lower case, spaces and missing dashes are fine, and O is read as 0, I and L as 1.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXY"
GROUPS, GROUP_SIZE = 4, 4
LENGTH = GROUPS * GROUP_SIZE
EXAMPLE = "7K3M-Q9XD-2HBW-P4T3"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_READ_AS = {"O": "0", "I": "1", "L": "1"}
_SEPARATORS = " -\t"


def check_character(data: str) -> str:
    """The check character of 15 data characters (from ALPHABET)."""
    total = sum(position * _VALUE[c] for position, c in enumerate(data, start=1))
    return ALPHABET[total % len(ALPHABET)]


def new_code(randbelow=secrets.randbelow) -> str:
    """A fresh random code, grouped: what the portal shows."""
    data = "".join(ALPHABET[randbelow(len(ALPHABET))] for _ in range(LENGTH - 1))
    return group(data + check_character(data))


def group(characters: str) -> str:
    return "-".join(characters[i:i + GROUP_SIZE] for i in range(0, len(characters), GROUP_SIZE))


def _characters(text: str) -> str:
    """`text` upper-cased, separators dropped, look-alikes read as the alphabet's symbol."""
    kept = (c for c in text.upper() if c not in _SEPARATORS)
    return "".join(_READ_AS.get(c, c) for c in kept)


def problem(text: str) -> str | None:
    """What is wrong with a typed code, said so a person can fix it; None when valid."""
    characters = _characters(text)
    foreign = sorted({c for c in characters if c not in _VALUE})
    if foreign:
        shown = " ".join(repr(c) for c in foreign)
        return f"{shown} cannot be in a code: copy it exactly as the portal shows it"
    if len(characters) != LENGTH:
        return (f"a code has {LENGTH} characters, like {EXAMPLE}; this has "
                f"{len(characters)}: copy it again")
    if check_character(characters[:-1]) != characters[-1]:
        return "the check character does not match: a character was mistyped; read it again"
    return None


def validate(text: str) -> bool | str:
    """The questionary-style validator: True, or a message."""
    return problem(text) or True


def normalize(text: str) -> str:
    """A valid code as the portal shows it (upper case, grouped with dashes)."""
    return group(_characters(text))

"""The rule for a person's password (the portal admin's): long, mixed, and not guessable
from the server. Pure, so the wizard, the portal's password change and the CLI share it."""

from __future__ import annotations

MIN_LENGTH = 12
#: Hostname labels shorter than this are too common to forbid inside a password.
MIN_NAME_IN_PASSWORD = 4


def verdict(value: str, hostnames: tuple[str, ...] = ()) -> bool | str:
    """True for a good password, else what is wrong with it (never the password)."""
    if len(value) < MIN_LENGTH:
        return (f"too short ({len(value)} characters): use at least {MIN_LENGTH}; "
                "a few unrelated words do")
    if len({_kind(c) for c in value}) < 2:
        return "only one kind of character: mix in upper case, digits, symbols or spaces"
    lowered = value.lower()
    if "dragonball" in lowered:
        return "contains the product's name, an attacker's first guess: leave it out"
    for name in _names(hostnames):
        if name in lowered:
            return f"contains this server's name {name!r}, an easy guess: leave it out"
    return True


def _kind(character: str) -> str:
    """lower, upper, digit or other (symbols, spaces): letters of any script count."""
    if character.isdigit():
        return "digit"
    if character.islower():
        return "lower"
    return "upper" if character.isupper() else "other"


def _names(hostnames: tuple[str, ...]) -> list[str]:
    names = set()
    for name in filter(None, hostnames):
        names |= {name.lower(), name.split(".")[0].lower()}
    return sorted(n for n in names if len(n) >= MIN_NAME_IN_PASSWORD)

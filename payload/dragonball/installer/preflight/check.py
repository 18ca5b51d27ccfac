"""One check's result, and the small formatting helpers every rule shares (pure)."""

from __future__ import annotations

import dataclasses

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
STATUSES = (PASS, WARN, FAIL, SKIP)


@dataclasses.dataclass(frozen=True)
class Check:
    """The outcome of one rule: `status` is pass, warn, fail or skip (needs what is absent)."""

    name: str
    status: str
    detail: str
    hint: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check {self.name}: status {self.status!r} is not one of {STATUSES}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def size(n: int) -> str:
    """Bytes for a person: "512 MB", "2.3 GiB"."""
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    return f"{n / 1e6:.0f} MB"


def version_text(parts: tuple) -> str:
    return ".".join(str(p) for p in parts)

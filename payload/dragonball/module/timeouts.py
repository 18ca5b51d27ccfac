"""Script timeouts of a module, read from its optional module.json.

Resolution is most specific first: ``event/script``, then ``event``, then the
module-wide ``timeout``, then 60 seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 86400.0
MANIFEST_KEYS = ("timeout", "timeouts")


@dataclass(frozen=True)
class TimeoutPolicy:
    """Seconds each script may run; `for_script` answers for one script."""

    default: float = DEFAULT_TIMEOUT
    overrides: dict = field(default_factory=dict)

    def for_script(self, event: str, script: str) -> float:
        return self.overrides.get(f"{event}/{script}",
                                  self.overrides.get(event, self.default))


def _bad_seconds(value) -> str | None:
    """Why `value` is not a valid timeout, or None when it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number of seconds"
    if not 0 < value <= MAX_TIMEOUT:
        return f"{value!r} is out of range (more than 0, at most {MAX_TIMEOUT:g})"
    return None


def parse_policy(text: str | None, scripts: dict) -> tuple[TimeoutPolicy, list]:
    """Parse module.json text; return the policy and a list of (key, message) problems.

    `scripts` maps each event to its script names, so an override naming a
    script that does not exist is caught here and not at run time.
    """
    if text is None:
        return TimeoutPolicy(), []
    try:
        data = json.loads(text)
    except ValueError as e:
        return TimeoutPolicy(), [("", f"is not valid JSON: {e}")]
    if not isinstance(data, dict):
        return TimeoutPolicy(), [("", "must hold a JSON object")]
    problems = [(key, f"unknown key {key!r} (allowed: {', '.join(MANIFEST_KEYS)})")
                for key in data if key not in MANIFEST_KEYS]
    default = data.get("timeout", DEFAULT_TIMEOUT)
    why = _bad_seconds(default)
    if why:
        problems.append(("timeout", why))
        default = DEFAULT_TIMEOUT
    overrides, more = _parse_overrides(data.get("timeouts", {}), scripts)
    return TimeoutPolicy(float(default), overrides), problems + more


def _parse_overrides(raw, scripts: dict) -> tuple[dict, list]:
    if not isinstance(raw, dict):
        return {}, [("timeouts", "must be an object like {\"start\": 120}")]
    overrides, problems = {}, []
    for key, value in raw.items():
        event, _, script = key.partition("/")
        if event not in scripts:
            problems.append((f"timeouts.{key}", f"names no event (events: {', '.join(scripts)})"))
        elif script and script not in scripts[event]:
            problems.append((f"timeouts.{key}", f"names no script of action/{event}/"))
        elif why := _bad_seconds(value):
            problems.append((f"timeouts.{key}", why))
        else:
            overrides[key] = float(value)
    return overrides, problems

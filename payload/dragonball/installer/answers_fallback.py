"""Answers from a file when this build has no wizard (dragonball.wizard).

Used only while `dragonball.wizard.collect_answers` cannot be imported: it reads
`--answers FILE` (YAML, the wizard's field names) and checks just what the
installer's own steps need. The wizard, once there, does all of it properly
(prompts, every validation, a confirmed summary); delete this module then.
"""

from __future__ import annotations

import dataclasses
import os

import yaml

from dragonball.errors import InstallerError
from dragonball.shared.paths import DATA_DIR
from dragonball.shared.ports import ROLES

FIELDS = ("role", "address", "portal", "enrollment_code", "admin_password", "data_dir",
          "hostname", "cluster_name")
REQUIRED = {"portal": ("admin_password",), "device": ("portal", "enrollment_code")}


class AnswersFileError(InstallerError):
    """The answers file cannot be used; nothing was changed."""

    exit_status = 2


@dataclasses.dataclass(frozen=True)
class FileAnswers:
    """The wizard's `Answers`, as far as the installer reads them."""

    role: str
    address: str | None = None
    data_dir: str = DATA_DIR
    hostname: str | None = None
    portal: str | None = None
    enrollment_code: str | None = None
    admin_password: str | None = dataclasses.field(default=None, repr=False)
    cluster_name: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def masked(self) -> dict:
        shown = self.as_dict()
        for secret in ("admin_password", "enrollment_code"):
            if secret in shown:
                shown[secret] = "********"
        return shown


def load(options) -> FileAnswers:
    path = getattr(options, "answers", None)
    if not path:
        raise AnswersFileError("this build has no install wizard: answers come from a file",
                               "run: install --answers FILE --yes (docs/installer.md)")
    if not getattr(options, "yes", False):
        raise AnswersFileError("this build has no install wizard to confirm the answers on",
                               f"run: install --answers {path} --yes")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise AnswersFileError(f"cannot read the answers file {path}: {e}") from e
    problems = problems_of(data)
    if problems:
        raise AnswersFileError(f"{path}: " + "; ".join(problems), "fix each, then run again")
    values = {k: str(v) for k, v in data.items() if v is not None}
    return FileAnswers(**values)


def problems_of(data) -> list[str]:
    """Every problem of the file's content (pure)."""
    if not isinstance(data, dict):
        return ["it must be a mapping of answers (role: portal, ...)"]
    problems = [f"unknown answer {key!r}" for key in data if key not in FIELDS]
    role = data.get("role")
    if role not in ROLES:
        problems.append(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    else:
        problems += [f"a {role} needs {field}" for field in REQUIRED[role] if not data.get(field)]
    data_dir = data.get("data_dir")
    if data_dir is not None and not os.path.isabs(str(data_dir)):
        problems.append(f"data_dir {data_dir} must be an absolute path")
    return problems

"""wizard/portal.yaml and wizard/device.yaml, and the two pages that document the answers,
stay in step with the code: every key documented, the examples valid once edited."""

from __future__ import annotations

import pathlib
import re
import shutil

import pytest

from dragonball.shared import codes
from dragonball.wizard import answers_file
from dragonball.wizard.answers_file import KEYS
from dragonball.wizard.model import Facts, Interface

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE_SERVER = Facts("node-1", (Interface("eth0", "192.0.2.10"),))


@pytest.mark.parametrize("page", ["docs/answers.md", "wizard/README.md"])
def test_every_answer_is_documented(page):
    text = (ROOT / page).read_text()
    for key in KEYS:
        assert f"`{key}`" in text, f"{page} does not describe {key}"


def test_the_documented_example_code_is_valid():
    text = (ROOT / "docs/answers.md").read_text() + (ROOT / "wizard/README.md").read_text()
    for code in set(re.findall(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b", text)):
        if code != "XXXX-XXXX-XXXX-XXXX":
            assert codes.validate(code) is True, code


def copy(name: str, tmp_path, mode: int = 0o600) -> pathlib.Path:
    path = tmp_path / name
    shutil.copy(ROOT / "wizard" / name, path)
    path.chmod(mode)
    return path


def test_portal_example_as_shipped_asks_for_a_password_and_privacy(tmp_path):
    path = copy("portal.yaml", tmp_path, mode=0o644)
    _, problems = answers_file.check(str(path), EXAMPLE_SERVER)
    assert {p.field for p in problems} == {"admin_password"}
    messages = " | ".join(p.message for p in problems)
    assert "chmod 600" in messages and "too short" in messages


def test_portal_example_once_edited(tmp_path):
    path = copy("portal.yaml", tmp_path)
    path.write_text(path.read_text().replace("'CHANGE ME'", "'Correct horse battery'"))
    answers = answers_file.load(str(path), EXAMPLE_SERVER)
    assert (answers.role, answers.address, answers.cluster_name) == ("portal", "192.0.2.10",
                                                                     "node-1")


def test_device_example_is_valid_on_a_server_with_one_address(tmp_path):
    path = copy("device.yaml", tmp_path, mode=0o644)  # no password: any mode will do
    answers = answers_file.load(str(path), Facts("node-2", (Interface("eth0", "192.0.2.21"),)))
    assert (answers.role, answers.portal, answers.address) == ("device", "192.0.2.10:8443",
                                                               "192.0.2.21")

"""The answers file: every problem at once with its line, unknown keys with a suggestion,
the 0600 rule for passwords, the password file, remote checks. Also `build_answers`."""

from __future__ import annotations

import os
import textwrap

import pytest

from dragonball.shared import ports
from dragonball.shared import codes
from dragonball.wizard import answers_file
from dragonball.wizard.answers import build_answers
from dragonball.wizard.errors import AnswersInvalid
from dragonball.wizard.model import Answers, Checks, Facts, Interface

FACTS = Facts("node-1", (Interface("eth0", "10.0.0.5"), Interface("eth1", "192.168.7.5")))
ONE_NIC = Facts("node-1", (Interface("eth0", "10.0.0.5"),))
CODE = codes.EXAMPLE
PASSWORD = "Correct horse battery"
FINGERPRINT = "SHA256:" + "ab" * 32


@pytest.fixture
def write(tmp_path):
    """write(text, mode=0o600, name=...) -> the path of an answers file holding `text`."""
    def write(text: str, mode: int = 0o600, name: str = "answers.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        os.chmod(path, mode)
        return str(path)
    return write


def where(problems):
    """{(field, line)} of the problems: what a test mostly asserts."""
    return {(p.field, p.line) for p in problems}


def test_a_portal_file(write):
    path = write(f"""
        role: portal
        address: 192.168.7.5
        admin_password: '{PASSWORD}'
        cluster_name: plant-7
        """)
    answers = answers_file.load(path, FACTS)
    assert answers == Answers(role="portal", address="192.168.7.5", admin_password=PASSWORD,
                              cluster_name="plant-7")
    assert "Correct" not in repr(answers)


def test_a_device_file_gets_its_defaults(write):
    path = write(f"""
        # one file for every device: the address is the server's only one
        role: device
        portal: 10.0.0.10
        ca_fingerprint: {"AB:" * 31}AB
        enrollment_code: {CODE.lower()}
        """, mode=0o644)
    answers = answers_file.load(path, ONE_NIC)
    assert answers == Answers(role="device", address="10.0.0.5",
                              portal=f"10.0.0.10:{ports.PORTAL}", enrollment_code=CODE,
                              ca_fingerprint=FINGERPRINT, data_dir="/var/lib/dragonball")


def test_every_problem_at_once_with_its_line(write):
    path = write("""
        role: portal
        address: 10.9.9.9
        admin_password: short
        data_dir: var/lib/dragonball
        hostname: node_1
        clustr_name: plant-7
        portal: 10.0.0.10
        """)
    answers, problems = answers_file.check(path, FACTS)
    assert answers is None
    assert [(p.line, p.field) for p in problems] == [
        (2, "address"), (3, "admin_password"), (4, "data_dir"), (5, "hostname"),
        (6, "clustr_name"), (7, "portal")]
    text = "\n".join(str(p) for p in problems)
    for fix in ("give one of 10.0.0.5 (eth0), 192.168.7.5 (eth1)",
                "too short (5 characters)", "start it with /", "not a hostname",
                "did you mean 'cluster_name'?", "only a device takes portal"):
        assert fix in text


def test_load_refuses_the_file_whole_listing_every_problem(write):
    path = write("role: device\naddress: 10.0.0.5\nenrollment_code: 1234\n"
                 "ca_fingerprint: SHA1:00\n")
    with pytest.raises(AnswersInvalid) as e:
        answers_file.load(path, FACTS)
    assert e.value.exit_status == 2 and len(e.value.problems) == 3
    message = str(e.value)
    assert "3 problem(s), nothing was changed" in message
    assert "line 4: ca_fingerprint: not a CA fingerprint" in message
    assert "line 3: enrollment_code: a code has 16 characters" in message
    assert "line 1: portal: missing: a device needs it, like 'portal: 10.0.0.10'" in message
    assert f"dragonball answers check {path}" in message


@pytest.mark.parametrize("key, suggested", [
    ("adress", "address"), ("enrolment_code", "enrollment_code"), ("data-dir", "data_dir"),
    ("admin_pasword", "admin_password"), ("Role", "role")])
def test_unknown_keys_get_a_suggestion(write, key, suggested):
    path = write(f"role: portal\naddress: 10.0.0.5\nadmin_password: '{PASSWORD}'\n"
                 f"{key}: x\n")
    _, problems = answers_file.check(path, FACTS)
    assert where(problems) == {(key, 4)}
    assert f"did you mean '{suggested}'?" in problems[0].message


def test_a_misspelled_answer_is_not_also_missing(write):
    path = write(f"role: portal\nadress: 10.0.0.5\nadmin_pasword: '{PASSWORD}'\n")
    _, problems = answers_file.check(path, FACTS)
    assert [str(p) for p in problems] == [
        "line 2: adress: 'adress' is not an answer: did you mean 'address'?",
        "line 3: admin_pasword: 'admin_pasword' is not an answer: did you mean "
        "'admin_password'?"]


def test_an_unknown_key_like_nothing_lists_the_answers(write):
    _, problems = answers_file.check(write("role: device\nflavour: x\n"), FACTS)
    unknown = next(p for p in problems if p.field == "flavour")
    assert unknown.line == 2 and "the answers are role, address, portal" in unknown.message


def test_a_key_given_twice(write):
    path = write(f"role: portal\naddress: 10.0.0.5\nadmin_password: '{PASSWORD}'\n"
                 "role: device\n")
    _, problems = answers_file.check(path, FACTS)
    assert where(problems) == {("role", 4)}
    assert "given twice (first on line 1)" in problems[0].message


def test_lists_and_mappings_are_refused(write):
    path = write("role: [portal]\naddress:\n  ip: 10.0.0.5\n")
    _, problems = answers_file.check(path, FACTS)
    assert {("role", 1), ("address", 2)} <= where(problems)
    assert all("one value" in p.message for p in problems if p.field in ("role", "address"))


def test_values_are_read_as_written(write):
    """A password of digits stays text; yes/no/on are not booleans; ~ is 'not given'."""
    path = write("role: portal\naddress: 10.0.0.5\nadmin_password: 1234567890123\n"
                 "hostname: ~\ncluster_name:\n")
    _, problems = answers_file.check(path, FACTS)
    assert where(problems) == {("admin_password", 3)}
    assert "one kind of character" in problems[0].message
    answers = answers_file.load(write("role: portal\naddress: 10.0.0.5\n"
                                      "admin_password: yes yes yes 1234\n", name="b.yaml"), FACTS)
    assert answers.admin_password == "yes yes yes 1234" and answers.cluster_name == "node-1"


@pytest.mark.parametrize("text, line, words", [
    ("role: portal\naddress: [10.0.0.5\n", 3, "not valid YAML"),
    ("role: portal\n  address: 10.0.0.5\n", 2, "not valid YAML"),
    ("admin_password: *secret\n", 1, "not valid YAML"),
    ("- role: portal\n", 1, "a mapping"),
    ("", None, "is empty"),
    ("# nothing but a comment\n", None, "is empty"),
])
def test_broken_files(write, text, line, words):
    _, problems = answers_file.check(write(text), FACTS)
    assert problems[0].field == "(file)" and problems[0].line == line
    assert words in problems[0].message


def test_a_missing_file(tmp_path):
    _, problems = answers_file.check(str(tmp_path / "nope.yaml"), FACTS)
    assert where(problems) == {("(file)", None)}
    assert "No such file" in problems[0].message and "wizard/portal.yaml" in problems[0].message


def test_not_utf8(write, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("role: portal\nhostname: n\xf6de\n".encode("latin-1"))
    _, problems = answers_file.check(str(path), FACTS)
    assert (problems[0].line, problems[0].field) == (2, "(file)")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_password_in_a_file_others_can_read_is_refused(write, mode):
    path = write(f"role: portal\naddress: 10.0.0.5\nadmin_password: '{PASSWORD}'\n", mode=mode)
    _, problems = answers_file.check(path, FACTS)
    assert where(problems) == {("admin_password", 3)}
    assert f"mode {mode:04o}" in problems[0].message
    assert problems[0].message.endswith(f"run chmod 600 {path}")


def test_a_readable_weak_password_gets_both_problems(write):
    path = write("role: portal\naddress: 10.0.0.5\nadmin_password: weak\n", mode=0o644)
    _, problems = answers_file.check(path, FACTS)
    assert [p.line for p in problems] == [3, 3]
    messages = " | ".join(p.message for p in problems)
    assert "chmod 600" in messages and "too short" in messages


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_file_may_hold_the_password(write, mode):
    path = write(f"role: portal\naddress: 10.0.0.5\nadmin_password: '{PASSWORD}'\n", mode=mode)
    assert answers_file.load(path, FACTS).admin_password == PASSWORD


def test_the_password_from_a_file(write, tmp_path):
    secret = tmp_path / "secrets" / "admin"
    secret.parent.mkdir()
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    path = write("role: portal\naddress: 10.0.0.5\nadmin_password_file: secrets/admin\n",
                 mode=0o644)
    assert answers_file.load(path, FACTS).admin_password == PASSWORD


@pytest.mark.parametrize("content, mode, words", [
    ("Correct horse battery\n", 0o644, ["others can read the password", "chmod 600"]),
    ("\n", 0o600, ["is empty", "first line"]),
    ("dragonball-rocks-2024\n", 0o600, ["the password in that file: contains the product's"]),
])
def test_password_file_problems(write, tmp_path, content, mode, words):
    secret = tmp_path / "admin.pw"
    secret.write_text(content)
    secret.chmod(mode)
    path = write(f"role: portal\naddress: 10.0.0.5\nadmin_password_file: {secret}\n")
    _, problems = answers_file.check(path, FACTS)
    assert where(problems) == {("admin_password_file", 3)}
    for word in words:
        assert word in problems[0].message


def test_password_file_missing_is_one_problem_not_two(write):
    path = write("role: portal\naddress: 10.0.0.5\nadmin_password_file: nope\n")
    _, problems = answers_file.check(path, FACTS)
    assert where(problems) == {("admin_password_file", 3)}
    assert "No such file" in problems[0].message


def test_password_and_password_file_together(write, tmp_path):
    path = write(f"role: portal\naddress: 10.0.0.5\nadmin_password: '{PASSWORD}'\n"
                 "admin_password_file: pw\n")
    _, problems = answers_file.check(path, FACTS)
    assert where(problems) == {("admin_password_file", 4)}
    assert "keep one of the two" in problems[0].message


def test_a_portal_needs_a_password_and_a_device_refuses_one(write):
    _, problems = answers_file.check(write("role: portal\naddress: 10.0.0.5\n"), FACTS)
    assert where(problems) == {("admin_password", 1)}
    device = write(f"role: device\nportal: 10.0.0.10\nenrollment_code: {CODE}\n"
                   f"address: 10.0.0.5\nadmin_password: '{PASSWORD}'\ncluster_name: x\n"
                   f"ca_fingerprint: {FINGERPRINT}\n", name="device.yaml")
    _, problems = answers_file.check(device, FACTS)
    assert where(problems) == {("admin_password", 5), ("cluster_name", 6)}
    assert "only a portal takes admin_password, and role is device" in problems[0].message


def test_address_is_needed_when_the_server_has_several(write):
    path = write(f"role: device\nportal: 10.0.0.10\nenrollment_code: {CODE}\n"
                 f"ca_fingerprint: {FINGERPRINT}\n")
    _, problems = answers_file.check(path, FACTS)
    assert where(problems) == {("address", None)}
    assert "this server has 2 addresses" in problems[0].message
    _, problems = answers_file.check(path, Facts("node-1", ()))
    assert "no network address" in problems[0].message


def test_a_device_cannot_join_itself(write):
    path = write(f"role: device\nportal: 10.0.0.5:8443\nenrollment_code: {CODE}\n"
                 f"ca_fingerprint: {FINGERPRINT}\n")
    _, problems = answers_file.check(path, ONE_NIC)
    assert where(problems) == {("portal", 2)}


def test_the_password_must_not_hold_the_hostname_override(write):
    path = write("role: portal\naddress: 10.0.0.5\nhostname: plant-gw\n"
                 "admin_password: 'Plant-GW is mine'\n")
    _, problems = answers_file.check(path, FACTS)
    assert where(problems) == {("admin_password", 4)}
    assert "'plant-gw'" in problems[0].message


# -- remote checks --------------------------------------------------------------------------

DEVICE = (f"role: device\naddress: 10.0.0.5\nportal: portal.lan\nenrollment_code: {CODE}\n"
          f"ca_fingerprint: {FINGERPRINT.upper()}\n")


def test_remote_checks_run_in_order_on_a_well_formed_file(write):
    calls = []
    checks = Checks(check_portal=lambda a: calls.append(("portal", a)) or True,
                    check_code=lambda a, c: calls.append(("code", a, c)) or True,
                    check_fingerprint=lambda a, f: calls.append(("ca", a, f)) or True)
    answers_file.load(write(DEVICE), FACTS, checks)
    portal = f"portal.lan:{ports.PORTAL}"
    assert calls == [("portal", portal), ("ca", portal, FINGERPRINT), ("code", portal, CODE)]


def test_a_wrong_fingerprint_stops_before_the_code_is_sent(write):
    checks = Checks(check_fingerprint=lambda a, f: "the portal's CA is not that one: compare "
                                                   "with what 'dragonball enroll' printed",
                    check_code=lambda a, c: pytest.fail("the code went to an unpinned portal"))
    _, problems = answers_file.check(write(DEVICE), FACTS, checks)
    assert where(problems) == {("ca_fingerprint", 5)}


def test_remote_check_messages_become_problems(write):
    checks = Checks(check_code=lambda a, c: "this code was used already: ask the portal "
                                            "for a new one")
    _, problems = answers_file.check(write(DEVICE), FACTS, checks)
    assert where(problems) == {("enrollment_code", 4)}
    assert "used already" in problems[0].message


def test_an_unreachable_portal_skips_the_code_check(write):
    checks = Checks(check_portal=lambda a: f"{a} does not answer: check the address",
                    check_code=lambda a, c: pytest.fail("the code was checked"))
    _, problems = answers_file.check(write(DEVICE), FACTS, checks)
    assert where(problems) == {("portal", 3)}


def test_a_remote_check_that_raises_our_error_is_a_problem(write):
    from dragonball.errors import DragonBallError

    def refuse(address):
        raise DragonBallError("TLS handshake failed", "check the portal's address")
    _, problems = answers_file.check(write(DEVICE), FACTS, Checks(check_portal=refuse))
    assert problems[0].message == "TLS handshake failed: check the portal's address"


def test_no_remote_check_on_a_file_with_problems(write):
    checks = Checks(check_portal=lambda a: pytest.fail("checked a broken file"))
    _, problems = answers_file.check(write(DEVICE + "data_dir: relative\n"), FACTS, checks)
    assert where(problems) == {("data_dir", 6)}


# -- build_answers alone ----------------------------------------------------------------------

def test_build_answers_is_the_same_rules_without_a_file():
    answers, problems = build_answers({"role": "portal", "admin_password": PASSWORD,
                                       "data_dir": "/data/db/"}, ONE_NIC)
    assert problems == [] and answers.data_dir == "/data/db" and answers.address == "10.0.0.5"
    answers, problems = build_answers({"role": "manager"}, ONE_NIC)
    assert answers is None and where(problems) == {("role", None)}


def test_as_dict_and_masked():
    answers = Answers(role="portal", address="10.0.0.5", admin_password=PASSWORD,
                      cluster_name="node-1")
    assert answers.as_dict()["admin_password"] == PASSWORD
    assert answers.masked() == {"role": "portal", "address": "10.0.0.5",
                                "data_dir": "/var/lib/dragonball",
                                "admin_password": "********", "cluster_name": "node-1"}
    device = Answers(role="device", address="10.0.0.5", portal="p:8443", enrollment_code=CODE,
                     ca_fingerprint=FINGERPRINT)
    assert device.masked()["enrollment_code"] == "********"
    assert device.masked()["ca_fingerprint"] == FINGERPRINT

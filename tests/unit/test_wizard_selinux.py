"""SELinux is switched to permissive only with the administrator's consent: the wizard's
answers are refused on an enforcing server without it (wizard/answers.py)."""

from __future__ import annotations


def test_an_enforcing_selinux_needs_consent_before_anything_changes():
    """On a server where SELinux is enforcing, the answers are refused without
    selinux_permissive: yes (the install would otherwise switch it silently)."""
    from dragonball.wizard.answers import SELINUX_CONSENT, build_answers
    from dragonball.wizard.model import Facts, Interface
    facts = Facts("s1", (Interface("eth0", "10.0.0.1"),), selinux_enforcing=True)
    raw = {"role": "portal", "address": "10.0.0.1", "admin_password": "a long passphrase 1"}
    answers, problems = build_answers(raw, facts)
    assert answers is None and [p.field for p in problems] == ["selinux_permissive"]
    assert problems[0].message == SELINUX_CONSENT
    answers, problems = build_answers({**raw, "selinux_permissive": "no"}, facts)
    assert answers is None and [p.field for p in problems] == ["selinux_permissive"]
    answers, problems = build_answers({**raw, "selinux_permissive": "maybe"}, facts)
    assert answers is None and "neither yes nor no" in problems[0].message
    answers, problems = build_answers({**raw, "selinux_permissive": "Yes"}, facts)
    assert problems == [] and answers.selinux_permissive is True
    relaxed = Facts("s1", (Interface("eth0", "10.0.0.1"),))
    answers, problems = build_answers(raw, relaxed)
    assert problems == [] and answers.selinux_permissive is None


def test_selinux_enforcing_is_read_now_and_at_the_next_boot(tmp_path):
    from dragonball.wizard.host import selinux_enforcing
    assert not selinux_enforcing(str(tmp_path))
    (tmp_path / "etc/selinux").mkdir(parents=True)
    (tmp_path / "etc/selinux/config").write_text("# x\nSELINUX=enforcing\n")
    assert selinux_enforcing(str(tmp_path))
    (tmp_path / "etc/selinux/config").write_text("SELINUX=permissive\n")
    (tmp_path / "sys/fs/selinux").mkdir(parents=True)
    (tmp_path / "sys/fs/selinux/enforce").write_text("1\n")
    assert selinux_enforcing(str(tmp_path))

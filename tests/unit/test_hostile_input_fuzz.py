"""Any text at all, given as an app spec or an answers file: a result or InvalidInput, at once.

Hypothesis writes the texts: arbitrary characters, and YAML-ish texts built from the
pieces attackers use (anchors, aliases, tags, nesting, control characters). Whatever it
finds, the spec loader answers with a spec or AppSpecInvalid and the answers loader with
answers or AnswersInvalid, never another exception, each within the deadline.
"""

from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dragonball.app import spec as app_spec
from dragonball.app.errors import AppSpecInvalid
from dragonball.cli import main
from dragonball.wizard import answers_file
from dragonball.wizard.errors import AnswersInvalid
from dragonball.wizard.model import Facts

FACTS = Facts(hostname="node-1")
PIECES = ["app: notes\n", "services:\n", "  web:\n", "    kind: service\n", "    image: a/b\n",
          "    replicas: ", "&a ", "*a", "!!int ", "!Ref ", "!!python/object ", "[", "]", "{",
          "}", ", ", ": ", "- ", "\n", "  ", "\0", "\x07", "'", '"', "#", "2024-13-45", "1e999",
          ".inf", "~", "<<: ", "---\n", "role: portal\n", "address: 10.0.0.5\n", "?", "|\n"]
TEXTS = st.one_of(st.text(max_size=400), st.lists(st.sampled_from(PIECES), max_size=60)
                  .map("".join))
FUZZ = settings(max_examples=200, deadline=1000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(TEXTS)
@example("app: x\nservices: [~, 1]\n")  # found by this test: services as a list held None
def test_the_spec_loader_answers_any_text(text):
    try:
        app_spec.load(text, "fuzz.yaml")
    except AppSpecInvalid as e:
        assert e.problems and all(p.file == "fuzz.yaml" for p in e.problems)


@FUZZ
@given(st.one_of(TEXTS.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=200)))
def test_the_answers_loader_answers_any_bytes(data):
    with tempfile.NamedTemporaryFile("wb", suffix=".yaml", delete=False) as f:
        f.write(data)
    try:
        os.chmod(f.name, 0o600)
        answers_file.load(f.name, FACTS)
    except AnswersInvalid as e:
        assert e.problems
    finally:
        os.unlink(f.name)


def test_plan_of_an_alias_bomb_exits_2_with_the_problem_and_no_traceback(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text("a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")))
    assert main(["plan", str(path)]) == 2
    out = capsys.readouterr()
    assert "values once its aliases" in out.out and f"{path}:6" in out.out
    assert "Traceback" not in out.out + out.err and "internal error" not in out.out + out.err

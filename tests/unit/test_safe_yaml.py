"""shared.safe_yaml: every hostile input is refused at once, with its line, never raised.

Each class the attacker of issue 13 found: an alias bomb, a file of 50 MB, custom and core
tags with bad values, deep nesting, a NUL byte, bytes that are not UTF-8; the time and the
memory of the worst are measured in a process of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from dragonball.shared import safe_yaml

LIMITS = safe_yaml.Limits(max_bytes=256 * 1024, max_depth=32, max_values=100_000,
                          what="an app spec")
BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")) + \
    "services: *i\n"


def refused(data, limits=LIMITS) -> list:
    found = safe_yaml.compose(data, limits)
    assert found.root is None and found.problems
    return found.problems


def test_plain_yaml_composes_and_its_scalars_are_typed():
    found = safe_yaml.compose("app: notes\nn: 3\nf: 0.5\nok: true\nnone: ~\n'<<': x\n", LIMITS)
    assert found.problems == []
    values = {k.value: safe_yaml.scalar(v) for k, v in found.root.value}
    assert values == {"app": "notes", "n": 3, "f": 0.5, "ok": True, "none": None, "<<": "x"}


def test_an_alias_bomb_is_refused_with_its_line():
    [problem] = refused(BOMB)
    assert "100000 values once its aliases" in problem.message and problem.line == 6


def test_a_few_aliases_are_fine():
    found = safe_yaml.compose("a: &x {k: 1}\nb: *x\nc: *x\n", LIMITS)
    assert found.problems == [] and found.root.value[1][1] is found.root.value[0][1]


@pytest.mark.parametrize("text, line, words", [
    ("a: &a [*a]\n", 1, "inside what it names"),
    ("a: *nothing\n", 1, "names no anchor"),
    ("a: !Ref b\n", 1, "the tag !Ref"),
    ("a: !!python/object:os.system {}\n", 1, "the tag !!python/object:os.system"),
    ("a: !!binary AAAA\n", 1, "the tag !!binary"),
    ("a:\n  b: !!int \"three\"\n", 2, "written as an int (!!int) but is not one"),
    ("a: !!bool maybe\n", 1, "as a bool"),
    ("a: !!float x\n", 1, "as a float"),
    ("a: !!str [1]\n", 1, "the tag !!str on a list"),
    ("a: 2024-13-45\n", 1, "read as a date"),
    ("a: 1" + "0" * 5000 + "\n", 1, "read as an int"),
    ("--- 1\n--- 2\n", 2, "one YAML document"),
    ("a: [1\n", 2, "is not valid YAML"),
    ("a: " + "[" * 40 + "]" * 40 + "\n", 1, "nests more than 32"),
    ("a: 1\nb: \"x\0y\"\n", 2, "column 6 holds a NUL byte"),
    ("a: \x07\n", 1, "U+0007"),
    ("a: \ud800\n", 1, "U+D800"),
])
def test_each_class_is_one_problem_with_its_line(text, line, words):
    problems = refused(text)
    assert problems[0].line == line and words in problems[0].message, problems
    assert all(p.hint for p in problems)


def test_not_utf8_names_the_byte_and_its_line():
    [problem] = refused(b"a: 1\nb: n\xf6de\n")
    assert problem.line == 2 and "byte 9" in problem.message and "0xf6" in problem.message


def test_too_big_is_refused_before_decoding():
    [problem] = refused(b"\xff" * (LIMITS.max_bytes + 1))
    assert "at most 256 KiB" in problem.message


def test_many_control_characters_are_counted_not_each_named():
    problems = refused("a: " + "\0" * 100 + "\n")
    assert len(problems) == 6 and "95 more" in problems[-1].message


def test_read_file_reads_no_further_than_the_limit(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as f:
        f.truncate(50 << 20)  # 50 MB of NUL, sparse
    data, problems = safe_yaml.read_file(str(path), LIMITS)
    assert problems == [] and len(data) == LIMITS.max_bytes + 1
    assert "at most" in refused(data)[0].message
    assert "cannot read" in safe_yaml.read_file(str(tmp_path / "none"), LIMITS)[1][0].message


MEASURE = textwrap.dedent("""
    import json, sys, time
    start = time.perf_counter()
    from dragonball.app import spec
    found, problems = spec.check_file(sys.argv[1])
    # VmHWM: this process's peak (ru_maxrss may keep the forking parent's after exec)
    peak = next(int(line.split()[1]) for line in open("/proc/self/status")
                if line.startswith("VmHWM:"))
    print(json.dumps({"seconds": time.perf_counter() - start, "problems": len(problems),
                      "rss_mb": peak / 1024}))
""")


@pytest.mark.parametrize("content", ["bomb", "50mb", "deep"])
def test_the_worst_inputs_take_under_a_second_and_200_mb(tmp_path, content):
    """From the process's start (imports included), in a process of its own."""
    path = tmp_path / "spec.yaml"
    if content == "bomb":
        path.write_text(BOMB)
    elif content == "50mb":
        path.write_text("app: x\nservices:\n" + "  s: {kind: backend}\n" * ((50 << 20) // 22))
    else:
        path.write_text("app: x\nservices: " + "[" * 100_000 + "]" * 100_000 + "\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True,
                         text=True, env=env, timeout=60, check=True).stdout
    found = json.loads(out)
    assert found["problems"] >= 1 and found["seconds"] < 1.0 and found["rss_mb"] < 200, found

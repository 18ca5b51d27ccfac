"""build.py's command line, its error handler, progress output, and build-stream reading."""

from __future__ import annotations

import io
import pathlib

import pytest
from rich.console import Console

from dragonball.errors import BuildError, ExitStatus

from builder import cli, engine
from builder.progress import Reporter, Step


def captured() -> tuple[Reporter, io.StringIO]:
    out = io.StringIO()
    return Reporter(Console(file=out, width=200, force_terminal=False)), out


def test_default_target_is_bin_and_help_lists_targets(capsys):
    assert cli.parse_args([]).target == "bin"
    assert cli.parse_args(["base", "--debug"]).debug
    with pytest.raises(SystemExit) as done:
        cli.parse_args(["--help"])
    assert done.value.code == 0
    assert "examples" in capsys.readouterr().out


def test_unknown_target_is_a_usage_error():
    with pytest.raises(SystemExit) as done:
        cli.parse_args(["everything"])
    assert done.value.code == 2


def test_a_dragonball_error_is_a_message_and_its_categorys_exit_status(monkeypatch):
    def fail(target, reporter):
        raise BuildError("debootstrap failed", "check the mirror")
    monkeypatch.setattr(cli, "run", fail)
    reporter, out = captured()
    assert cli.main(["base"], reporter) == ExitStatus.FAILED == 1
    text = out.getvalue()
    assert "error: debootstrap failed" in text and "hint: check the mirror" in text
    assert "Traceback" not in text


def test_debug_shows_the_traceback(monkeypatch):
    def fail(target, reporter):
        raise BuildError("boom")
    monkeypatch.setattr(cli, "run", fail)
    reporter, out = captured()
    assert cli.main(["base", "--debug"], reporter) == 1
    assert "Traceback" in out.getvalue()


def test_no_docker_engine_is_unavailable_exit_5(monkeypatch):
    def fail(target, reporter):
        raise engine.BuildEngineError("cannot build: no Docker engine answers", "start it")
    monkeypatch.setattr(cli, "run", fail)
    reporter, out = captured()
    assert cli.main(["base"], reporter) == ExitStatus.UNAVAILABLE == 5
    assert "no Docker engine answers" in out.getvalue()


def test_a_bug_is_exit_70(monkeypatch):
    monkeypatch.setattr(cli, "run", lambda target, reporter: 1 / 0)
    reporter, out = captured()
    assert cli.main(["base"], reporter) == ExitStatus.INTERNAL == 70
    assert "ZeroDivisionError" in out.getvalue()


def test_without_terminal_lines_are_throttled_but_milestones_kept():
    reporter, out = captured()
    now = [0.0]
    step = Step(reporter.console, "build", None, clock=lambda: now[0])
    step.line("I: Retrieving a")                 # too soon after the start: not printed
    step.line("Step 1/3 : FROM x", keep=True)    # a milestone: always printed
    now[0] = 6.0
    step.line("\x1b[91mI: Unpacking b\x1b[0m")   # heartbeat due; colour codes stripped
    step.line("I: Unpacking c")                  # just printed one: skipped
    assert out.getvalue().split("\n")[:-1] == ["    Step 1/3 : FROM x", "    I: Unpacking b"]


def test_build_stream_lines_and_image_id():
    events = [{"stream": "Step 1/2 : FROM x\n ---> abc"}, {"stream": "\nStep 2/2 : RUN y\n"},
              {"aux": {"ID": "sha256:123"}}, {"stream": "Successfully built 123\n"}]
    lines: list[str] = []
    assert engine._follow_build(iter(events), "t", pathlib.Path("/ctx"), lines.append) == \
        "sha256:123"
    assert lines == ["Step 1/2 : FROM x", " ---> abc", "Step 2/2 : RUN y",
                     "Successfully built 123"]


def test_a_failed_step_names_the_step_and_the_output():
    events = [{"stream": "Step 6/9 : RUN apt-install nope\n"}, {"stream": "E: no package nope\n"},
              {"error": "returned a non-zero code: 100",
               "errorDetail": {"message": "The command returned a non-zero code: 100"}}]
    with pytest.raises(BuildError) as failure:
        engine._follow_build(iter(events), "base:t", pathlib.Path("/ctx"), lambda line: None)
    message = failure.value.message
    assert "building base:t failed at Step 6/9 : RUN apt-install nope" in message
    assert "non-zero code: 100" in message and "E: no package nope" in message


def test_a_module_folder_is_checked_before_anything_is_built(tmp_path):
    """`build.py module DIR` (issue 15: no single-module build): the folder's Dockerfile,
    its name as an image name, its module folder against the spec, all before the base."""
    from builder import pipeline
    from builder.errors import BuildInputInvalid
    with pytest.raises(BuildInputInvalid, match="needs the module's folder"):
        pipeline.module_build(None)
    with pytest.raises(BuildInputInvalid, match="has no Dockerfile"):
        pipeline.module_build(tmp_path)
    bad = tmp_path / "Bad Name"
    bad.mkdir()
    (bad / "Dockerfile").write_text("FROM dragonballbase:bookworm\n")
    with pytest.raises(BuildInputInvalid, match="not a valid image name"):
        pipeline.module_build(bad)
    wiki = tmp_path / "wiki"
    (wiki / "wiki" / "action" / "start").mkdir(parents=True)
    (wiki / "Dockerfile").write_text("FROM dragonballbase:bookworm\n")
    (wiki / "wiki" / "action" / "start" / "1_run.sh").write_text("exec true\n")
    with pytest.raises(BuildInputInvalid) as refused:
        pipeline.module_build(wiki)
    assert "action/start/1_run.sh: is not executable" in refused.value.message
    assert "action/status/: is missing" in refused.value.message
    good = pipeline.module_build(pipeline.REPO_ROOT / "examples" / "web")
    assert good.tag == "dragonball-module/web:latest" and good.context.endswith("examples/web")

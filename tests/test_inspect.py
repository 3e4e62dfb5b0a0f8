"""`wengert inspect`: the session's commands, driven by scripts (through the CLI and directly)."""
from __future__ import annotations

import io
import re
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert.cli import main
from wengert.inspect.session import (
    COMMANDS,
    Session,
    SessionCompleter,
    interact,
    run_lines,
)

CH9 = "models/ch09/listing_9_01.dl"
CH4 = "models/ch04/listing_4_06.dl"


def cli(path: str, script: str, *args: str):
    result = CliRunner().invoke(main, ["inspect", path, *args], input=textwrap.dedent(script).lstrip())
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def session(path: str, **inputs) -> tuple[Session, io.StringIO]:
    out = io.StringIO()
    return Session(wengert.load(path), inputs, out=out), out


def outputs(text: str) -> dict[str, str]:
    """A transcript split into {command: its output}."""
    parts = re.split(r"^>>> (.*)$", text, flags=re.MULTILINE)
    return {cmd: out.strip("\n") for cmd, out in zip(parts[1::2], parts[2::2])}


def number(text: str) -> float:
    return float(text.rsplit("=", 1)[-1].strip())


# ---------------------------------------------------------------- through the CLI
def test_script_on_chapter_9_reads_as_a_transcript():
    r = cli(CH9, """
        # comments and blank lines are skipped

        :eval f
        :eval x1 ** 2 + x2 ** 2
        :grad f wrt x1,x2
        :grad f wrt x1,x2 forward
        :adjoint f 2
        :check f wrt x1,x2
        """, "-i", "x1=1", "-i", "x2=2")
    assert r.exit_code == 0
    assert r.output.startswith(">>> :eval f\n")
    out = outputs(r.output)
    assert "# comments and blank lines are skipped" not in out
    assert number(out[":eval f"]) == pytest.approx(5 ** 0.5, abs=1e-6)
    assert number(out[":eval x1 ** 2 + x2 ** 2"]) == 5
    for mode in ("", " forward"):
        lines = out[f":grad f wrt x1,x2{mode}"].splitlines()
        assert lines == ["df/dx1 = 0.447214", "df/dx2 = 0.894427"]
    assert out[":adjoint f 2"] == "df/dv2 (pow, f64[]) = 0.223607"
    assert out[":check f wrt x1,x2"].startswith("ok: forward and reverse mode of `f` agree")


def test_bad_expression_points_into_the_typed_text():
    r = cli(CH9, """
        :eval sqrt(x1 +* 2)
        :eval x1 + y
        :eval sqrt(x1
        :eval f
        """, "-i", "x1=1", "-i", "x2=2")
    assert r.exit_code == 0  # errors are printed, the session goes on
    out = outputs(r.output)
    assert out[":eval sqrt(x1 +* 2)"].splitlines() == [
        "<inspect>:1:10: error: unexpected `*`; expected `(`, `-`, `[`, a name, a number, a string, ...",
        "    sqrt(x1 +* 2)",
        "             ^"]
    assert out[":eval x1 + y"].splitlines() == [
        "<inspect>:1:6: error: undefined name `y`", "    x1 + y", "         ^"]
    assert out[":eval sqrt(x1"].startswith("<inspect>:1:5: error: unclosed `(`")
    assert "Traceback" not in r.output
    assert number(out[":eval f"]) == pytest.approx(2.236068)  # an error does not end the session


def test_trace_lists_the_wengert_list_and_ranges():
    r = cli(CH9, ":trace f\n:trace f 2..5\n", "-i", "x1=1", "-i", "x2=2")
    out = outputs(r.output)
    full = out[":trace f"].splitlines()
    assert full[0] == "trace of `f`: 8 entries"
    rows = [line.split()[0] for line in full[3:]]
    assert rows == [f"v{i}" for i in range(8)]
    assert re.match(r"v7\s+sqrt f\s+v6\s+f64\[\]\s+18:5\s+2\.23607", full[-1])
    part = out[":trace f 2..5"].splitlines()
    assert part[0] == "trace of `f`: 8 entries, showing v2..v4"
    assert [line.split()[0] for line in part[3:]] == ["v2", "v3", "v4"]


def test_entry_shows_op_operands_value_and_source_line():
    r = cli(CH9, ":entry f 7\n:entry f 1\n:entry f 9\n", "-i", "x1=1", "-i", "x2=2")
    out = outputs(r.output)
    entry = out[":entry f 7"]
    assert "op:        sqrt" in entry
    assert "operands:  v6 (add, f64[])" in entry
    assert "dtype:     f64" in entry and "value:     2.236068" in entry
    assert "source:    models/ch09/listing_9_01.dl:18:5\n    f = sqrt(x1 ** 2 + x2 ** 2)\n        ^^^^" in entry
    assert "input x1: f64" in out[":entry f 1"]  # a root points at its declaration
    assert out[":entry f 9"] == "error: the trace of `f` has 8 entries (v0..v7); there is no v9"


def test_set_changes_later_results_listing_4_6():
    r = cli(CH4, """
        :eval z
        :grad z wrt x
        :set y=[[1,1,1]]
        :eval z
        :grad z wrt x forward
        :set x = [[1, 1, 1], [2, 2, 2]]
        :eval x[1, 0:2]
        """, "-i", "x=[[1,2,3]]")
    out = outputs(r.output)
    assert out[":grad z wrt x"] == "dz/dx = [[ 7. 17. 33.]]"
    assert out[":set y=[[1,1,1]]"] == "y = [[1. 1. 1.]]   (state)"
    assert out[":grad z wrt x forward"] == "dz/dx = [[ 4. 13. 28.]]"
    assert out[":eval x[1, 0:2]"] == "[2. 2.]"
    # `:eval z` ran twice: 68 before :set, 42 after
    values = re.findall(r">>> :eval z\n(.*)\n", r.output)
    assert [float(v) for v in values] == [68, 42]


def test_set_rejects_bad_values_and_names():
    s, out = session(CH4)
    assert not s.execute(":set x=[1,2]")
    assert "rank 1 instead of 2" in out.getvalue()
    assert not s.execute(":set z=3")
    assert "only inputs, params and state can be set" in out.getvalue()
    assert not s.execute(":set yy=3")
    assert "unknown input, param or state `yy` (did you mean `y`?)" in out.getvalue()
    assert not s.execute(":set y")
    assert "usage: :set NAME=VALUE" in out.getvalue()


def test_load_params_from_npz(tmp_path):
    path = tmp_path / "params.npz"
    np.savez(path, y=np.array([[1.0, 1.0, 1.0]]))
    r = cli(CH4, f":load {path}\n:eval z\n:params\n:load {tmp_path / 'missing.npz'}\n", "-i", "x=[[1,2,3]]")
    out = outputs(r.output)
    assert out[f":load {path}"] == f"loaded 1 array from {path}: y"
    assert number(out[":eval z"]) == 42
    assert "[[1. 1. 1.]]" in out[":params"]
    assert out[f":load {tmp_path / 'missing.npz'}"] == f"{tmp_path / 'missing.npz'}: error: no such params file"
    r = cli(CH4, ":eval z\n", "-i", "x=[[1,2,3]]", "--params", str(path))
    assert number(outputs(r.output)[":eval z"]) == 42


def test_check_reports_ok_and_failures(monkeypatch):
    from wengert.runtime import gradcheck
    s, out = session(CH4, x=[[1.0, 2.0, 3.0]])
    assert s.execute(":check z wrt x")
    assert "ok: forward and reverse mode of `z` agree" in out.getvalue()

    def broken(*args, **kwargs):
        raise gradcheck.GradCheckError("JVP of `z` along a random direction: mismatch at index ()")
    monkeypatch.setattr(gradcheck, "check_grads", broken)
    assert not s.execute(":check z")
    assert "error: gradcheck failed: JVP of `z`" in out.getvalue()


def test_help_lists_every_command_with_an_example():
    r = cli(CH9, ":help\n:help grad\n")
    text = outputs(r.output)[":help"]
    for name, cmd in COMMANDS.items():
        assert f":{name}" in text and f"e.g. {cmd.example}" in text
    assert set(COMMANDS) >= {"eval", "trace", "entry", "grad", "adjoint", "set", "load", "check", "values",
                             "params", "inputs", "help", "quit"}
    assert outputs(r.output)[":help grad"].startswith(":grad NAME [wrt A,B] [forward|reverse]")


def test_unknown_command_suggests_and_session_continues():
    r = cli(CH9, ":evl f\n:tarce f\n:eval f\n:quit\n:eval 1\n", "-i", "x1=1", "-i", "x2=2")
    assert r.exit_code == 0
    out = outputs(r.output)
    assert out[":evl f"] == "error: unknown command `:evl` (did you mean `:eval`?); :help lists the commands"
    assert "(did you mean `:trace`?)" in out[":tarce f"]
    assert number(out[":eval f"]) == pytest.approx(2.236068)
    assert ":eval 1" not in out  # :quit ends the script


def test_missing_input_and_unknown_name_are_diagnostics():
    r = cli(CH9, ":eval f\n:trace g\n:grad f wrt x3\n")
    out = outputs(r.output)
    assert "input `x1` is needed but was not given (set it with `:set x1=VALUE`)" in out[":eval f"]
    assert "unknown value `g`" in out[":trace g"]
    assert "unknown param, state or input `x3`" in out[":grad f wrt x3"]
    assert r.exit_code == 0 and "Traceback" not in r.output


def test_bad_program_or_inputs_exit_2(tmp_path):
    bad = tmp_path / "bad.dl"
    bad.write_text("f = g\n")
    r = CliRunner().invoke(main, ["inspect", str(bad)], input="")
    assert r.exit_code == 2 and "undefined name `g`" in r.output
    r = CliRunner().invoke(main, ["inspect", CH9, "-i", "x3=1"], input="")
    assert r.exit_code == 2 and "unknown input `x3`" in r.output


def test_script_option(tmp_path):
    script = tmp_path / "session.txt"
    script.write_text(":eval f\n")
    r = CliRunner().invoke(main, ["inspect", CH9, "-i", "x1=3", "-i", "x2=4", "--script", str(script)])
    assert r.exit_code == 0 and outputs(r.output)[":eval f"] == "5."


# ---------------------------------------------------------------- the class directly
def test_eval_is_cached_per_expression_and_sees_current_params():
    s, _out = session(CH4, x=[[1.0, 2.0, 3.0]])
    assert float(s.evaluate("sum(y ** 2)")) == 16 + 25 + 36
    cached = s._eval_cache["sum(y ** 2)"]
    s.execute(":set y=[[1,1,1]]")
    assert float(s.evaluate("sum(y ** 2)")) == 3
    assert s._eval_cache["sum(y ** 2)"] is cached
    assert s.program.params["y"].tolist() == [[1, 1, 1]]


def test_bare_lines_are_expressions():
    s, out = session(CH9, x1=1.0, x2=2.0)
    assert s.execute("x1 + x2")
    assert out.getvalue().strip() == "3."
    assert not s.execute("trace f")
    assert "commands start with `:` (did you mean `:trace f`?)" in out.getvalue()


def test_non_tensor_expression():
    s, out = session(CH9, x1=1.0, x2=2.0)
    assert not s.execute(":eval sqrt")
    assert out.getvalue().startswith("<inspect>:1:1: error: this is not a tensor")


def test_listings():
    s, out = session(CH4, x=[[1.0, 2.0, 3.0]])
    for line in (":values", ":params", ":inputs"):
        assert s.execute(line)
    text = out.getvalue().splitlines()
    assert re.match(r"z\s+f64\[\]\s+68$", text[0])
    assert re.match(r"gz\s+f64\[n, 3\]\s+\[\[ 7\. 17\. 33\.\]\]", text[1])  # the book's T.grad(z, [x])
    assert re.match(r"y\s+state f64\[1, 3\]\s+\[\[4\. 5\. 6\.\]\]", text[2])
    assert re.match(r"x\s+f64\[n, 3\]\s+\[\[1\. 2\. 3\.\]\]", text[3])
    s, out = session(CH9)
    s.execute(":values")
    assert "(needs `x1`, `x2`)" in out.getvalue()


def test_internal_errors_never_end_the_session(monkeypatch):
    s, out = session(CH9, x1=1.0, x2=2.0)
    monkeypatch.setattr(s.program, "trace", lambda *a, **k: 1 / 0)
    assert not s.execute(":trace f")
    assert out.getvalue().strip() == "internal error: ZeroDivisionError: division by zero"
    assert s.execute(":eval f")


def test_run_lines_counts_failures():
    s, _out = session(CH9, x1=1.0, x2=2.0)
    assert run_lines(s, [":eval f", ":nope", ":eval q", ":quit", ":nope"]) == 2


def test_completion_of_commands_and_names():
    from prompt_toolkit.document import Document
    s, _ = session(CH9)
    c = SessionCompleter(s)

    def complete(text):
        return [x.text for x in c.get_completions(Document(text), None)]
    assert complete(":tr") == [":trace"]
    assert set(complete(":")) == {f":{n}" for n in COMMANDS}
    assert complete(":eval x") == ["x1", "x2"]
    assert {"sqrt", "squared_error"} <= set(complete("sq"))  # built-ins and stdlib fns
    assert "wrt" in complete(":grad f w")
    assert "ting_9_01.dl" in complete(":load models/ch09/lis")  # file names, completed from the typed part


def test_interactive_prompt():
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    s, out = session(CH9, x1=1.0, x2=2.0)
    history = InMemoryHistory()
    with create_pipe_input() as pipe:
        pipe.send_text(":eval f\r:nope\r:quit\r")
        interact(s, history=history, input=pipe, output=DummyOutput())
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("wengert inspect models/ch09/listing_9_01.dl")
    assert lines[1] == "2.236068" and lines[2].startswith("error: unknown command `:nope`")
    assert list(history.get_strings()) == [":eval f", ":nope", ":quit"]

"""No silent no-ops in the API and the CLI: each mistake is a diagnostic naming what was wrong,
never ignored and never a NumPy, KeyError or Python-parser message."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert import DiagnosticError
from wengert.cli import main

SOURCE = """\
input x: f64[n, 2]
param w: f64[2] = [1, 2]
state count: i64[] = 0
f = sum((x @ w) ** 2)
update count = count + 1
"""
X = np.array([[1.0, 2.0], [3.0, 4.0]])


@pytest.fixture
def prog():
    return wengert.compile(SOURCE, path="t.dl")


def message(fn) -> str:
    with pytest.raises(DiagnosticError) as info:
        fn()
    text = info.value.diagnostics[0].render()
    assert "Traceback" not in text and "<ast." not in text
    return text


def test_train_refuses_an_unknown_override(tmp_path):
    program = tmp_path / "p.dl"
    program.write_text(SOURCE.replace("update count = count + 1\n", "") +
                       "data d = random_regression(examples=8, features=2)\n"
                       "train { data = d\n minimize = f\n epochs = 1 }\n")
    p = wengert.load(program)
    assert "unknown training setting `epoch` (did you mean `epochs`?)" in message(lambda: p.train(epoch=3))
    before = p.params["w"].copy()
    p.train(epochs=1, batch=4)  # known keys still work
    assert not np.array_equal(before, p.params["w"])


def test_no_unnamed_train_block_is_worded_plainly(prog):
    assert "the program has no unnamed train block" in message(lambda: prog.train())


def test_hvp_needs_a_vector_of_known_names(prog):
    assert "hvp needs a vector: a direction for one or more of w" in message(lambda: prog.hvp("f", x=X))
    assert "unknown param, state or input `ww` (did you mean `w`?)" in message(
        lambda: prog.hvp("f", vector={"ww": [1.0, 0.0]}, x=X))
    assert "the vector has a part for `x`, which is not differentiated (wrt: w)" in message(
        lambda: prog.hvp("f", vector={"x": np.ones((2, 2))}, x=X))
    # H = 2 X^T X = [[20, 28], [28, 40]]; H e0
    np.testing.assert_allclose(prog.hvp("f", vector={"w": [1.0, 0.0]}, x=X)["w"], [20.0, 28.0])


def test_set_params_refuses_a_non_integer_state(prog):
    text = message(lambda: prog.set_params({"count": 1.5}))
    assert "state `count` is i64, but the value given has non-integer float64 entries" in text
    assert "t.dl:3:1" in text
    prog.set_params({"count": 2.0})
    assert prog.params["count"] == 2 and prog.params["count"].dtype == np.int64
    assert "param `w` is f64[2], but the value given has shape [3]" in message(
        lambda: prog.set_params({"w": [1, 2, 3]}))
    assert "param `w` needs numbers" in message(lambda: prog.set_params({"w": ["a", "b"]}))


def test_jvp_checks_the_tangents(prog):
    assert "the direction for `w` has shape [3], but `w` has shape [2]" in message(
        lambda: prog.jvp("f", {"w": [1.0, 0.0, 0.0]}, x=X))
    assert "unknown param, state or input `v`" in message(lambda: prog.jvp("f", {"v": [1.0, 0.0]}, x=X))
    assert "cannot differentiate with respect to `count`: it is i64" in message(
        lambda: prog.jvp("f", {"count": 1}, x=X))
    value, tangent = prog.jvp("f", {"w": [1.0, 0.0]}, x=X)  # f = 5^2 + 11^2; df = 2 (5*1 + 11*3)
    assert value == 146.0 and tangent == 76.0


@pytest.mark.parametrize("item, expected", [
    ("x=zeros", "input `x`: cannot read `zeros`: `zeros` is not a value; expected a number, a nested list"),
    ("x=[[1,2],[3]]", "input `x`: cannot read `[[1,2],[3]]`: the rows of a nested list must have equal lengths"),
    ("x=[[1,2", "input `x`: cannot read `[[1,2`: not a value"),
    ("x=[['a', 2]]", "`'a'` is not a value"),
    ("x=np.zeros(3)", "`np.zeros(3)` is not a value"),
])
def test_cli_inputs_never_show_python_internals(tmp_path, item, expected):
    program = tmp_path / "t.dl"
    program.write_text(SOURCE)
    r = CliRunner().invoke(main, ["run", str(program), "--eval", "f", "-i", item])
    assert r.exit_code == 2, r.output
    assert expected in r.output
    assert "<ast." not in r.output and "malformed node" not in r.output and "Traceback" not in r.output


def test_nan_and_inf_are_values(tmp_path):
    program = tmp_path / "t.dl"
    program.write_text(SOURCE)
    r = CliRunner().invoke(main, ["run", str(program), "--eval", "f", "-i", "x=[[nan, 2], [-inf, 1]]"])
    assert r.exit_code == 0, r.output
    assert "f = nan" in r.output


def test_inspect_set_calls_a_param_a_param(tmp_path):
    program = tmp_path / "t.dl"
    program.write_text(SOURCE)
    r = CliRunner().invoke(main, ["inspect", str(program)], input=":set w=zeros\n:set count=1.5\n:set x=zeros\n")
    assert "param `w`: cannot read `zeros`" in r.output
    assert "state `count` is i64, but the value given has non-integer" in r.output
    assert "input `x`: cannot read `zeros`" in r.output


def test_a_param_given_as_an_input_points_to_params(tmp_path):
    program = tmp_path / "t.dl"
    program.write_text(SOURCE)
    np.savez(tmp_path / "p.npz", w=np.array([3.0, 4.0]))
    r = CliRunner().invoke(main, ["run", str(program), "--eval", "f", "-i", "x=[[1, 2]]",
                                  "-i", f"w={tmp_path / 'p.npz'}:w"])
    assert r.exit_code == 2, r.output
    assert "`w` is a param, not an input: set it with set_params or load_params (the CLI's --params P.npz)" \
        in r.output

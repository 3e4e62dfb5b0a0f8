"""Anomaly detection (`--detect-anomaly`, `prog.detect_anomaly`): the first NaN/Inf of the
forward pass, of the backward pass, in an input, or after an optimizer step, reported at
the `.dl` line that produced it with the op and its operands' types and ranges."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert.cli import main
from wengert.diagnostics import DiagnosticError
from wengert.runtime import anomaly
from wengert.runtime.anomaly import AnomalyError

LOG = """
input x: f64[8]
y = 2 * x
z = sum(log(y))
w = z + 1
"""


def program(text: str, detect: bool = True):
    prog = wengert.compile(textwrap.dedent(text).lstrip("\n"), path="t.dl")
    prog.detect_anomaly = detect
    return prog


def failure(fn, *args, **kwargs) -> AnomalyError:
    with pytest.raises(AnomalyError) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, DiagnosticError)
    return info.value


X8 = np.array([1.0, -1, 2, -0.5, 2.5, -1, 0.5, 1])  # three negatives: log(2x) gives 3 NaN


# ---------------------------------------------------------------- the forward pass
def test_log_of_a_negative_is_reported_at_the_log_call():
    prog = program(LOG)
    e = failure(prog.run, "w", x=X8)
    d = e.diagnostic
    assert (d.span.line, d.span.column) == (3, 9)  # `log(y)` in `z = sum(log(y))`
    assert (e.direction, e.op) == ("forward", "log")
    assert (e.count.nan, e.count.inf, e.count.size) == (3, 0, 8)
    assert d.message == ("NaN in the forward pass: `log` produced 3 NaN (of 8 values); "
                         "operand 1 (`y`): f64[8] in [-2, 5]")
    assert d.render().splitlines()[0].startswith("t.dl:3:9: error: NaN in the forward pass: `log`")


def test_with_a_trace_operands_are_named_by_their_entries():
    prog = program(LOG)
    e = failure(prog.grad, "w", wrt=["x"], x=X8)  # a recorded evaluation stops before backward
    assert (e.direction, e.op, e.diagnostic.span.line) == ("forward", "log", 3)
    assert e.entry == 3  # v0 x, v1 const 2, v2 y, v3 log
    assert "operand v2 (`y`): f64[8] in [-2, 5]" in e.diagnostic.message


def test_evaluation_stops_at_the_first_bad_entry():
    prog = program("""
        input x: f64[2]
        a = x / x
        b = log(a - 2)
        c = sum(b)
    """)
    e = failure(prog.run, "c", x=np.array([0.0, 1.0]))
    assert (e.op, e.diagnostic.span.line, e.count.nan) == ("div", 2, 1)  # 0/0, not the later log


def test_zero_over_zero_in_a_naive_softmax():
    prog = program("""
        input x: f64[4]
        e = exp(x)
        p = e / sum(e)
        z = sum(p * x)
    """)
    # exp(-1000) underflows to 0: every probability is 0/0 (the stdlib softmax subtracts the max)
    e = failure(prog.run, "z", x=np.full(4, -1000.0))
    d = e.diagnostic
    assert (d.span.line, d.span.column, e.op) == (3, 5, "div")
    assert (e.count.nan, e.count.size) == (4, 4)
    assert "operand 1 (`e`): f64[4] in [0, 0]; operand 2: f64[] = 0" in d.message
    # exp(+1000) overflows first: reported as Inf at `exp`, before the division runs
    e = failure(prog.run, "z", x=np.array([1000.0, 0, 0, 0]))
    assert (e.op, e.diagnostic.span.line, e.count.inf, e.count.nan) == ("exp", 2, 1, 0)
    assert e.diagnostic.message.startswith("Inf in the forward pass: `exp` produced 1 Inf (of 4 values)")


def test_the_stdlib_softmax_is_reported_at_the_users_call():
    prog = program("""
        input x: f64[3]
        big = x * 1e308
        p = softmax(big)
        z = sum(p)
    """)
    e = failure(prog.run, "z", x=np.array([10.0, 1.0, 0.0]))
    assert (e.op, e.diagnostic.span.line, e.count.inf) == ("mul", 2, 1)
    prog = program("""
        input x: f64[3]
        p = softmax(x)
        z = sum(p)
    """)
    e = failure(prog.run, "z", x=np.array([np.inf, 0.0, -np.inf]))
    assert (e.direction, e.op) == ("input", "x")  # an input that holds Inf is reported as such


def test_a_nan_inside_a_loop_iteration():
    prog = program("""
        input x: f64[3]
        h = x
        for t in 0..4 {
          h = h - 1
          h = sqrt(h)
        }
        z = sum(h)
    """)
    e = failure(prog.run, "z", x=np.array([10.0, 10.0, 1.5]))
    assert (e.op, e.diagnostic.span.line, e.count.nan) == ("sqrt", 5, 1)


# ---------------------------------------------------------------- inputs and params
def test_a_nan_in_an_input_is_reported_at_its_declaration():
    prog = program("""
        input a: f64[2]
        input x: f64[3]
        z = sum(x) + sum(a)
    """)
    e = failure(prog.run, "z", a=np.ones(2), x=np.array([1.0, np.nan, 3.0]))
    d = e.diagnostic
    assert (d.span.line, d.span.column) == (2, 1)
    assert (e.direction, e.op, e.count.nan, e.count.size) == ("input", "x", 1, 3)
    assert d.message == "NaN in input `x`: f64[3] in [1, 3] with 1 NaN (of 3 values)"


def test_a_nan_param_is_reported_at_its_declaration():
    prog = program("""
        input x: f64[2]
        param w: f64[2] = 1
        z = sum(x * w)
    """)
    prog.set_params({"w": np.array([np.inf, 1.0])})
    e = failure(prog.grad, "z", x=np.ones(2))
    assert (e.direction, e.op, e.diagnostic.span.line, e.count.inf) == ("param", "w", 2, 1)
    assert e.diagnostic.message == "Inf in param `w`: f64[2] in [1, 1] with 1 Inf (of 2 values)"


# ---------------------------------------------------------------- the backward pass
SQRT = """
input x: f64[4]
r = sqrt(x)
z = sum(r)
"""


def test_an_infinite_derivative_only_appears_in_the_backward_pass():
    prog = program(SQRT)
    x = np.array([0.0, 1.0, 4.0, 9.0])
    assert prog.run("z", x=x) == 6.0  # the forward pass is fine
    e = failure(prog.grad, "z", wrt=["x"], x=x)
    d = e.diagnostic
    assert (d.span.line, d.span.column) == (2, 5)
    assert (e.direction, e.op, e.count.inf, e.count.nan, e.count.size) == ("backward", "sqrt", 1, 0, 4)
    assert d.message.startswith("Inf in the backward pass: the derivative of `sqrt` gave v0 (`x`) an adjoint "
                                "with 1 Inf (of 4 values); incoming adjoint: f64[4] in [1, 1]; "
                                "operand v0 (`x`): f64[4] in [0, 9]")
    assert failure(prog.vjp, "z", None, ["x"], x=x).op == "sqrt"  # vjp and value_and_grad too
    assert failure(prog.value_and_grad, "z", ["x"], {"x": x}).direction == "backward"


def test_forward_mode_reports_a_nan_tangent():
    prog = program(SQRT)
    e = failure(prog.grad, "z", wrt=["x"], mode="forward", x=np.array([0.0, 1.0, 4.0, 9.0]))
    assert (e.direction, e.op, e.diagnostic.span.line, e.count.part) == ("forward", "sqrt", 2, "tangent")
    assert "in its tangent" in e.diagnostic.message


def test_without_detection_nan_is_a_value_like_any_other():
    prog = program(SQRT, detect=False)
    g = prog.grad("z", wrt=["x"], x=np.array([0.0, 1.0, 4.0, 9.0]))["x"]
    assert np.isinf(g[0]) and g[1] == 0.5
    assert np.isnan(program(LOG, detect=False).run("w", x=X8))


def test_off_costs_no_check(monkeypatch):
    def boom(value):
        raise AssertionError("checked while detection is off")
    monkeypatch.setattr(anomaly, "nonfinite", boom)
    prog = program(SQRT, detect=False)
    assert prog.detect_anomaly is False
    prog.grad("z", wrt=["x"], x=np.array([1.0, 1.0, 4.0, 9.0]))
    prog.run("z", x=np.ones(4))


def test_the_attribute_defaults_to_off_and_is_honoured_by_each_evaluation():
    prog = wengert.compile(textwrap.dedent(LOG).lstrip("\n"), path="t.dl")
    assert prog.detect_anomaly is False
    assert np.isnan(prog.run("w", x=X8))
    prog.detect_anomaly = True
    assert failure(prog.run, "w", x=X8).op == "log"
    assert failure(prog.trace, "w", x=X8).op == "log"
    prog.detect_anomaly = False
    assert np.isnan(prog.run("w", x=X8))


# ---------------------------------------------------------------- the CLI
@pytest.fixture
def dl(tmp_path):
    def write(text: str, name: str = "t.dl"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return str(path)
    return write


def test_cli_run_detect_anomaly(dl):
    path = dl(LOG)
    x = "x=[1, -1, 2, -0.5, 2.5, -1, 0.5, 1]"
    result = CliRunner().invoke(main, ["run", path, "--eval", "z", "-i", x, "--detect-anomaly"])
    assert result.exit_code == 2, result.output
    assert f"{path}:3:9: error: NaN in the forward pass: `log` produced 3 NaN (of 8 values)" in result.output
    assert "    z = sum(log(y))\n            ^^^^^^" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["run", path, "--eval", "z", "-i", x])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "z = nan"


def test_cli_grad_detect_anomaly_in_the_backward_pass(dl):
    path = dl(SQRT)
    args = ["grad", path, "--of", "z", "--wrt", "x", "-i", "x=[0.0, 1.0, 4.0, 9.0]"]
    result = CliRunner().invoke(main, args + ["--detect-anomaly"])
    assert result.exit_code == 2, result.output
    assert f"{path}:2:5: error: Inf in the backward pass: the derivative of `sqrt`" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "inf" in result.output


BLOW_UP = """
seed 0
input x: f64[batch, 3]
input y: f64[batch]
param w: f64[3] = normal(0, 1)
pred = sum(x * w, axis=-1)
loss = mean((pred - y) ** 2)
data tr = random_regression(examples=64, features=3, seed=1)
train {
  data = tr
  minimize = loss
  optimizer = sgd(lr=LR)
  epochs = 20
  batch = 16
}
"""


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_cli_train_detect_anomaly_stops_at_the_first_inf_loss(dl, tmp_path):
    path = dl(BLOW_UP.replace("LR", "1e6"))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["train", path, "--out", str(out), "--detect-anomaly"])
    assert result.exit_code == 2, result.output
    assert f"{path}:6:13: error: Inf in the forward pass: `pow` produced 16 Inf (of 16 values)" in result.output
    assert f"{path}: note: training stopped at step 2 of epoch 7 (optimizer step 26)" in result.output
    assert "Traceback" not in result.output
    assert (out / "history.csv").exists()  # the last complete epoch is kept
    result = CliRunner().invoke(main, ["train", path, "--out", str(tmp_path / "out2")])
    assert result.exit_code == 0 and "loss nan" in result.output  # without the flag it trains on to NaN


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # numpy's, from the update p - lr * g
def test_api_train_reports_an_optimizer_step_that_overflows_a_param():
    prog = program(BLOW_UP.replace("LR", "1e308"))  # lr * g overflows: the gradient is finite, the param not
    e = failure(prog.train)
    d = e.diagnostic
    assert (e.direction, e.op, d.span.line, d.span.column) == ("optimizer", "sgd", 4, 1)
    assert (e.count.inf, e.count.nan, e.count.size) == (2, 0, 3)
    assert d.message.startswith("Inf in the optimizer step: `sgd` (lr 1e+308) left param `w` f64[3] in ")
    assert d.message.endswith("with 2 Inf (of 3 values); its gradient: f64[3] in [-2.51372, 4.05504]")
    assert d.notes[0][1] == "training stopped at step 1 of epoch 1 (optimizer step 1)"

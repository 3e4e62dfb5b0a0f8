"""Smaller things a new user ran into (issue 17): train --epochs 0 --plot, early stopping's final
line, gradcheck's choice and naming of inputs, wording, compare without a validation set,
trace --range B <= A."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert import GradCheckError, check_grads
from wengert.cli import main
from wengert.runtime.gradcheck import differentiable_roots

MOONS = """\
seed 0
input x: f64[batch, 2]
input y: f64[batch, 2]
probs = x |> Dense(8) |> tanh |> Dense(2) |> softmax
loss = mean(categorical_crossentropy(clip(probs, 1e-7, 1 - 1e-7), y))
data (train, valid) = moons(examples=200, noise=0.1, seed=0) |> onehot(y, 2) |> split(0.8)
train {
  data = train
  valid = valid
  minimize = loss
  optimizer = adam(lr=0.05)
  epochs = 3
  batch = 32
  metrics = [accuracy(probs, y)]
}
"""


def _program(tmp_path, text=MOONS):
    path = tmp_path / "p.dl"
    path.write_text(text)
    return path


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_epochs_0_with_plot_draws_what_it_can(tmp_path):
    pytest.importorskip("matplotlib")
    r = cli("train", _program(tmp_path), "--epochs", "0", "--plot", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    assert "no epochs ran, so there are no learning curves to plot" in r.output
    assert not (tmp_path / "run" / "curves.png").exists()
    assert (tmp_path / "run" / "boundary.png").exists()


def test_early_stopping_final_line_gives_the_restored_epoch(tmp_path):
    # adam with lr 1 is best after epoch 3 (valid_loss 0.5003) and worse after 4 and 5
    text = MOONS.replace("adam(lr=0.05)", "adam(lr=1.0)").replace("epochs = 3", "epochs = 12\n"
                                                                  "  early_stopping = early_stopping(patience=2)")
    r = cli("train", _program(tmp_path, text), "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    stop = next(line for line in lines if line.startswith("early stopping after epoch"))
    best = int(stop.rsplit(" ", 1)[1])
    epoch_line = next(line for line in lines if line.startswith(f"epoch {best}/"))
    final = next(line for line in lines if line.startswith("final:"))
    last_line = [line for line in lines if line.startswith("epoch ")][-1]
    valid_loss = epoch_line.split("valid_loss ")[1].split()[0]
    assert f"valid_loss {valid_loss}" in final and f"(epoch {best}, restored)" in final
    assert last_line != epoch_line and last_line.split("valid_loss ")[1].split()[0] != valid_loss
    prog = wengert.load(tmp_path / "p.dl", params=tmp_path / "run" / "params.npz")
    from wengert.train import data
    valid = data.load(prog.module.data["valid"])["valid"]
    loss = prog.run("loss", x=valid.columns["x"], y=valid.columns["y"])
    assert f"{loss:.4f}" == valid_loss  # the figures printed are those of the params saved


def test_one_step_and_a_finished_checkpoint_are_worded_plainly(tmp_path):
    text = MOONS.replace("batch = 32", "batch = 160").replace("epochs = 3", "epochs = 1")
    r = cli("train", _program(tmp_path, text), "--out", tmp_path / "run")
    assert "training on 160 examples, 1 step per epoch" in r.output
    r = cli("train", _program(tmp_path, text), "--out", tmp_path / "run", "--resume")
    assert r.exit_code == 0, r.output
    assert "the checkpoint is at epoch 1 of 1: nothing left to train" in r.output
    assert "2/1" not in r.output


def test_compare_without_a_validation_set_prints_a_dash(tmp_path):
    pytest.importorskip("matplotlib")
    text = MOONS.replace("train {", "train a {").replace("  valid = valid\n", "") + \
        "train b {\n  data = train\n  minimize = loss\n  optimizer = sgd(lr=0.1)\n  epochs = 1\n}\n"
    r = cli("compare", _program(tmp_path, text), "--epochs", "1", "--out", tmp_path / "cmp")
    assert r.exit_code == 0, r.output
    assert "nan" not in r.output
    row = next(line for line in r.output.splitlines() if line.startswith("│ b "))
    assert [cell.strip() for cell in row.strip("│").split("│")][2:] == ["-", "-"]


def test_comparison_colours_are_distinct():
    plt = pytest.importorskip("matplotlib.pyplot")
    from wengert.plot import distinct_colours
    for n in (3, 12, 25):
        colours = [tuple(c) for c in distinct_colours(plt, n)]
        assert len(set(colours)) == n


def test_trace_range_with_b_not_after_a_is_an_error(tmp_path):
    path = _program(tmp_path, "input x: f64[]\nf = x * x + 1\n")
    r = cli("trace", path, "--of", "f", "-i", "x=2", "--range", "5..2")
    assert r.exit_code == 2 and "--range 5..2: B must be larger than A" in r.output
    r = cli("trace", path, "--of", "f", "-i", "x=2", "--range", "40..")
    assert r.exit_code == 2 and "the list has" in r.output and "entries" in r.output


MASKED = "input x: f64[n]\ninput m: f64[n]\nf = sum(where(m > 0.5, x ** 2, 0)) + sum(sin(x))\n"


def test_gradcheck_skips_an_input_used_only_in_comparisons():
    prog = wengert.compile(MASKED)
    reach = differentiable_roots(prog.module, prog._var("f"))
    assert prog.module.inputs["x"].var.id in reach and prog.module.inputs["m"].var.id not in reach
    # m sits at the threshold: perturbing it would cross 0.5 and the differences would blow up
    check_grads(prog, "f", x=np.array([1.0, -2.0, 0.5]), m=np.array([0.5 + 1e-4, 0.5 - 1e-4, 1.0]))
    with pytest.raises(GradCheckError):  # naming m explicitly still checks it, and fails
        check_grads(prog, "f", wrt=["x", "m"], order=1, x=np.array([1.0, -2.0, 0.5]),
                    m=np.array([0.5 + 1e-4, 0.5 - 1e-4, 1.0]))


def test_gradcheck_names_the_input_whose_derivative_is_wrong(monkeypatch):
    from wengert.runtime import ops
    from wengert.runtime.primitives import REGISTRY
    prim = REGISTRY["sin"]  # a wrong derivative: 2 cos(x)
    monkeypatch.setattr(prim, "jvp", lambda primals, tangents, out, **_: None if tangents[0] is None
                        else tangents[0] * 2 * np.cos(primals[0]))
    monkeypatch.setattr(prim, "vjp", lambda g, out, x, **_: (ops.mul(g, ops.mul(ops.const_like(2.0, x),
                                                                              ops.bind("cos", x))),))
    prog = wengert.compile("input x: f64[n]\ninput y: f64[n]\nf = sum(sin(x)) + sum(y ** 3)\n")
    with pytest.raises(GradCheckError) as info:
        check_grads(prog, "f", order=1, x=np.array([0.3, 1.0]), y=np.array([0.5, 2.0]))
    assert str(info.value).startswith("JVP of `f` along a random direction: mismatch")
    assert str(info.value).endswith("(w.r.t. `x`)")

"""Training runs: the loop, history, metrics, early stopping, checkpoints and resume, the CLI."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert.cli import main
from wengert.train.loop import Trainer

MODELS = Path(__file__).resolve().parent.parent / "models"

MOONS = """
seed 1
input x: f64[batch, 2]
input y: f64[batch, 2]
h      = Dense(x, 64) |> tanh |> Dropout(0.1)
logits = Dense(h, 2)
probs  = softmax(logits)
loss   = mean(softmax_crossentropy(logits, y))
data (tr, va) = moons(examples=600, noise=0.15, seed=3) |> onehot(y, 2) |> split(0.8)
train {
  data = tr
  valid = va
  minimize = loss
  optimizer = adam(lr=0.02)
  epochs = 4
  batch = 32
  gradient_noise = 0.01
  metrics = [accuracy(probs, y), accuracy(probs, y)]
}
train slow {
  data = tr
  valid = va
  minimize = loss
  optimizer = sgd(lr=0.5)
  epochs = 3
  batch = all
  schedule = step(every=1, factor=0.5)
  clip_norm = 1.0
}
"""


def test_history_has_the_documented_keys():
    prog = wengert.compile(MOONS)
    history = prog.train()
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    for row in history:
        for key in ("loss", "valid_loss", "accuracy", "accuracy_2", "valid_accuracy", "valid_accuracy_2"):
            assert key in row and np.isfinite(row[key])
        assert row["accuracy"] == row["accuracy_2"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["valid_accuracy"] > 0.8


def test_training_changes_the_params_in_place():
    prog = wengert.compile(MOONS)
    before = prog.params
    prog.train(epochs=1)
    after = prog.params
    assert any(not np.array_equal(before[k], after[k]) for k in before)


def test_schedule_halves_the_learning_rate_each_epoch():
    prog = wengert.compile(MOONS)
    history = prog.train("slow")
    assert [row["lr"] for row in history] == [0.5, 0.25, 0.125]


def test_same_seed_same_run_bit_for_bit():
    a, b = wengert.compile(MOONS), wengert.compile(MOONS)
    a.train(epochs=2)
    b.train(epochs=2)
    for k, v in a.params.items():
        assert np.array_equal(v, b.params[k]), k


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    whole = wengert.compile(MOONS)
    Trainer(whole, None, {"epochs": 4}, out_dir=tmp_path / "whole").run()

    first = wengert.compile(MOONS)
    Trainer(first, None, {"epochs": 2}, out_dir=tmp_path / "part").run()
    second = wengert.compile(MOONS)  # a fresh process would start like this
    trainer = Trainer(second, None, {"epochs": 4}, out_dir=tmp_path / "part")
    history = trainer.run(resume_from=tmp_path / "part" / "checkpoint.npz")
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    for k, v in whole.params.items():
        assert np.array_equal(v, second.params[k]), k


def test_interrupt_keeps_the_last_epoch_and_resume_finishes_the_same(tmp_path):
    whole = wengert.compile(MOONS)
    Trainer(whole, None, {"epochs": 3}, out_dir=tmp_path / "whole").run()

    def interrupt(event, **info):
        if event == "step" and info["epoch"] == 2 and info["step"] == 3:
            raise KeyboardInterrupt

    broken = wengert.compile(MOONS)
    with pytest.raises(KeyboardInterrupt):
        Trainer(broken, None, {"epochs": 3}, out_dir=tmp_path / "run", report=interrupt).run()
    resumed = wengert.compile(MOONS)
    Trainer(resumed, None, {"epochs": 3}, out_dir=tmp_path / "run").run(resume_from=tmp_path / "run" / "checkpoint.npz")
    for k, v in whole.params.items():
        assert np.array_equal(v, resumed.params[k]), k


def test_a_corrupt_checkpoint_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(b"PK\x03\x04 this is not a zip file")
    prog = wengert.compile(MOONS)
    with pytest.raises(wengert.DiagnosticError, match="corrupt"):
        Trainer(prog, None, {"epochs": 1}, out_dir=tmp_path).run(resume_from=path)
    assert path.read_bytes() == b"PK\x03\x04 this is not a zip file"


def test_a_checkpoint_of_another_program_is_refused(tmp_path):
    Trainer(wengert.compile(MOONS), None, {"epochs": 1}, out_dir=tmp_path).run()
    other = wengert.compile(MOONS.replace("Dense(x, 64)", "Dense(x, 32)"))
    before = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(wengert.DiagnosticError, match="another program"):
        Trainer(other, None, {"epochs": 2}, out_dir=tmp_path).run(resume_from=tmp_path / "checkpoint.npz")
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_early_stopping_restores_the_best_params():
    src = MOONS.replace("epochs = 4", "epochs = 30\n  early_stopping = early_stopping(patience=2)").replace(
        "adam(lr=0.02)", "sgd(lr=3.0, momentum=0.9)")
    prog = wengert.compile(src)
    history = prog.train()
    assert len(history) < 30  # it stopped
    best = min(row["valid_loss"] for row in history)
    trainer = Trainer(prog, None)
    assert trainer.evaluate(trainer.datasets["va"])["loss"] == pytest.approx(best, rel=1e-12)


def test_updates_run_after_each_step():
    src = """
    input x: f64[batch, 3]
    input y: f64[batch]
    param w: f64[3] = 0
    state steps: f64 = 0
    loss = mean((x @ w - y) ** 2)
    update steps = steps + 1
    data d = random_regression(examples=64, features=3, seed=0)
    train { data = d; minimize = loss; optimizer = sgd(lr=0.1); epochs = 2; batch = 16 }
    """
    prog = wengert.compile(src)
    prog.train()
    assert prog.params["steps"] == 8.0


def test_cli_train_writes_history_and_params_and_eval_reads_them(tmp_path):
    program = tmp_path / "moons.dl"
    program.write_text(MOONS)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["train", str(program), "--epochs", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "epoch 2/2" in result.output and "valid_accuracy" in result.output
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and "valid_loss" in rows[0]
    with np.load(out / "params.npz") as saved:
        assert "Dense_1.W" in saved.files and saved["Dense_1.W"].shape == (2, 64)
    result = CliRunner().invoke(main, ["eval", str(program), "--params", str(out / "params.npz")])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "va, 120 examples" in result.output


def test_cli_resume(tmp_path):
    program = tmp_path / "moons.dl"
    program.write_text(MOONS)
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["train", str(program), "--epochs", "1", "--out", str(out)]).exit_code == 0
    result = CliRunner().invoke(main, ["train", str(program), "--epochs", "2", "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 1, at epoch 2/2" in result.output


def test_cli_unknown_train_block_is_a_clean_error(tmp_path):
    program = tmp_path / "moons.dl"
    program.write_text(MOONS)
    result = CliRunner().invoke(main, ["train", str(program), "--train", "slwo"])
    assert result.exit_code == 2 and "did you mean `slow`" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_moons_network_reaches_97_percent_with_adam():
    prog = wengert.load(MODELS / "moons.dl")
    history = prog.train()
    assert history[-1]["valid_accuracy"] >= 0.97



TWO_BLOCKS = """
seed 0
input x: f64[batch, 2]
input y: f64[batch, 2]
logits = Dense(x, 2)
loss = mean(softmax_crossentropy(logits, y))
data (tr, va) = moons(examples=200, noise=0.1, seed=0) |> onehot(y, 2) |> split(0.75)
train plain { data = tr; valid = va; minimize = loss; optimizer = sgd(lr=0.1); epochs = 2; batch = 50 }
train fast { data = tr; valid = va; minimize = loss; optimizer = adam(lr=0.05); epochs = 2; batch = 50 }
"""


def test_cli_compare_trains_every_named_block_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    program = tmp_path / "two.dl"
    program.write_text(TWO_BLOCKS)
    result = CliRunner().invoke(main, ["compare", str(program), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert "plain" in result.output and "fast" in result.output
    assert (tmp_path / "cmp" / "comparison.png").stat().st_size > 10_000
    for block in ("plain", "fast"):
        assert (tmp_path / "cmp" / block / "history.csv").exists()


def test_cli_plot_writes_curves_and_the_decision_boundary(tmp_path):
    pytest.importorskip("matplotlib")
    program = tmp_path / "two.dl"
    program.write_text(TWO_BLOCKS)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["train", str(program), "--train", "fast", "--out", str(out), "--plot"])
    assert result.exit_code == 0, result.output
    assert (out / "curves.png").stat().st_size > 10_000 and (out / "boundary.png").stat().st_size > 10_000

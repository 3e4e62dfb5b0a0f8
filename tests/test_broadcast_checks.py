"""The checker's promise for broadcasting (issue 16): a symbolic dim is never bound to a literal size by
broadcasting, outer-product broadcasts are `outer-broadcast` warnings (silenced per line, errors with
--strict or `strict = true`), binary accuracy, and the train block's documented forms."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import errors, lower, where
from wengert.cli import main, summary
from wengert.program import compile as compile_program

ROOT = Path(__file__).resolve().parent.parent


def warnings_of(module) -> list:
    return [d for d in module.notes if d.severity == "warning"]


# ---------------------------------------------------------------- the three mistakes of the issue
REGRESSION_ON_PROBABILITIES = """
input x: f32[batch, 4]
input y: f32[batch]
param W: f32[4, 3] = glorot()
p = softmax(x @ W)
loss = mean(squared_error(p, y))
"""


def test_a_target_of_the_wrong_rank_is_an_error_at_the_loss_naming_both_types_and_the_dim():
    (e,) = errors(REGRESSION_ON_PROBABILITIES)
    assert where(e) == (5, 13)
    assert "f32[batch, 3] and f32[batch]" in e.message
    assert "`batch` with 3" in e.message
    assert "did you mean `input y: f32[batch, 3]`?" in e.message


@pytest.mark.parametrize("loss", [
    "mean((p - y) ** 2)",
    "mean(sum(y * log(p), axis=-1))",
    "mean(where(y > 0.5, p, 1 - p))",
    "mean(categorical_crossentropy(p, y))",
])
def test_the_same_mistake_written_differently_is_reported_at_its_line(loss):
    text = REGRESSION_ON_PROBABILITIES.replace("mean(squared_error(p, y))", loss)
    errs = errors(text)
    assert {where(e)[0] for e in errs} == {5}
    assert all("`batch` with 3" in e.message for e in errs)


def test_dense_on_a_feature_map_without_flatten_is_an_error_with_a_flatten_hint():
    (e,) = errors("""
        input x: f32[batch, 28, 28, 1]
        input y: f32[batch, 10]
        logits = x |> Conv2D(10, 3) |> relu |> MaxPooling2D(2) |> Dense(10)
        loss = mean(categorical_crossentropy(softmax(logits), y))
    """)
    assert where(e) == (4, 13)
    assert "f32[batch, 13, 13, 10]" in e.message and "`batch` with 13" in e.message and "Flatten" in e.message


def test_a_literal_against_a_symbol_in_user_code_names_the_operands():
    (e,) = errors("input x: f64[batch, 4]\nc = x + ones([5, 4])\n")
    assert where(e) == (2, 5)
    assert "f64[batch, 4]" in e.message and "`batch` with 5" in e.message and "reshape" in e.message


def test_broadcasting_against_one_and_unifying_symbols_still_work():
    m = lower("input x: f64[batch, 4]\ninput y: f64[n, 1]\nz = x + y\nw = x * ones([1, 4])\n")
    assert str(m.type_of(m.values["z"])) == "f64[batch, 4]"
    assert not warnings_of(m)


def test_the_summary_line_shows_an_input_as_declared():
    m = lower("input x: f32[batch, n]\nparam W: f32[4, 3] = glorot()\np = x @ W\n")
    line = summary(m)
    assert "x: f32[batch, n=4]" in line and "x: f32[batch, 4]" not in line


# ---------------------------------------------------------------- outer products are warnings
OUTER = """
input x: f32[batch, 4]
input y: f32[batch]
param W: f32[4, 1] = glorot()
p = sigmoid(x @ W)
loss = mean(binary_crossentropy(p, y))
"""


def test_an_outer_product_broadcast_is_a_warning_with_a_stable_code():
    m = lower(OUTER)
    (w,) = warnings_of(m)
    assert where(w) == (5, 13) and w.code == "outer-broadcast"
    assert "f32[batch] and f32[batch, 1] gives f32[batch, batch]" in w.message
    assert w.render().splitlines()[0].startswith("t.dl:5:13: warning: ") and "[outer-broadcast]" in w.render()


@pytest.mark.parametrize("expression", ["(p - y) ** 2", "maximum(p, y)", "where(p > 0.5, y, p)"])
def test_outer_broadcasts_in_user_code_are_warned_at_their_line(expression):
    m = lower(OUTER + f"other = mean({expression})\n")
    assert [where(w)[0] for w in warnings_of(m)] == [5, 6]


def test_broadcasts_that_do_not_pair_a_symbol_with_itself_are_silent():
    m = lower("input x: f32[batch, 4]\ninput v: f32[4]\ninput y: f32[batch]\n"
              "a = x - v\nb = x * reshape(y, [dim(y, 0), 1])\nc = sum(a * b)\n")
    assert not warnings_of(m)


def test_a_comment_silences_the_warning_on_its_line_only():
    text = OUTER.replace("(p, y))", "(p, y))  # wengert: ignore[outer-broadcast]") + "l2 = mean((p - y) ** 2)\n"
    assert [where(w)[0] for w in warnings_of(lower(text))] == [6]
    other_code = OUTER.replace("(p, y))", "(p, y))  # wengert: ignore[something-else]")
    assert len(warnings_of(lower(other_code))) == 1


def test_strict_in_a_train_block_makes_warnings_errors():
    text = OUTER + textwrap.dedent("""
        data d = random_classification(examples=20, features=4, seed=0)
        train {
          data = d
          minimize = loss
          strict = true
        }
    """)
    (e,) = errors(text)
    assert where(e) == (5, 13) and e.code == "outer-broadcast"


def _write(tmp_path, text: str, name: str = "prog.dl") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def test_check_run_and_train_print_the_warning_and_strict_fails(tmp_path):
    path = _write(tmp_path, OUTER + "data d = random_classification(examples=20, features=4, seed=0)\n"
                  "train {\n  data = d\n  minimize = loss\n  epochs = 1\n}\n")
    runner = CliRunner()
    checked = runner.invoke(main, ["check", path])
    assert checked.exit_code == 0 and "5:13: warning:" in checked.stderr and ": ok;" in checked.stdout
    strict = runner.invoke(main, ["check", "--strict", path])
    assert strict.exit_code == 2 and "5:13: error:" in strict.stderr
    ran = runner.invoke(main, ["run", path, "--eval", "loss", "-i", "x=[[1,2,3,4]]", "-i", "y=[1]"])
    assert ran.exit_code == 0, ran.output
    assert "warning:" in ran.stderr and "loss = " in ran.stdout
    assert runner.invoke(main, ["run", "--strict", path, "--eval", "loss", "-i", "x=[[1,2,3,4]]",
                                "-i", "y=[1]"]).exit_code == 2
    trained = runner.invoke(main, ["train", path, "--out", str(tmp_path / "run")])
    assert trained.exit_code == 0, trained.output
    assert "warning:" in trained.stderr
    assert runner.invoke(main, ["train", "--strict", path, "--out", str(tmp_path / "run2")]).exit_code == 2


def test_every_program_in_models_and_bench_checks_without_a_warning():
    from wengert.dsl.lower import check_file
    files = sorted((ROOT / "models").rglob("*.dl")) + sorted((ROOT / "bench").rglob("*.dl"))
    assert len(files) > 20
    for f in files:
        assert not warnings_of(check_file(f)), f


# ---------------------------------------------------------------- accuracy of one column
def test_accuracy_of_a_single_column_is_binary_accuracy():
    prog = compile_program("""
input p: f64[batch, 1]
input y: f64[batch]
input y2: f64[batch, 1]
a = accuracy(p, y)
b = accuracy(p, y2)
""")
    p = np.array([[0.9], [0.2], [0.6], [0.4]])
    y = np.array([1.0, 0.0, 0.0, 0.0])
    out = prog.run(["a", "b"], p=p, y=y, y2=y[:, None])
    assert out["a"] == pytest.approx(0.75) and out["b"] == pytest.approx(0.75)


# ---------------------------------------------------------------- the train block as documented
TRAIN = OUTER.replace("(p, y))", "(reshape(p, [dim(p, 0)]), y))") + """
data d = random_classification(examples=20, features=4, seed=0)
train {
  data = d
  minimize = loss
  epochs = 2
  ENTRY
}
"""


def test_early_stopping_written_as_in_the_reference_parses():
    m = lower(TRAIN.replace("ENTRY", "early_stopping(patience=3, min_delta=0.01)"))
    assert m.trains[None].config["early_stopping"] == ("early_stopping", {"patience": 3, "min_delta": 0.01})
    same = lower(TRAIN.replace("ENTRY", "early_stopping = early_stopping(patience=3, min_delta=0.01)"))
    assert same.trains[None].config["early_stopping"] == m.trains[None].config["early_stopping"]


def test_early_stopping_with_an_unknown_keyword_is_an_error():
    (e,) = errors(TRAIN.replace("ENTRY", "early_stopping(patience=3, min_delt=0.01)"))
    assert "min_delt" in e.message


def test_steps_with_epochs_is_an_error():
    (e,) = errors(TRAIN.replace("ENTRY", "steps = 10"))
    assert where(e)[0] == 12 and "`steps` and `epochs`" in e.message

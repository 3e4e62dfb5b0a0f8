"""`wengert export`: the inference graph lowered to ONNX, checked by onnx.checker and run by
onnxruntime, gives the program's values (f32 to 1e-5) for batch sizes other than any used before."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert.cli import main
from wengert.export import OPSET, ExportError, export

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _lang_ids(rng, n):
    lengths = rng.integers(1, 13, size=(n, 1))
    return np.where(np.arange(12) < lengths, rng.integers(1, 53, size=(n, 12)), 0).astype(np.int64)


BOOK = {  # program, value, its input, rows of the input
    "moons MLP": ("models/moons.dl", "y_hat", "x", lambda rng, n: rng.normal(size=(n, 2))),
    "listing 7-7 CNN": ("models/ch07/listing_7_07.dl", "probs", "x",
                        lambda rng, n: rng.random((n, 28, 28)).astype(np.float32)),
    "language-identification LSTM": ("models/ch07/langid_lstm.dl", "probs", "x", _lang_ids),
}


def _perturbed(prog, rng) -> None:
    """Params unlike the initial ones (zero biases would hide a wrong broadcast)."""
    prog.set_params({n: v + rng.normal(scale=0.05, size=v.shape).astype(v.dtype)
                     for n, v in prog.params.items() if v.dtype.kind == "f"})


@pytest.mark.parametrize("model", list(BOOK))
def test_book_models_round_trip_through_onnxruntime(model, tmp_path):
    path, name, input_name, rows = BOOK[model]
    rng = np.random.default_rng(0)
    prog = wengert.load(path)
    _perturbed(prog, rng)
    prog.save_params(tmp_path / "params.npz")
    out = tmp_path / "model.onnx"
    r = CliRunner().invoke(main, ["export", path, "--params", str(tmp_path / "params.npz"), "--of", name,
                                  "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert f"(ONNX opset {OPSET}; inputs {input_name}: " in r.output
    model_proto = onnx.load(str(out))
    onnx.checker.check_model(model_proto, full_check=True)
    assert model_proto.opset_import[0].version == OPSET
    (graph_input,) = model_proto.graph.input
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {t.name for t in model_proto.graph.initializer} >= set(prog.module.params)  # params as initializers
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (3, 17):  # the model never saw a batch size: both are new to it
        x = rows(rng, batch)
        (got,) = session.run(None, {input_name: x})
        expected = prog.run(name, **{input_name: x})
        assert got.shape == expected.shape == (batch,) + expected.shape[1:]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 if expected.dtype == np.float32 else 1e-12)


def test_the_lstm_mask_matters_in_the_exported_model(tmp_path):
    """Padding after a word's last character is skipped: the same word padded differently
    gives the same probabilities, in the program and in onnxruntime."""
    prog = wengert.load("models/ch07/langid_lstm.dl")
    _perturbed(prog, np.random.default_rng(1))
    session = ort.InferenceSession(export(prog, ["probs"]).SerializeToString(), providers=["CPUExecutionProvider"])
    word = np.zeros((2, 12), dtype=np.int64)
    word[:, :4] = [5, 9, 2, 30]
    unmasked = word.copy()
    unmasked[1, 4:] = 7  # not padding: the LSTM reads these
    (got,) = session.run(None, {"x": np.concatenate([word, unmasked])})
    np.testing.assert_allclose(got[0], got[1], rtol=1e-6)
    assert np.abs(got[0] - got[3]).max() > 1e-4
    np.testing.assert_allclose(got, prog.run("probs", x=np.concatenate([word, unmasked])), rtol=1e-5, atol=1e-6)


LAYERS = """\
seed 0
input x: f32[batch, 9, 9, 3]
input ids: i64[batch, 5]
input v: f64[n, 3]
a = x |> Conv2D(4, 3, stride=2, padding="same") |> BatchNorm |> elu |> AveragePooling2D(2) |> Flatten
      |> Dense(3) |> log_softmax
b = ids |> Embedding(10, 4) |> Bidirectional(3, mask=ids != 0)
c = softplus(v) % 0.7 + sum(v ** 2, axis=1, keepdims=true) - max(v)
e = argmax(v, axis=1)
noisy = v + normal([dim(v, 0), 3])
"""


@pytest.mark.parametrize("name, inputs", [("a", ["x"]), ("b", ["ids"]), ("c", ["v"]), ("e", ["v"])])
def test_more_layers_lower_to_onnx(tmp_path, name, inputs):
    program = tmp_path / "layers.dl"
    program.write_text(LAYERS)
    prog = wengert.load(program)
    rng = np.random.default_rng(0)
    _perturbed(prog, rng)  # BatchNorm's running statistics too: the model must use them
    prog.set_params({"BatchNorm_1.running_var": rng.random(4) + 0.5})
    feeds = {"x": rng.normal(size=(5, 9, 9, 3)).astype(np.float32), "v": rng.normal(size=(4, 3)),
             "ids": np.where(np.arange(5) < rng.integers(1, 6, size=(5, 1)), rng.integers(1, 10, size=(5, 5)), 0)}
    session = ort.InferenceSession(export(prog, [name]).SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {k: feeds[k] for k in inputs})
    np.testing.assert_allclose(got, prog.run(name, **{k: feeds[k] for k in inputs}), rtol=1e-5, atol=1e-6)


def test_a_primitive_without_an_onnx_form_is_an_error_at_its_line(tmp_path):
    program = tmp_path / "layers.dl"
    program.write_text(LAYERS)
    prog = wengert.load(program)
    prog.save_params(tmp_path / "p.npz")
    with pytest.raises(ExportError) as info:
        export(prog, ["noisy"])
    assert info.value.diagnostics[0].render().startswith(
        f"{program}:10:13: error: `random_normal` has no ONNX form (it draws random numbers), so `noisy` cannot "
        "be exported")
    r = CliRunner().invoke(main, ["export", str(program), "--params", str(tmp_path / "p.npz"), "--of", "noisy",
                                  "-o", str(tmp_path / "m.onnx")])
    assert r.exit_code == 2 and "`random_normal` has no ONNX form" in r.output
    assert not (tmp_path / "m.onnx").exists()


def test_a_condition_known_only_at_run_time_is_refused(tmp_path):
    program = tmp_path / "cond.dl"
    program.write_text("input x: f64[n]\ny = if sum(x) > 0 then x else -x\n")
    with pytest.raises(ExportError) as info:
        export(wengert.load(program), ["y"])
    assert "this `if` decides on a value known only at run time" in info.value.diagnostics[0].render()
    assert ":2:5:" in info.value.diagnostics[0].render()

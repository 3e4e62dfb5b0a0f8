"""Params in and out: `Program.load_params`/`save_params`, `wengert.load(path, params=...)`, and
`--params P.npz` on every command that evaluates a program (run, grad, trace, gradcheck, graph,
report, inspect, eval, predict)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import wengert
from wengert.cli import main
from wengert.train.params import ParamsError

PROGRAM = """\
seed 0
input x: f64[batch, 2]
input y: f64[batch, 2]
probs = x |> Dense(8) |> tanh |> Dropout(0.1) |> Dense(2) |> softmax
loss = mean(categorical_crossentropy(clip(probs, 1e-7, 1 - 1e-7), y))
data (train, valid) = moons(examples=400, noise=0.1, seed=0) |> onehot(y, 2) |> split(0.8)
train {
  data = train
  valid = valid
  minimize = loss
  optimizer = adam(lr=0.02)
  epochs = 3
  batch = 32
  metrics = [accuracy(probs, y)]
}
"""
X = [[0.5, -0.25], [1.5, 0.5], [-1.0, 0.75]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(program file, run directory) after `wengert train`."""
    root = tmp_path_factory.mktemp("params")
    program = root / "mlp.dl"
    program.write_text(PROGRAM)
    result = CliRunner().invoke(main, ["train", str(program), "--out", str(root / "run")])
    assert result.exit_code == 0, result.output
    return program, root / "run"


def test_load_params_gives_the_trained_values_and_a_fresh_program_differs(trained):
    program, run = trained
    fresh = wengert.load(program)
    prog = wengert.load(program, params=run / "params.npz")
    with np.load(run / "params.npz") as saved:
        for name in prog.module.params:
            np.testing.assert_array_equal(prog.params[name], saved[name])
        meta = json.loads(str(saved["meta"]))
    assert meta["kind"] == "params" and meta["params"]["Dense_1.W"] == {"shape": [2, 8], "dtype": "float64"}
    assert not np.allclose(fresh.run("probs", x=X), prog.run("probs", x=X))
    fresh.load_params(run / "params.npz")
    np.testing.assert_array_equal(fresh.run("probs", x=X), prog.run("probs", x=X))


def test_save_params_round_trips(trained, tmp_path):
    program, run = trained
    prog = wengert.load(program, params=run / "params.npz")
    prog.set_params({"Dense_2.b": [0.25, -0.5]})
    prog.save_params(tmp_path / "mine.npz")
    other = wengert.load(program, params=tmp_path / "mine.npz")
    np.testing.assert_array_equal(other.params["Dense_2.b"], [0.25, -0.5])
    np.testing.assert_array_equal(other.run("probs", x=X), prog.run("probs", x=X))


def _message(excinfo) -> str:
    return excinfo.value.diagnostics[0].render()


def test_a_file_that_does_not_fit_names_each_difference(trained, tmp_path):
    program, run = trained
    saved = dict(np.load(run / "params.npz"))
    saved.pop("meta")
    saved.pop("Dense_2.b")
    saved["Dense_1.W"] = saved["Dense_1.W"][:, :3]
    saved["Dense_2.W"] = saved["Dense_2.W"].astype(np.float32)
    saved["Conv.W"] = np.zeros(3)
    np.savez(tmp_path / "bad.npz", **saved)
    prog = wengert.load(program)
    before = prog.params
    with pytest.raises(ParamsError) as excinfo:
        prog.load_params(tmp_path / "bad.npz")
    message = _message(excinfo)
    assert message.startswith(f"{tmp_path / 'bad.npz'}: error: the params do not fit the program")
    assert "param `Dense_2.b` is missing from the file" in message
    assert "`Dense_1.W` has shape [2, 3] in the file, but the program declares [2, 8]" in message
    assert "`Dense_2.W` is f32 in the file, but the program declares f64" in message
    assert "the file has `Conv.W`, which the program does not declare" in message
    for name, value in prog.params.items():  # nothing was loaded
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.parametrize("make, expected", [
    (lambda run, tmp: tmp / "missing.npz", "no such params file"),
    (lambda run, tmp: run / "checkpoint.npz", "a training checkpoint (for --resume), not a params file"),
    (lambda run, tmp: (tmp / "junk.npz").write_bytes(b"not a zip") and tmp / "junk.npz", "cannot read params"),
])
def test_files_that_are_not_params_are_refused(trained, tmp_path, make, expected):
    program, run = trained
    with pytest.raises(ParamsError) as excinfo:
        wengert.load(program, params=make(run, tmp_path))
    assert expected in _message(excinfo)


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def test_every_command_takes_params(trained, tmp_path):
    program, run = trained
    params = str(run / "params.npz")
    prog = wengert.load(program, params=params)
    x = json.dumps(X)
    r = cli("run", str(program), "--eval", "probs", "-i", f"x={x}", "--params", params, "--json")
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(json.loads(r.output)["probs"], prog.run("probs", x=X), rtol=1e-12)
    y = json.dumps([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    r = cli("grad", str(program), "--of", "loss", "--wrt", "Dense_2.b", "-i", f"x={x}", "-i", f"y={y}",
            "--params", params, "--json")
    assert r.exit_code == 0, r.output
    expected = prog.grad("loss", wrt=["Dense_2.b"], x=X, y=json.loads(y))["Dense_2.b"]
    np.testing.assert_allclose(json.loads(r.output)["Dense_2.b"], expected, rtol=1e-10)
    r = cli("trace", str(program), "--of", "probs", "-i", f"x={x}", "--params", params)
    assert r.exit_code == 0, r.output
    assert r.output.strip() == prog.trace_with_derivatives("probs", {"x": np.array(X)}).format().strip()
    assert r.output != cli("trace", str(program), "--of", "probs", "-i", f"x={x}").output  # not the initial params
    r = cli("graph", str(program), "--of", "probs", "-i", f"x={x}", "--params", params, "--trace",
            "-o", str(tmp_path / "g.dot"))
    assert r.exit_code == 0, r.output
    r = cli("report", str(program), "--of", "loss", "-i", f"x={x}", "-i", f"y={y}", "--params", params,
            "-o", str(tmp_path / "r.html"))
    assert r.exit_code == 0, r.output
    assert "--params" in (tmp_path / "r.html").read_text()
    r = CliRunner().invoke(main, ["inspect", str(program), "--params", params, "-i", f"x={x}"], input=":eval probs\n")
    assert r.exit_code == 0, r.output
    assert f"{prog.run('probs', x=X)[0, 0]:.6f}"[:7] in r.output
    r = cli("gradcheck", str(program), "--of", "loss", "-i", f"x={x}", "-i", f"y={y}", "--params", params)
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("command", [
    ["run", "--eval", "probs", "-i", "x=[[1,2]]"], ["grad", "--of", "loss"], ["trace", "--of", "probs"],
    ["inspect"], ["eval"], ["predict", "--of", "probs", "-i", "x=new.npy", "-o", "out.npy"],
])
def test_a_params_file_that_does_not_fit_is_exit_2_on_every_command(trained, tmp_path, command):
    program, _ = trained
    np.savez(tmp_path / "other.npz", w=np.zeros(3))
    r = cli(command[0], str(program), *command[1:], "--params", str(tmp_path / "other.npz"))
    assert r.exit_code == 2, r.output
    assert f"{tmp_path / 'other.npz'}: error: the params do not fit the program" in r.output
    assert "Traceback" not in r.output


def test_set_params_with_a_files_meta_points_to_load_params(trained):
    program, run = trained
    prog = wengert.load(program)
    with pytest.raises(wengert.DiagnosticError) as info:
        prog.set_params(dict(np.load(run / "params.npz")))
    assert "read the file with load_params(path)" in info.value.diagnostics[0].message
